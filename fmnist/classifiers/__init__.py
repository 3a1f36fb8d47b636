"""Classifiers, registered by name: ``CLASSIFIERS.names()``, ``CLASSIFIERS.get(name)``.

Each entry is a factory ``fn(*, tune, seed, n_jobs) -> ClassifierSpec``: a scikit-learn Pipeline holding
the documented ``tune=false`` defaults, plus the small grid that ``fit_classifier`` searches on a
validation split of the training set when ``tune=true``. One module + one decorator adds a model; beside
it, ``fn.title`` (how reports name it), ``fn.cpus`` (cores it keeps busy, when more than one) and
``fn.cost`` (rough seconds of a tuned cell on 60k images, 2 cores; or ``cost(n, d)`` for n images of d
features), for executors.
"""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.pipeline import Pipeline

from ..features import FEATURES
from .base import CLASSIFIERS, Candidates, ClassifierSpec  # noqa: F401  (the package's names)


N_PIXELS = 28 * 28  # every dataset of the family: 28 x 28 images


def build_classifier(name: str, *, tune: bool = False, seed: int = 0, n_jobs: int = -1,
                     feature: str | None = None) -> ClassifierSpec:
    """The registered factory's spec; with ``feature``, that feature's input steps go first. A spec that reads
    the pixels beside the features (``pixels``) gets them as the first ``N_PIXELS`` columns (``model_input``):
    sqrt, then standardised, beside the feature's own input steps."""
    factory = CLASSIFIERS.get(name)
    # a factory that takes ``feature`` sizes itself to it (svm: PCA width per feature)
    extra = {"feature": feature} if "feature" in inspect.signature(factory.fn).parameters else {}
    spec = factory(tune=tune, seed=seed, n_jobs=n_jobs, **extra)
    t = FEATURES.get(feature).hook("input_transform") if feature else None
    if spec.pixels:
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import StandardScaler

        from ..features.raw import raw

        sqrt = raw.input_transform
        columns = ColumnTransformer([
            ("pixels", Pipeline([*sqrt.steps(), ("pixels_scale", StandardScaler())]), slice(0, N_PIXELS)),
            ("features", Pipeline(t.steps()) if t else "passthrough", slice(N_PIXELS, None))])
        spec.pipeline = Pipeline([("input", columns), *spec.pipeline.steps])
        spec.trusted_types = [*spec.trusted_types, *sqrt.trusted_types, *(t.trusted_types if t else [])]
    elif t is not None:
        spec.pipeline = Pipeline(t.steps() + spec.pipeline.steps)
        spec.trusted_types = [*spec.trusted_types, *t.trusted_types]
    return spec


def model_input(features: np.ndarray, images: np.ndarray, pixels: bool) -> np.ndarray:
    """What a model's pipeline reads: the features, after the images' [0, 1] pixels when it reads those too."""
    if not pixels:
        return features
    from ..features.raw import raw

    return np.hstack([raw(images), features])


def input_transform(feature: str, model: str | None = None) -> str:
    """What ``build_classifier`` puts ahead of ``model`` for this feature (logged as a param)."""
    t = FEATURES.get(feature).hook("input_transform")
    own = t.description if t else "none"
    if model and build_classifier(model, feature=feature).pixels:
        return f"sqrt(pixels) then standardise, beside the features: {own}"
    return own


from . import logreg, lda, svm, rf  # noqa: E402,F401  (registration side effects; report order)
from .tuning import FitResult, fit_classifier  # noqa: E402,F401
