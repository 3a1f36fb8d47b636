import numpy as np
import pytest

from fmnist.errors import ChoiceError, ParamError
from fmnist.features import FEATURES, extract_features, feature_params
from fmnist.features.scatnet import n_coefficients

# Small, fast settings per feature (the registry's own defaults are exercised on real data elsewhere).
FAST = {"resnet18": {"weights": "none", "image_size": 32}}
EXPECTED_DIM = {"raw": 784, "scatnet": n_coefficients(2, 8, 2) * 7 * 7, "resnet18": 512}


def test_registry_lists_the_three_features():
    assert set(FEATURES.names()) >= {"raw", "scatnet", "resnet18"}
    with pytest.raises(ChoiceError, match="choose one of: raw"):
        FEATURES.get("hog")


@pytest.mark.parametrize("name", FEATURES.names())
def test_shape_dtype_determinism(name, tiny):
    x = tiny.x_train[:12]
    a = extract_features(name, x, FAST.get(name), batch_size=5, device="cpu", progress=False)
    b = extract_features(name, x, FAST.get(name), batch_size=12, device="cpu", progress=False)
    assert a.dtype == np.float32 and a.shape[0] == 12 and a.ndim == 2
    if name in EXPECTED_DIM:
        assert a.shape[1] == EXPECTED_DIM[name]
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # batching does not change values


def test_raw_is_scaled_pixels(tiny):
    f = extract_features("raw", tiny.x_train[:3], progress=False)
    np.testing.assert_allclose(f, tiny.x_train[:3].reshape(3, -1) / 255.0, rtol=1e-6)
    assert f.min() >= 0 and f.max() <= 1


def test_report_scatnet_config_reproducible(tiny):
    f = extract_features("scatnet", tiny.x_train[:4], {"J": 3, "L": 1, "max_order": 2}, progress=False)
    assert f.shape == (4, n_coefficients(3, 1, 2) * 3 * 3) == (4, 63)


@pytest.mark.parametrize("bad", [{"J": 0}, {"J": 7}, {"L": 0}, {"max_order": 3}])
def test_scatnet_bad_params(bad):
    with pytest.raises(ParamError):
        feature_params("scatnet", bad)


def test_resnet18_weights_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    p = feature_params("resnet18", {"weights": "none"})
    assert p["weights"] == "none" and p["image_size"] == 64
    with pytest.raises(ParamError, match="neither one of imagenet, none, auto"):
        feature_params("resnet18", {"weights": "nope"})
    with pytest.raises(ParamError, match="image_size"):
        feature_params("resnet18", {"weights": "none", "image_size": 4})


def test_resnet18_imagenet_offline_says_how(tmp_path, monkeypatch):
    from fmnist.errors import WeightsError
    from fmnist.weights import resolve_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    # A closed port: the download fails at once, as it does offline.
    monkeypatch.setattr("torchvision.models.ResNet18_Weights.IMAGENET1K_V1.value.url",
                        "http://127.0.0.1:9/resnet18-f37072fd.pth", raising=False)
    try:
        w = resolve_weights("imagenet")
    except WeightsError as e:
        assert "download" in str(e) and "weights=" in str(e) and "\n" not in str(e)
    else:  # a machine with internet really downloaded them
        assert w.kind == "imagenet"
    assert resolve_weights("auto").kind in ("imagenet", "none")


def test_resnet18_weights_from_file(tmp_path, tiny):
    import torch

    from fmnist.weights import Weights, build_resnet18

    model = build_resnet18(Weights("none"), num_classes=10)
    with torch.no_grad():
        model.conv1.weight.mul_(2.0)
    path = tmp_path / "w.pth"
    torch.save(model.state_dict(), path)
    p = feature_params("resnet18", {"weights": str(path), "image_size": 32})
    assert p["weights"] == str(path.resolve()) and len(p["weights_sha256"]) == 64
    a = extract_features("resnet18", tiny.x_train[:4], p, progress=False, device="cpu")
    b = extract_features("resnet18", tiny.x_train[:4], {"weights": "none", "image_size": 32}, progress=False,
                         device="cpu")
    assert a.shape == (4, 512) and not np.allclose(a, b)


def test_bad_device():
    from fmnist.device import resolve_device

    with pytest.raises(ParamError, match="choose one of: auto, cpu"):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.parametrize("J,L,max_order", [(1, 2, 2), (2, 8, 2), (3, 8, 2), (3, 1, 1), (4, 2, 2)])
def test_scatnet_dims_hint_matches_the_extracted_width(J, L, max_order):
    from fmnist.features.scatnet import scatnet

    x = np.zeros((1, 28, 28), dtype=np.uint8)
    p = {"J": J, "L": L, "max_order": max_order}
    assert scatnet.dims(p) == scatnet(x, **p, progress=False).shape[1]
