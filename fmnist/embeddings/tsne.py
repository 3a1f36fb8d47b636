"""t-SNE with openTSNE (FFT-accelerated gradients: 70k points in minutes; sklearn's Barnes-Hut is far slower)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import ParamError
from .base import EMBEDDINGS
from ._common import cap, check_pca_dims, pre_pca

BIG = 10_000  # from this many points on: FFT gradients, all cores


def _validate(p: dict, n_samples: int | None) -> dict:
    if not p["perplexity"] > 0:
        raise ParamError(f"tsne perplexity must be > 0, got {p['perplexity']}")
    # Each point needs about 3 x perplexity neighbours.
    limit = round((n_samples - 1) / 3, 2) if n_samples else None
    return {"perplexity": cap("perplexity", float(p["perplexity"]), limit, n_samples, "tsne"),
            "pca_dims": check_pca_dims(p["pca_dims"])}


@EMBEDDINGS.register("tsne", perplexity=30.0, pca_dims=50)
def tsne(x: np.ndarray, *, seed: int, perplexity: float, pca_dims: int) -> np.ndarray:
    """t-SNE (openTSNE: PCA initialisation, automatic learning rate)."""
    from openTSNE import TSNE

    z = pre_pca(x, pca_dims, seed)
    big = len(z) >= BIG
    # Small samples: Barnes-Hut on one thread (threads cost more than they save there, and much more on
    # a busy machine). Large ones: FFT-interpolated gradients on every core.
    est = TSNE(n_components=2, perplexity=perplexity, random_state=seed,
               negative_gradient_method="fft" if big else "bh",
               n_jobs=min(os.cpu_count() or 1, 8) if big else 1, verbose=False)
    return np.asarray(est.fit(z))


tsne.validate = _validate
tsne.cost = 25  # s for 5,000 points, metrics included (2026-12-02)
