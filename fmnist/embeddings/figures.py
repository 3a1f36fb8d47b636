"""Figures for 2-D embeddings: one view per run, and the features x methods grid of the report."""

from __future__ import annotations

import numpy as np

from ..plots import PALETTE, plt, scatter_2d


def metrics_line(m: dict) -> str:
    return (f"kNN acc {m['knn_accuracy']:.3f} · trust {m['trustworthiness']:.3f} · "
            f"silhouette {m['silhouette']:.2f}")


def _marker_size(n: int, base: float) -> float:
    # Keep the ink per figure roughly constant: fewer points get bigger dots.
    return float(np.clip(base * (5000 / max(n, 1)) ** 0.5, base / 3, base * 3))


def _legend(target, classes, **kw):
    handles = [plt.Line2D([], [], ls="", marker="o", ms=6, color=PALETTE[k % len(PALETTE)], label=c)
               for k, c in enumerate(classes)]
    return target.legend(handles=handles, frameon=False, **kw)


def embedding_figure(coords: np.ndarray, labels: np.ndarray, classes, *, feature_label: str, method: str,
                     metrics: dict | None = None):
    """One scatter: a colour per class, class-name legend outside the points, title with feature/method/n."""
    n = len(coords)
    fig, ax = plt.subplots(figsize=(8.2, 6.2), dpi=110)
    scatter_2d(ax, coords, labels, classes, legend=False, s=_marker_size(n, 4.0), alpha=0.65)
    title = f"{feature_label} · {method} · n={n}"
    if metrics:
        title += "\n" + metrics_line(metrics)
    ax.set_title(title, fontsize=11)
    _legend(ax, classes, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9)
    fig.tight_layout()
    return fig


def grid_figure(cells: list[dict], features: list[str], methods: list[str], classes, *, title: str = ""):
    """Rows = feature sets, columns = methods; the best k-NN accuracy of each row has a bold title.

    ``cells``: dicts with feature, feature_label, method, coords, labels, metrics.
    """
    by = {(c["feature"], c["method"]): c for c in cells}
    nr, nc = len(features), len(methods)
    fig, axes = plt.subplots(nr, nc, figsize=(max(3.4 * nc, 6.8), 3.3 * nr + 0.7), dpi=100, squeeze=False)
    for i, f in enumerate(features):
        row = [by[(f, m)] for m in methods if (f, m) in by]
        best = max((c["metrics"]["knn_accuracy"] for c in row), default=None)
        for j, m in enumerate(methods):
            ax = axes[i, j]
            c = by.get((f, m))
            if c is None:
                ax.set_axis_off()
                continue
            scatter_2d(ax, c["coords"], c["labels"], classes, legend=False,
                       s=_marker_size(len(c["coords"]), 1.5), alpha=0.6)
            mt = c["metrics"]
            bold = nc > 1 and mt["knn_accuracy"] == best
            ax.set_title(f"{c['feature_label']} · {m}\nkNN {mt['knn_accuracy']:.3f} · trust "
                         f"{mt['trustworthiness']:.3f} · sil {mt['silhouette']:.2f}",
                         fontsize=8.5, fontweight="bold" if bold else "normal")
    ncol = len(classes) if nc >= 3 else min(len(classes), 5)
    legend_in = 0.3 * -(-len(classes) // ncol) + 0.2  # rows of legend entries, in inches
    _legend(fig, classes, loc="lower center", ncol=ncol, fontsize=9, bbox_to_anchor=(0.5, 0.0),
            handletextpad=0.2, columnspacing=1.0)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))
    return fig
