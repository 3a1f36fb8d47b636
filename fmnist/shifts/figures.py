"""Pictures of shifts: a few images under every kind and level, and accuracy against level."""

from __future__ import annotations

import numpy as np

from .base import SHIFTS, apply, level_name, levels
from .measure import NONE


def examples_figure(images: np.ndarray, seed: int, kinds: str = "all", n: int = 4):
    """``n`` images as they are and under each kind (rows) at each of its levels (columns):
    ``shift_examples.png``."""
    import matplotlib.pyplot as plt

    names = SHIFTS.expand(kinds)
    x = images[:n]
    fig, axes = plt.subplots(len(names), 4, figsize=(0.9 * n * 4, 1.25 * len(names) + 0.6), squeeze=False)
    for row, kind in zip(axes, names):
        cells = [("as is", x)] + [(level_name(kind, lv), apply(x, kind, lv, seed)) for lv in levels(kind)]
        for ax, (title, imgs) in zip(row, cells):
            ax.imshow(np.concatenate(list(imgs), axis=1), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(title, fontsize=11)
    fig.suptitle(f"Test images under each shift (seed {seed})", fontsize=13)
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


def lines_figure(lines, title: str = ""):
    """Accuracy (%) against level, one panel per kind and one line per cell (``report.shift_lines``: each
    feature set's best classifier and the best fine-tune), with 95% intervals as bands: the report's picture."""
    import matplotlib.pyplot as plt

    kinds = [k for k in dict.fromkeys(lines["kind"]) if k != NONE]
    cols = min(3, len(kinds))
    rows = -(-len(kinds) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False, sharey=True)
    for ax in axes.flat[len(kinds):]:
        ax.set_visible(False)
    for ax, kind in zip(axes.flat, kinds):
        for line, g in lines.groupby("cell", sort=False):
            g = g[g["kind"].isin([NONE, kind])]
            ax.plot(range(len(g)), g["accuracy"], marker="o", ms=3, label=line)
            ax.fill_between(range(len(g)), g["ci_low"], g["ci_high"], alpha=0.15)
        ax.set_xticks(range(len(levels(kind)) + 1),
                      ["as is"] + [level_name(kind, lv).removeprefix(f"{kind}_") for lv in levels(kind)], fontsize=8)
        ax.set_title(kind, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    n = int(lines["images"].iloc[0]) if len(lines) else 0
    fig.suptitle(title or f"Accuracy under shift: the same {n:,} test images for every model", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
