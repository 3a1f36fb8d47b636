"""Accuracy under shift: the sample every model is scored on, its transformed sets, and the table of accuracies
(pure library work: no tracking)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..data import stratified_indices
from ..evaluation import wilson_interval
from .base import SHIFTS, apply, level_name, levels

NONE = "none"  # the untransformed sample: what a model scores before any shift


def shift_sample(y_test: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices into the dataset's whole test split, class proportions kept, drawn by ``seed`` (the first
    ``n`` of its stratified order): every model, whatever sample its run was tested on, meets these images."""
    return stratified_indices(y_test, n, seed)


def sets(kinds: str = "all") -> list[tuple[str, str, float | None]]:
    """(name, kind, level) of every set scored: ``none`` first, then each kind's levels in the registry's order."""
    return [(NONE, NONE, None)] + [(level_name(k, lv), k, lv) for k in SHIFTS.expand(kinds) for lv in levels(k)]


def shifted_sets(images: np.ndarray, seed: int, kinds: str = "all",
                 progress: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Each set's images: {name: (N, H, W) uint8}, ``none`` being ``images`` as they are."""
    out = {}
    for name, kind, level in sets(kinds):
        out[name] = images if kind == NONE else apply(images, kind, level, seed)
        if progress:
            progress(name)
    return out


def accuracy_rows(predicted: dict[str, np.ndarray], labels: np.ndarray, kinds: str = "all") -> list[dict]:
    """One row per set (kind, level, name, accuracy in 0-1, its 95% Wilson interval, images)."""
    rows = []
    for name, kind, level in sets(kinds):
        correct = int(np.sum(predicted[name] == labels))
        lo, hi = wilson_interval(correct, len(labels))
        rows.append({"kind": kind, "level": level, "name": name, "accuracy": correct / len(labels),
                     "ci_low": lo, "ci_high": hi, "images": len(labels)})
    return rows


def shift_metrics(rows: list[dict]) -> dict[str, float]:
    """``shift/<name>`` per set and ``shift/mean`` over the transformed ones."""
    out = {f"shift/{r['name']}": r["accuracy"] for r in rows}
    moved = [r["accuracy"] for r in rows if r["kind"] != NONE]
    out["shift/mean"] = float(np.mean(moved)) if moved else float("nan")
    return out
