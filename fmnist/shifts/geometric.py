"""Geometric shifts: translation, rotation, scaling about the centre, elastic deformation (torchvision's
``transforms.v2.functional``). Each takes float images (N, 1, H, W) in [0, 1], its level and a seeded generator."""

from __future__ import annotations

import numpy as np

from .base import SHIFTS

# translation: one of four directions per image, so that a shift is a whole number of pixels
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def _affine(x, **kw):
    import torchvision.transforms.v2.functional as F

    return F.affine(x, **{"angle": 0.0, "translate": [0, 0], "scale": 1.0, "shear": [0.0, 0.0], **kw})


@SHIFTS.register("translate", levels=(1, 2, 3), unit="px")
def translate(x, level: float, rng: np.random.Generator):
    """Moved by ``level`` pixels, left, right, up or down (drawn per image); what enters is background."""
    out, way = x.clone(), rng.integers(0, len(DIRECTIONS), len(x))
    for i, (dx, dy) in enumerate(DIRECTIONS):
        idx = np.flatnonzero(way == i)
        if len(idx):
            out[idx] = _affine(x[idx], translate=[int(dx * level), int(dy * level)])  # whole pixels: exact
    return out


@SHIFTS.register("rotate", levels=(5, 10, 15), unit="deg")
def rotate(x, level: float, rng: np.random.Generator):
    """Turned by ``level`` degrees about the centre, clockwise or not (drawn per image)."""
    from torchvision.transforms import InterpolationMode

    out, sign = x.clone(), rng.choice([-1.0, 1.0], len(x))
    for s in (-1.0, 1.0):
        idx = np.flatnonzero(sign == s)
        if len(idx):
            out[idx] = _affine(x[idx], angle=s * level, interpolation=InterpolationMode.BILINEAR)
    return out


@SHIFTS.register("scale", levels=(0.9, 0.8, 0.7))
def scale(x, level: float, rng: np.random.Generator):
    """Shrunk to ``level`` of its size about the centre."""
    from torchvision.transforms import InterpolationMode

    return _affine(x, scale=level, interpolation=InterpolationMode.BILINEAR)


ELASTIC_SIGMA = 4.0  # px: the smoothness of the displacement field (Simard et al. 2003 used 4 on 28 px digits)


@SHIFTS.register("elastic", levels=(8, 16, 24))
def elastic(x, level: float, rng: np.random.Generator):
    """Deformed by a smooth random field (one per image) of strength ``level`` (alpha, in pixels, before the
    field is smoothed with a Gaussian of ``ELASTIC_SIGMA`` px), as torchvision's ElasticTransform draws it."""
    import torch
    import torchvision.transforms.v2.functional as F

    n, _, h, w = x.shape
    field = torch.from_numpy(rng.uniform(-1.0, 1.0, (n, 2, h, w)).astype(np.float32))
    k = int(8 * ELASTIC_SIGMA + 1) | 1
    field = F.gaussian_blur(field, [k, k], [ELASTIC_SIGMA, ELASTIC_SIGMA])
    # torchvision's displacement is in the grid's [-1, 1] units: alpha pixels are 2 * alpha / size
    field[:, 0] *= 2 * level / w
    field[:, 1] *= 2 * level / h
    disp = field.permute(0, 2, 3, 1)
    return torch.cat([F.elastic_transform(x[i:i + 1], disp[i:i + 1]) for i in range(n)]) if n else x
