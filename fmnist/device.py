"""Pick the torch device: ``auto`` means CUDA when present, else CPU."""

from __future__ import annotations

import re

from .errors import ParamError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def resolve_device(device: str = "auto") -> "torch.device":  # noqa: F821
    import torch

    d = (device or "auto").strip().lower()
    if d == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if d == "cpu":
        return torch.device("cpu")
    if d == "mps":
        if not torch.backends.mps.is_available():
            raise ParamError("device 'mps' requested but MPS is not available; use device=auto or cpu")
        return torch.device("mps")
    if re.fullmatch(r"cuda(:\d+)?", d):
        if not torch.cuda.is_available():
            raise ParamError(f"device {device!r} requested but CUDA is not available; use device=auto or cpu")
        return torch.device(d)
    raise ParamError(f"unknown device {device!r}; choose one of: {', '.join(DEVICE_CHOICES)}")
