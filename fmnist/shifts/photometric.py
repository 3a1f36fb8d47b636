"""Photometric shifts: Gaussian noise and Gaussian blur (torchvision's ``transforms.v2.functional``)."""

from __future__ import annotations

import math

import numpy as np

from .base import SHIFTS


@SHIFTS.register("noise", levels=(0.05, 0.1, 0.2))
def noise(x, level: float, rng: np.random.Generator):
    """Gaussian noise of standard deviation ``level`` (intensities in [0, 1]), clipped to [0, 1]."""
    import torch
    import torchvision.transforms.v2.functional as F

    with torch.random.fork_rng(devices=[]):  # its own stream: the caller's torch draws are left as they were
        torch.manual_seed(int(rng.integers(0, 2**31 - 1)))
        return F.gaussian_noise(x, mean=0.0, sigma=level, clip=True)


@SHIFTS.register("blur", levels=(0.5, 1.0, 1.5), unit="px")
def blur(x, level: float, rng: np.random.Generator):
    """Gaussian blur of standard deviation ``level`` pixels (the kernel covers three of them each side)."""
    import torchvision.transforms.v2.functional as F

    k = 2 * math.ceil(3 * level) + 1
    return F.gaussian_blur(x, [k, k], [level, level])
