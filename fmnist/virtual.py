"""Virtual examples: training images mirrored, moved by one pixel or turned a few degrees, to be passed through
the same feature and added to a model's training set (DeCoste and Schölkopf 2002). No draws: every image gets
every copy its kinds name. The moves are the robustness study's (``fmnist.shifts.geometric``)."""

from __future__ import annotations

import numpy as np

from .errors import ParamError

ROTATE_DEG = 8.0  # within the rotations the shift study grades (5-15 degrees)


def _affine(images: np.ndarray, **kw) -> np.ndarray:
    import torch
    from torchvision.transforms import InterpolationMode

    from .shifts.geometric import _affine as affine

    x = torch.from_numpy(np.ascontiguousarray(images)).float()[:, None] / 255
    out = affine(x, interpolation=InterpolationMode.BILINEAR, **kw)
    return (out[:, 0] * 255).round().clamp(0, 255).to(torch.uint8).numpy()


KINDS = {
    "flip": lambda x: [np.ascontiguousarray(x[:, :, ::-1])],  # a mirrored garment is still that garment
    "shift1": lambda x: [_affine(x, translate=[dx, dy]) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))],
    "rotate8": lambda x: [_affine(x, angle=a) for a in (ROTATE_DEG, -ROTATE_DEG)],
}


def parse(spec: str) -> tuple[str, ...]:
    """``"flip+shift1"`` -> ``("flip", "shift1")``; ``""`` -> ``()``."""
    kinds = tuple(k.strip() for k in spec.split("+") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ParamError(f"unknown virtual-example kind {bad[0]!r}; choose a '+' list of: {', '.join(KINDS)}")
    return kinds


def copies(spec: str) -> int:
    """Virtual images made per training image."""
    return sum(len(KINDS[k](np.zeros((1, 2, 2), np.uint8))) for k in parse(spec))


def virtual_images(images: np.ndarray, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """The virtual copies of ``images`` (uint8, N x H x W) and, for each, the row it was made from."""
    parts = [v for k in parse(spec) for v in KINDS[k](images)]
    if not parts:
        return images[:0], np.zeros(0, np.int64)
    return np.concatenate(parts), np.tile(np.arange(len(images)), len(parts))
