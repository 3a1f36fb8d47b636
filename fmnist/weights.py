"""ResNet-18 construction with ImageNet, random or file weights; works offline from a local file."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .cache import file_sha256
from .errors import ParamError, WeightsError

WEIGHTS_CHOICES = ("imagenet", "none", "auto", "<path to a .pth state dict>")
IMAGENET_FILE = "resnet18-f37072fd.pth"  # torchvision's IMAGENET1K_V1 file name
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_INIT_SEED = 0  # weights=none is a fixed random network, so its features are reproducible

log = logging.getLogger("fmnist")


@dataclass(frozen=True)
class Weights:
    kind: str  # "imagenet", "none" or "file"
    path: str = ""  # the file behind imagenet/file
    sha256: str = ""

    @property
    def label(self) -> str:
        """What the run actually used: recorded on every run."""
        if self.kind == "file":
            return f"file:{Path(self.path).name}@{self.sha256[:16]}"
        return "imagenet:IMAGENET1K_V1" if self.kind == "imagenet" else "none (random init)"


def imagenet_cache_path() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


def _download_imagenet(quiet: bool = False) -> Path:
    """torchvision's own download into its cache (hash-checked); a clear error when offline. ``quiet``: without
    torch.hub's "Downloading: ..." line and progress bar (weights=auto says what happened itself)."""
    from torchvision.models import ResNet18_Weights

    target = imagenet_cache_path()
    try:
        # torch.hub prints its "Downloading: ..." line on stdout and the progress bar on stderr.
        with contextlib.ExitStack() as hush:
            if quiet:
                hush.enter_context(contextlib.redirect_stdout(io.StringIO()))
                hush.enter_context(contextlib.redirect_stderr(io.StringIO()))
            ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=not quiet, check_hash=True)
    except Exception as e:  # URLError, timeouts, hash mismatch: all mean "not available"
        raise WeightsError(
            f"ImageNet weights for resnet18 are not cached and could not be downloaded "
            f"({type(e).__name__}); download {ResNet18_Weights.IMAGENET1K_V1.url} to {target} "
            f"(or set TORCH_HOME), or pass weights=/path/to/resnet18.pth, or weights=none"
        ) from None
    return target


_failed_download: dict[str, WeightsError] = {}  # target path -> this process's failed download of it
_fell_back: set[str] = set()  # targets this process already said weights=auto falls back for


def _download_once(quiet: bool = False) -> Path:
    """One download attempt per target per process: steps resolve their weights several times per run
    (key, params, training), and offline every attempt would wait for the network and print again."""
    target = str(imagenet_cache_path())
    if target in _failed_download:
        raise _failed_download[target]
    try:
        return _download_imagenet(quiet)
    except WeightsError as e:
        _failed_download[target] = e
        raise


def _fall_back(why: str) -> Weights:
    """weights=auto without ImageNet weights: a random initialisation, said once per process in one line."""
    target = str(imagenet_cache_path())
    if target not in _fell_back:
        _fell_back.add(target)
        log.warning("weights=auto: ImageNet weights for resnet18 are not at %s and %s; using a random "
                    "initialisation (runs record weights_used=none (random init))", target, why)
    return Weights("none")


@lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def _file_sha256(path: Path) -> str:
    """A weights file's sha256, hashed once per version of the file (size and mtime in the cache key)."""
    st = path.stat()
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns)


def resolve_weights(weights: str, allow_download: bool = True) -> Weights:
    """``imagenet`` | ``none`` | ``auto`` (imagenet if obtainable, else none) | a state-dict path."""
    w = (weights or "").strip()
    allow_download = allow_download and not os.environ.get("FMNIST_OFFLINE")
    if w.lower() == "none":
        return Weights("none")
    if w.lower() in ("imagenet", "auto"):
        path = imagenet_cache_path()
        auto = w.lower() == "auto"
        if not path.is_file():
            if not allow_download:
                if auto:
                    return _fall_back("downloads are off (FMNIST_OFFLINE)")
                raise WeightsError(f"ImageNet weights not found at {path}; download them there or use weights=none")
            try:
                path = _download_once(quiet=auto)
            except WeightsError:
                if auto:
                    return _fall_back("could not be downloaded")
                raise
        return Weights("imagenet", str(path), _file_sha256(path))
    p = Path(os.path.expanduser(w))
    if p.is_file():
        return Weights("file", str(p.resolve()), _file_sha256(p))
    raise ParamError(f"weights={weights!r} is neither one of {', '.join(WEIGHTS_CHOICES[:3])} nor an existing file")


def _state_dict(path: str) -> dict:
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{path}: not a loadable torch state dict ({type(e).__name__}: {e})") from None
    for key in ("state_dict", "model", "model_state_dict"):  # checkpoints wrap the weights
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(sd).__name__}")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def build_resnet18(weights: Weights, num_classes: int | None = None):
    """ResNet-18 with the given weights; ``num_classes=None`` -> 512-d penultimate features (fc = Identity)."""
    import torch
    from torchvision.models import resnet18

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = resnet18(weights=None)
    if weights.kind != "none":
        sd = {k: v for k, v in _state_dict(weights.path).items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise WeightsError(
                f"{weights.path}: not a resnet18 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    if num_classes is None:
        model.fc = torch.nn.Identity()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model.fc = torch.nn.Linear(model.fc.in_features, num_classes)
    return model


def imagenet_preprocess(x, image_size: int):
    """(B, H, W) floats in [0, 1] -> (B, 3, S, S) resized, grey replicated, ImageNet-normalised."""
    import torch
    import torch.nn.functional as F

    x = x.unsqueeze(1)
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean) / std
