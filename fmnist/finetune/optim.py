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
    """One-cycle (Smith), torch's ``OneCycleLR``: lr rises (cosine) from lr/25 to lr over ``warmup`` of the
    steps, then anneals (cosine) to lr/2.5e5; stepped every batch. Momentum stays fixed.

    The curve is the one the hand-written ``LambdaLR`` made before (a test compares them): peak at step
    ``w`` (``warmup`` of the steps, rounded), ``lr/2.5e5`` reached at step ``total_steps``, one past the
    last batch. ``OneCycleLR`` ends its anneal at its ``total_steps - 1`` and peaks at
    ``pct_start * total_steps - 1``, so it is given ``total_steps + 1`` points and ``pct_start = (w + 1) /
    (total_steps + 1)``. It divides by the warm-up's length: without one (``w == 0``) the peak is put a
    hair (1e-9 step) before step 0, which moves no learning rate by more than about 1e-9 of itself.
    """
    import torch

    p = SCHEDULES.get("onecycle").params
    w = _warmup_steps(total_steps, warmup)
    pct_start = (w + 1.0) / (total_steps + 1) if w > 0 else (1.0 - 1e-9) / (total_steps + 1)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps + 1,
        pct_start=pct_start, anneal_strategy="cos", cycle_momentum=False, div_factor=p["div_factor"],
        final_div_factor=p["final_div_factor"], three_phase=False)


# What a checkpoint records of its schedule's implementation (``schedule_impl``): a resume refuses another.
# The hand-written LambdaLR one-cycle of earlier runs recorded nothing.
onecycle.impl = "torch.OneCycleLR"


def schedule_impl(name: str) -> str:
    """The implementation a checkpoint of schedule ``name`` records ("" for the schedules that never changed)."""
    return SCHEDULES.get(name).hook("impl", "")


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
