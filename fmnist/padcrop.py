"""Convolutions that skip the kernel taps which only ever read zero padding.

At 32 px, ResNet-18's layer4 runs its 3x3 convolutions on 1x1 maps: eight of the nine taps multiply
padding, yet oneDNN still does all nine (its weight gradient there ran at ~6 GFLOP/s against ~100 for a
plain matrix product on the 2-core AMD EPYC). Cropping those taps away is exact: the same sums without the
zero terms, and the cropped taps' gradients are zero either way. ``cropped_padding(model)`` swaps the class
of every plain ``nn.Conv2d`` for the duration of a block and back afterwards, so weights, state dicts and
logged models stay stock torchvision.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

import torch.nn.functional as F
from torch import nn


@lru_cache(maxsize=None)
def _span(n: int, k: int, s: int, p: int) -> tuple[int, int, int]:
    """(output length, first tap, last tap) of one kernel dimension: the taps that read a real input row."""
    out = (n + 2 * p - k) // s + 1
    used = [i for i in range(k) if any(0 <= o * s - p + i < n for o in range(out))]
    return (out, used[0], used[-1]) if used else (out, 0, k - 1)


class PadCroppedConv2d(nn.Conv2d):
    """``nn.Conv2d`` computing only the taps that can touch the input (a 1x1 output is a matrix product)."""

    def _conv_forward(self, x, weight, bias):
        if self.padding_mode != "zeros" or self.dilation != (1, 1) or isinstance(self.padding, str):
            return super()._conv_forward(x, weight, bias)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        (h, w) = x.shape[-2:]
        oh, r0, r1 = _span(h, kh, sh, ph)
        ow, c0, c1 = _span(w, kw, sw, pw)
        if (r0, r1, c0, c1) == (0, kh - 1, 0, kw - 1):
            return super()._conv_forward(x, weight, bias)
        wc = weight[:, :, r0:r1 + 1, c0:c1 + 1]
        if oh == 1 and ow == 1 and self.groups == 1:
            # One output pixel: the kept taps read exactly the input rows r0-ph..r1-ph (all real).
            xs = x[:, :, r0 - ph:r1 - ph + 1, c0 - pw:c1 - pw + 1]
            return F.linear(xs.flatten(1), wc.flatten(1), bias)[:, :, None, None]
        pad = (ph - r0, pw - c0)
        if ((h + 2 * pad[0] - (r1 - r0 + 1)) // sh + 1, (w + 2 * pad[1] - (c1 - c0 + 1)) // sw + 1) != (oh, ow):
            return super()._conv_forward(x, weight, bias)  # symmetric padding cannot express this crop
        return F.conv2d(x, wc, bias, self.stride, pad, 1, self.groups)


@contextlib.contextmanager
def cropped_padding(model: nn.Module, enabled: bool = True):
    """Within the block, every plain ``nn.Conv2d`` of ``model`` computes as ``PadCroppedConv2d``."""
    convs = [m for m in model.modules() if type(m) is nn.Conv2d] if enabled else []
    for m in convs:
        m.__class__ = PadCroppedConv2d
    try:
        yield model
    finally:
        for m in convs:
            m.__class__ = nn.Conv2d
