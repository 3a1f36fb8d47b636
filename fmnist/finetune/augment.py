"""Batch augmentation on the device: random crop with zero padding and (optionally) horizontal flip, one gather."""

from __future__ import annotations


def augment_batch(x, *, padding: int = 4, flip: bool = True, generator=None):
    """(B, H, W) images on any device -> same shape: each shifted by up to ``padding`` pixels
    (zero fill, as Fashion-MNIST's background) and, with ``flip``, mirrored with probability 1/2.

    The random offsets come from ``generator`` (a CPU ``torch.Generator``) so the draw is the same on
    CPU and GPU and replays exactly on resume; the pixels never leave the device.
    """
    import torch
    import torch.nn.functional as F

    b, h, w = x.shape
    off = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator)
    # drawn either way: the generator's stream (and a resumed run's replay) does not depend on ``flip``
    flip = (torch.rand(b, generator=generator) < 0.5) & flip
    off, flip = off.to(x.device, non_blocking=True), flip.to(x.device, non_blocking=True)
    xp = F.pad(x, (padding, padding, padding, padding))
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = off[:, :1] + ar_h  # (B, H)
    cols = off[:, 1:] + torch.where(flip[:, None], w - 1 - ar_w, ar_w)  # (B, W), reversed when flipped
    bidx = torch.arange(b, device=x.device)[:, None, None]
    return xp[bidx, rows[:, :, None], cols[:, None, :]]
