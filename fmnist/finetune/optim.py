"""Optimizers and per-step learning-rate schedules (with warm-up), registered by name."""

from __future__ import annotations

import math

from ..errors import ParamError
from .base import OPTIMIZERS, SCHEDULES


def param_groups(params, weight_decay: float) -> list[dict]:
    """Weight decay on conv/linear weights only: decaying biases and BatchNorm scales only hurts."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    rest = [p for p in params if p.ndim <= 1]
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0})
            if g["params"]]


@OPTIMIZERS.register("sgd", momentum=0.9, nesterov=True)
def sgd(groups, *, lr: float):
    """SGD with Nesterov momentum 0.9."""
    import torch

    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)


@OPTIMIZERS.register("adamw", betas=(0.9, 0.999))
def adamw(groups, *, lr: float):
    """AdamW (decoupled weight decay), betas (0.9, 0.999)."""
    import torch

    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))


def _warmup_steps(total_steps: int, warmup: float) -> int:
    return min(max(int(round(total_steps * warmup)), 0), max(total_steps - 1, 0))


@SCHEDULES.register("cosine")
def cosine(optimizer, *, total_steps: int, warmup: float):
    """Linear warm-up from 0 over ``warmup`` of the steps, then cosine decay to 0; stepped every batch."""
    import torch

    w = _warmup_steps(total_steps, warmup)

    def factor(step: int) -> float:
        if step < w:
            return (step + 1) / (w + 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - w, total_steps - w) / max(total_steps - w, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@SCHEDULES.register("onecycle", div_factor=25.0, final_div_factor=1e4)
def onecycle(optimizer, *, total_steps: int, warmup: float):
    """One-cycle (Smith): lr rises (cosine) from lr/25 to lr over ``warmup`` of the steps, then anneals
    (cosine) to lr/2.5e5; stepped every batch. Momentum stays fixed."""
    import torch

    w = _warmup_steps(total_steps, warmup)
    start, end = 1.0 / 25.0, 1.0 / 25.0 / 1e4

    def factor(step: int) -> float:
        if step < w:
            return start + (1.0 - start) * 0.5 * (1.0 - math.cos(math.pi * step / w))
        t = min(step - w, total_steps - w) / max(total_steps - w, 1)
        return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_optimizer(name: str, params, *, lr: float, weight_decay: float):
    if lr <= 0:
        raise ParamError(f"lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ParamError(f"weight_decay must be >= 0, got {weight_decay}")
    return OPTIMIZERS.get(name)(param_groups(params, weight_decay), lr=lr)


def build_schedule(name: str, optimizer, *, total_steps: int, warmup: float):
    if not 0 <= warmup < 1:
        raise ParamError(f"warmup must be a fraction of the steps in [0, 1), got {warmup}")
    return SCHEDULES.get(name)(optimizer, total_steps=total_steps, warmup=warmup)
