"""The study's progress: a live line on a terminal, one plain line per finished cell in a log."""

from __future__ import annotations

import io

from fmnist.engine.graph import Progress, Record


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(stream) -> str:
    bar = Progress(3, stream=stream)
    for rec in (Record("extract", "raw", "ran", seconds=1.25), Record("classify", "raw/lda", "cached"),
                Record("classify", "raw/svm", "failed", error="ValueError: boom")):
        bar.started()
        bar.finished(rec)
    bar.close()
    return stream.getvalue()


def test_a_log_gets_one_line_per_finished_cell_and_no_redraws():
    lines = _feed(io.StringIO()).splitlines()
    assert len(lines) == 3 and "\r" not in "".join(lines)
    assert lines[0].startswith("[fmnist] study 1/3: extract raw ran in 1.2s (")
    assert lines[1].startswith("[fmnist] study 2/3: classify raw/lda cached (")
    assert lines[2].startswith("[fmnist] study 3/3: classify raw/svm failed: ValueError: boom (")


def test_a_terminal_gets_the_live_line():
    text = _feed(Terminal())
    assert "\r" in text and "3/3 cells" in text and "running 0, failed 1" in text
    assert "[fmnist] classify raw/svm failed: ValueError: boom" in text  # failures still said once, in full


def test_off_is_silent():
    out = io.StringIO()
    bar = Progress(1, enabled=False, stream=out)
    bar.finished(Record("extract", "raw", "ran"))
    bar.close()
    assert out.getvalue() == ""


def test_step_bars_redraw_only_on_a_terminal(capsys, monkeypatch):
    """A step's own bar (feature extraction, fine-tune epochs) is tqdm's: off when stderr is a log file."""
    import numpy as np
    import torch

    from fmnist.features._torch import batched_apply

    images = np.zeros((8, 28, 28), dtype=np.uint8)
    out = batched_apply(images, lambda x: x.flatten(1), batch_size=4, device=torch.device("cpu"), desc="bar",
                        progress=True)
    assert out.shape == (8, 784)
    assert "bar" not in capsys.readouterr().err  # captured stderr is not a terminal: no redraws
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    batched_apply(images, lambda x: x.flatten(1), batch_size=4, device=torch.device("cpu"), desc="bar",
                  progress=True)
    assert "bar: 100%" in capsys.readouterr().err
