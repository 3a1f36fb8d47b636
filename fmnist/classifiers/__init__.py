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
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np
from sklearn.pipeline import Pipeline

from ..features import FEATURES
from ..registry import Registry

CLASSIFIERS = Registry("model")
# A grid entry is a list of candidates, or a function of the preprocessed (tuning) training matrix
# returning one (e.g. RBF gamma as multiples of sklearn's 'scale' value).
Candidates = Union[list, Callable[[np.ndarray], list]]


@dataclass
class ClassifierSpec:
    pipeline: Pipeline
    hp: dict[str, str]  # hyperparameter name -> pipeline parameter of the final step ("C" -> "svc__C")
    grid: dict[str, Candidates] = field(default_factory=dict)  # searched when tune=True
    tune_max_train: int | None = None  # tune on at most this many training samples (slow models)
    trusted_types: list[str] = field(default_factory=list)  # non-default types skops must load (model logging)
    notes: str = ""

    def __post_init__(self) -> None:
        last = self.pipeline.steps[-1][0]
        for name, path in self.hp.items():
            if not path.startswith(f"{last}__"):
                raise ValueError(f"hyperparameter {name!r} ({path}) must belong to the final step {last!r}")
        unknown = set(self.grid) - set(self.hp)
        if unknown:
            raise ValueError(f"grid names {sorted(unknown)} are not declared in hp")

    def values(self) -> dict[str, Any]:
        """Current hyperparameter values, by short name."""
        p = self.pipeline.get_params()
        return {name: p[path] for name, path in self.hp.items()}


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
