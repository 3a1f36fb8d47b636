"""weights=auto without ImageNet weights: a random initialisation, said once in one line, nothing else printed."""

from __future__ import annotations

import logging
import sys
import urllib.error

import pytest

from fmnist import weights


@pytest.fixture
def no_cached_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("FMNIST_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "_failed_download", {})
    monkeypatch.setattr(weights, "_fell_back", set())
    import torchvision.models._api as api

    def offline(url, *a, **k):
        sys.stdout.write(f'Downloading: "{url}" to somewhere\n')  # torch.hub: this line on stdout,
        sys.stderr.write("  0%|          | 0.00/44.7M\n")            # its progress bar on stderr
        raise urllib.error.URLError("no network")

    # torchvision's download, as it behaves without a network (this machine has none; CI may): announce, fail.
    monkeypatch.setattr(api, "load_state_dict_from_url", offline)


def test_auto_falls_back_once_in_one_line(no_cached_weights, caplog, capsys):
    with caplog.at_level(logging.WARNING, logger="fmnist"):
        for _ in range(3):  # a step resolves its weights several times
            w = weights.resolve_weights("auto")
            assert w.kind == "none" and w.label == "none (random init)"
    lines = [r.getMessage() for r in caplog.records if "weights=auto" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "using a random initialisation" in lines[0] and "could not be downloaded" in lines[0]
    out, err = capsys.readouterr()
    assert "Downloading" not in out + err and "44.7M" not in out + err


def test_imagenet_explicitly_still_fails_in_one_clear_error(no_cached_weights):
    with pytest.raises(weights.WeightsError, match="not cached and could not be downloaded"):
        weights.resolve_weights("imagenet")
