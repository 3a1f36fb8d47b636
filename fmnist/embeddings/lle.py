"""Locally linear embedding (sklearn, standard variant). Memory and time grow fast with n: use samples."""

from __future__ import annotations

import numpy as np

from ..errors import ParamError
from .base import EMBEDDINGS
from ._common import cap, check_pca_dims, pre_pca


def _validate(p: dict, n_samples: int | None) -> dict:
    k = int(p["lle_neighbors"])
    if k < 3:
        raise ParamError(f"lle_neighbors must be >= 3, got {k}")
    return {"lle_neighbors": cap("lle_neighbors", k, (n_samples or 0) - 1, n_samples, "lle"),
            "pca_dims": check_pca_dims(p["pca_dims"])}


@EMBEDDINGS.register("lle", lle_neighbors=10, pca_dims=50)
def lle(x: np.ndarray, *, seed: int, lle_neighbors: int, pca_dims: int) -> np.ndarray:
    """Locally linear embedding (standard, sklearn)."""
    from sklearn.manifold import LocallyLinearEmbedding

    z = pre_pca(x, pca_dims, seed)
    est = LocallyLinearEmbedding(n_neighbors=lle_neighbors, n_components=2, method="standard",
                                 eigen_solver="auto", random_state=seed)
    return est.fit_transform(z)


lle.validate = _validate
lle.cost = 5  # s for 5,000 points, metrics included
