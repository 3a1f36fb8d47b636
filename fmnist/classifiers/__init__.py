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

from sklearn.pipeline import Pipeline

from ..features import FEATURES
from .base import CLASSIFIERS, Candidates, ClassifierSpec  # noqa: F401  (the package's names)


def build_classifier(name: str, *, tune: bool = False, seed: int = 0, n_jobs: int = -1,
                     feature: str | None = None) -> ClassifierSpec:
    """The registered factory's spec; with ``feature``, that feature's input steps go first."""
    factory = CLASSIFIERS.get(name)
    # a factory that takes ``feature`` sizes itself to it (svm: PCA width per feature)
    extra = {"feature": feature} if "feature" in inspect.signature(factory.fn).parameters else {}
    spec = factory(tune=tune, seed=seed, n_jobs=n_jobs, **extra)
    t = FEATURES.get(feature).hook("input_transform") if feature else None
    if t is not None:
        spec.pipeline = Pipeline(t.steps() + spec.pipeline.steps)
        spec.trusted_types = [*spec.trusted_types, *t.trusted_types]
    return spec


def input_transform(feature: str) -> str:
    """What ``build_classifier`` puts ahead of the model for this feature (logged as a param)."""
    t = FEATURES.get(feature).hook("input_transform")
    return t.description if t else "none"


from . import logreg, lda, svm, rf  # noqa: E402,F401  (registration side effects; report order)
from .tuning import FitResult, fit_classifier  # noqa: E402,F401
