"""Helpers shared by the embedding methods: PCA pre-reduction and neighbourhood-size checks."""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ParamError

log = logging.getLogger("fmnist")


def pre_pca(x: np.ndarray, pca_dims: int, seed: int) -> np.ndarray:
    """PCA to ``pca_dims`` components (skipped when 0 or when the data has no more dimensions than that)."""
    if pca_dims <= 0 or pca_dims >= min(x.shape):
        return x
    from sklearn.decomposition import PCA

    return PCA(n_components=pca_dims, random_state=seed).fit_transform(x).astype(np.float32)


def check_pca_dims(pca_dims: int) -> int:
    pca_dims = int(pca_dims)
    if pca_dims < 0 or pca_dims == 1:
        raise ParamError(f"pca_dims must be 0 (off) or >= 2, got {pca_dims}")
    return pca_dims


def cap(name: str, value, limit, n_samples: int | None, method: str):
    """``value`` lowered to ``limit`` (with a warning) when a sample of ``n_samples`` points cannot support it."""
    if n_samples is not None and value > limit:
        log.warning("%s: %s=%s is too large for %d points; using %s", method, name, value, n_samples, limit)
        return type(value)(limit)
    return value
