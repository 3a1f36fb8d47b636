"""Figures (matplotlib, headless). The class palette is the course report's, so figures compare."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: CI, servers, notebooks executed by nbclient

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Class index -> colour, as in the report: 0 magenta, 1 cyan, 2 red, 3 green, 4 blue, 5 black,
# 6 yellow, 7 orange, 8 navy, 9 gray.
PALETTE = ("magenta", "cyan", "red", "green", "blue", "black", "yellow", "orange", "navy", "gray")


def confusion_matrix_figure(cm: np.ndarray, classes, title: str = ""):
    """Row-normalised confusion matrix (%), with counts' totals per true class in the labels."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    pct = np.divide(cm * 100.0, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    n = len(classes)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), [f"{c} ({int(r)})" for c, r in zip(classes, rows[:, 0])])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (count)")
    for i in range(n):
        for j in range(n):
            if pct[i, j] >= 0.5:
                ax.text(j, i, f"{pct[i, j]:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if pct[i, j] > 60 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of true class")
    acc = np.trace(cm) / max(cm.sum(), 1) * 100
    ax.set_title(f"{title}  (accuracy {acc:.2f}%)" if title else f"accuracy {acc:.2f}%")
    fig.tight_layout()
    return fig


def per_class_figure(table, title: str = "Per-class test accuracy (%)"):
    """Heatmap of a cells x classes table of accuracies (%), each value written in its square."""
    values = np.asarray(table.to_numpy(dtype=float))
    low = float(np.nanmin(values)) if np.isfinite(values).any() else 0.0
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(table) + 2), dpi=100)
    im = ax.imshow(values, cmap="viridis", vmin=low, vmax=100, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(table)), table.index)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] < (low + 100) / 2 else "black")
    fig.colorbar(im, ax=ax, label="test accuracy (%)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


# Verdict -> colour in the significance figure (fmnist.report.VERDICTS).
VERDICT_COLOURS = {"best": "black", "tied with the best": "tab:blue", "significantly worse": "lightgray"}


def significance_figure(summary):
    """Each cell's test accuracy with its 95% interval, most accurate on top, coloured by its verdict against
    the best cell (``fmnist.report.significance_summary``)."""
    n = len(summary)
    fig, ax = plt.subplots(figsize=(9, 0.32 * n + 1.4), dpi=100)
    y = np.arange(n)[::-1]
    for verdict, colour in VERDICT_COLOURS.items():
        m = (summary["verdict"] == verdict).to_numpy()
        if not m.any():
            continue
        acc = summary["accuracy"].to_numpy(dtype=float)[m]
        err = np.vstack([acc - summary["ci_low"].to_numpy(dtype=float)[m],
                         summary["ci_high"].to_numpy(dtype=float)[m] - acc])
        ax.errorbar(acc, y[m], xerr=np.nan_to_num(err), fmt="o", color=colour, ecolor=colour, capsize=3,
                    label=verdict, markeredgecolor="black" if colour == "lightgray" else colour)
    ax.set_yticks(y, summary["cell"])
    ax.set_xlabel("test accuracy (%), with its 95% interval")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Which cells are tied with the best (McNemar's exact test, Holm-corrected)")
    fig.tight_layout()
    return fig


def scatter_2d(ax, coords: np.ndarray, labels: np.ndarray, classes, title: str = "", legend: bool = True,
               s: float = 3.0, alpha: float = 0.6) -> None:
    """One colour per class (report palette), small markers, legend with class names."""
    for k, name in enumerate(classes):
        m = labels == k
        ax.scatter(coords[m, 0], coords[m, 1], s=s, alpha=alpha, c=PALETTE[k % len(PALETTE)], label=name,
                   linewidths=0, rasterized=True)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(markerscale=4, fontsize=7, loc="best", framealpha=0.8)


def close(fig) -> None:
    plt.close(fig)


def bar_figure(labels, values, title: str = "", highlight: int | None = None, xlabel: str = "validation accuracy"):
    """Horizontal bars, one per label (top to bottom in order), the ``highlight`` one in orange."""
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(values) + 1.2))
    colours = ["orange" if i == highlight else "steelblue" for i in range(len(values))]
    ax.barh(range(len(values)), values, color=colours)
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    lo = float(values.min()) if len(values) else 0.0
    ax.set_xlim(max(0.0, lo - 0.02), min(1.0, float(values.max()) + 0.01) if len(values) else 1.0)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.4f}", va="center", fontsize=7)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
