"""UMAP (umap-learn). A fixed ``random_state`` makes it reproducible but single-threaded: about
2x slower on two cores, still minutes at 70k points (see bench/visualize.py)."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ParamError
from .base import EMBEDDINGS
from ._common import cap, check_pca_dims, pre_pca


def _validate(p: dict, n_samples: int | None) -> dict:
    k, d = int(p["n_neighbors"]), float(p["min_dist"])
    if k < 2:
        raise ParamError(f"umap n_neighbors must be >= 2, got {k}")
    if not 0 <= d <= 1:
        raise ParamError(f"umap min_dist must be in [0, 1], got {d}")
    return {"n_neighbors": cap("n_neighbors", k, (n_samples or 0) - 1, n_samples, "umap"), "min_dist": d,
            "pca_dims": check_pca_dims(p["pca_dims"])}


@EMBEDDINGS.register("umap", n_neighbors=15, min_dist=0.1, pca_dims=50)
def umap(x: np.ndarray, *, seed: int, n_neighbors: int, min_dist: float, pca_dims: int) -> np.ndarray:
    """UMAP (umap-learn, spectral initialisation)."""
    import umap as umap_learn

    z = pre_pca(x, pca_dims, seed)
    est = umap_learn.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, n_components=2, random_state=seed,
                          transform_seed=seed)
    with warnings.catch_warnings():
        # "n_jobs value 1 overridden to 1 by setting random_state": the trade-off named above.
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
        return est.fit_transform(z)


umap.validate = _validate
umap.cost = 20  # s for 5,000 points, metrics included (numba compiled)
