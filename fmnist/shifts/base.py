"""The shift registry: kinds of transformation, each with three graded levels (the package ``__init__`` imports
each kind's module), and ``apply``, the one way to transform a batch of images."""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import ParamError
from ..registry import Registry

SHIFTS = Registry("shift kind")


def levels(kind: str) -> tuple[float, ...]:
    return tuple(SHIFTS.get(kind).params["levels"])


def level_name(kind: str, level: float) -> str:
    """``translate_2px``, ``rotate_10deg``, ``noise_0.1``: the metric name's tail (``shift/<this>``)."""
    return f"{kind}_{level:g}{SHIFTS.get(kind).params.get('unit', '')}"


def check_level(kind: str, level: float) -> float:
    allowed = levels(kind)
    if not any(np.isclose(level, a) for a in allowed):
        raise ParamError(f"level {level:g} is out of range for {kind}; choose one of: "
                         + ", ".join(f"{a:g}" for a in allowed))
    return float(level)


def rng_for(seed: int, kind: str, level: float) -> np.random.Generator:
    """The draws of one (kind, level) for one seed, whatever else was drawn before: every model, every process
    and every executor sees the very same transformed images."""
    tag = int.from_bytes(hashlib.sha256(f"{kind}:{level:g}".encode()).digest()[:4], "little")
    return np.random.default_rng([seed, tag])


def apply(images: np.ndarray, kind: str, level: float, seed: int) -> np.ndarray:
    """``images`` (N, H, W) uint8 under ``kind`` at ``level`` (one of its three), deterministic for ``seed``:
    uint8 again, so every feature extractor and network reads them as it reads the dataset."""
    import torch

    entry = SHIFTS.get(kind)
    level = check_level(kind, level)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ParamError(f"shift: images must be (N, H, W) uint8, got {images.shape} {images.dtype}")
    x = torch.tensor(images, dtype=torch.float32).div_(255.0).unsqueeze(1)  # a copy: the data stays as it is
    with torch.no_grad():
        y = entry.fn(x, level, rng_for(seed, kind, level))
    return y.squeeze(1).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
