"""Pictures of shifts: a few images under every kind and level, and accuracy against level."""

from __future__ import annotations

import numpy as np

from .base import SHIFTS, apply, level_name, levels


def examples_figure(images: np.ndarray, seed: int, kinds: str = "all", n: int = 6):
    """``n`` images as they are and under each kind (rows) at each of its levels (columns):
    ``shift_examples.png``."""
    import matplotlib.pyplot as plt

    names = SHIFTS.expand(kinds)
    x = images[:n]
    fig, axes = plt.subplots(len(names), 4, figsize=(1.1 * n * 4, 1.35 * len(names)), squeeze=False)
    for row, kind in zip(axes, names):
        cells = [("as is", x)] + [(level_name(kind, lv), apply(x, kind, lv, seed)) for lv in levels(kind)]
        for ax, (title, imgs) in zip(row, cells):
            ax.imshow(np.concatenate(list(imgs), axis=1), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(title, fontsize=8)
    fig.suptitle(f"Test images under each shift (seed {seed})", fontsize=10)
    fig.tight_layout()
    return fig


def curve_figure(rows: list[dict], title: str = ""):
    """One run's accuracy (%) against level (0: as is, 1-3: the kind's levels), one line per kind."""
    import matplotlib.pyplot as plt

    none = next(r["accuracy"] for r in rows if r["kind"] == "none")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for kind in dict.fromkeys(r["kind"] for r in rows if r["kind"] != "none"):
        acc = [none] + [r["accuracy"] for r in rows if r["kind"] == kind]
        ax.plot(range(len(acc)), [100 * a for a in acc], marker="o", label=kind)
    ax.set_xticks(range(4), ["as is", "level 1", "level 2", "level 3"])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title or "Accuracy under shift", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
