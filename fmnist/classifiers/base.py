"""The classifier registry and the spec each factory returns (the package ``__init__`` imports each model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np
from sklearn.pipeline import Pipeline

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
    pixels: bool = False  # the model reads the image's pixels beside the features (``model_input``)
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
