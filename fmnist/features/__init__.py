"""Feature extractors, registered by name: ``FEATURES.names()``, ``FEATURES.get(name)``.

Each maps uint8 images (N, 28, 28) to float32 features (N, D). Registry ``params`` are the
defaults that change the output (they enter cache keys); ``batch_size``/``device``/``progress``
only change how fast it runs. What else a feature needs is declared beside its function, in its own
module: ``fn.validate(**params)``, ``fn.label(params)`` (how reports name it), ``fn.run_params(params)``
(extra params its runs record), ``fn.input_transform`` (steps put ahead of every classifier) and
``fn.resources`` (what an extraction keeps busy), ``fn.cost`` (its rough seconds for 60k+10k images on
2 cores) and ``fn.dims(params)`` (features per image, from which a classifier's cost grows), for executors;
``fn.carry(params)``: files a served model must hold ({param: path}, e.g. pretrained weights);
``fn.svm_pca_dims``: how many principal components the SVM keeps ahead of its kernel, where the feature
needs other than the SVM's default; ``fn.svm_pixels``: the SVM reads the image's pixels beside the feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParamError
from .base import FEATURES, RUNTIME_DEFAULTS, InputTransform  # noqa: F401  (the package's names)
from . import raw, scatnet, resnet18  # noqa: E402,F401  (registration side effects; report order)


def feature_label(name: str, params: dict[str, Any]) -> str:
    """How tables name the feature (e.g. ResNet features from a random network say so)."""
    label = FEATURES.get(name).hook("label")
    return label(params) if label else name


def feature_run_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Extra params an extract run of this feature records (e.g. ``weights_used``)."""
    extra = FEATURES.get(name).hook("run_params")
    return extra(params) if extra else {}


def feature_params(name: str, given: dict[str, Any] | None = None, strict: bool = False) -> dict[str, Any]:
    """The feature's own params: registry defaults overridden by ``given`` (others ignored unless strict)."""
    entry = FEATURES.get(name)
    given = dict(given or {})
    unknown = set(given) - set(entry.params) - set(RUNTIME_DEFAULTS)
    if strict and unknown:
        raise ParamError(f"feature {name!r} has no param(s) {sorted(unknown)}; it takes {sorted(entry.params)}")
    params = {k: given.get(k, v) for k, v in entry.params.items()}
    validate = entry.hook("validate")
    if validate is not None:
        params = validate(**params)
    return params


def extract_features(
    name: str, images: np.ndarray, params: dict[str, Any] | None = None, *,
    batch_size: int = RUNTIME_DEFAULTS["batch_size"], device: str = RUNTIME_DEFAULTS["device"],
    progress: bool = True,
) -> np.ndarray:
    """Run feature ``name`` on uint8 images (N, 28, 28) -> float32 (N, D)."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ParamError(f"images must be uint8 (N, H, W); got {images.dtype} {images.shape}")
    if batch_size <= 0:
        raise ParamError(f"batch_size must be > 0, got {batch_size}")
    p = feature_params(name, params)
    out = FEATURES.get(name)(images, batch_size=batch_size, device=device, progress=progress, **p)
    return np.ascontiguousarray(out, dtype=np.float32)
