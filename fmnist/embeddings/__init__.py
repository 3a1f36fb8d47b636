"""2-D embeddings, registered by name: ``EMBEDDINGS.names()``, ``EMBEDDINGS.get(name)``.

Each maps float features (n, d) to float32 coordinates (n, 2), the same for the same ``seed``.
Registry ``params`` are the defaults of the knobs that change the picture. ``pca_dims`` (t-SNE,
UMAP, LLE) first reduces the features with PCA, as is customary for these methods; 0 turns it off.
``fn.cost`` beside a method: its rough seconds for 5,000 points (executors order cells by it).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import ParamError
from .base import EMBEDDINGS
log = logging.getLogger("fmnist")

from . import pca, tsne, lle, umap  # noqa: E402,F401  (registration side effects; report order)


def method_params(name: str, given: dict[str, Any] | None = None, n_samples: int | None = None) -> dict[str, Any]:
    """The method's own params: registry defaults overridden by ``given`` (others ignored), validated.

    With ``n_samples``, neighbourhood sizes too large for that many points are lowered (with a warning)
    so that what is returned is what the method really uses.
    """
    entry = EMBEDDINGS.get(name)
    given = dict(given or {})
    params = {}
    for k, v in entry.params.items():
        try:
            params[k] = type(v)(given.get(k, v))
        except (TypeError, ValueError):
            raise ParamError(f"{name} {k} must be a {type(v).__name__}, got {given[k]!r}") from None
    validate = entry.hook("validate")
    if validate is not None:
        params = validate(params, n_samples)
    return params


def embed(name: str, x: np.ndarray, *, seed: int = 0, params: dict[str, Any] | None = None) -> np.ndarray:
    """Run method ``name`` on features ``x`` (n, d) -> float32 (n, 2)."""
    x = np.asarray(x)
    if x.ndim != 2 or len(x) < 3:
        raise ParamError(f"embedding needs a 2-d array with at least 3 rows; got shape {x.shape}")
    p = method_params(name, params, n_samples=len(x))
    out = EMBEDDINGS.get(name)(np.ascontiguousarray(x, dtype=np.float32), seed=int(seed), **p)
    out = np.ascontiguousarray(out, dtype=np.float32)
    if out.shape != (len(x), 2) or not np.isfinite(out).all():
        raise RuntimeError(f"{name} returned {out.shape} with non-finite values; expected ({len(x)}, 2)")
    return out
