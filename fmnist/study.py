"""Study profiles: what ``quick`` and ``full`` run. Pure configuration, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ChoiceError


@dataclass(frozen=True)
class Profile:
    name: str
    subset: int | None  # images kept per split (None: all 60k/10k)
    tune: bool  # classify: tune hyperparameters on a validation split
    n_samples: int  # visualize: test points per 2-D view
    feature_params: dict[str, Any] = field(default_factory=dict)  # e.g. resnet18 image size
    finetune: dict[str, Any] = field(default_factory=dict)  # overrides of FitConfig defaults
    doc: str = ""


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick", subset=2000, tune=False, n_samples=1000,
        feature_params={"image_size": 32},
        finetune={"epochs": 1, "image_size": 32},
        doc="2,000 images per split, fixed classifier settings, 1,000-point views, ResNet at 32 px, 1 fine-tune epoch",
    ),
    "full": Profile(
        "full", subset=None, tune=True, n_samples=5000,
        doc="all 70,000 images, tuned classifiers, 5,000-point views, fine-tune with the finetune defaults",
    ),
}


def get_profile(name: str, *, subset: int | None = None, full_data: bool = False,
                epochs: int | None = None) -> Profile:
    """A profile, with explicit ``subset`` (or ``full_data``) and ``epochs`` overriding it."""
    try:
        p = PROFILES[name]
    except KeyError:
        raise ChoiceError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}") from None
    if full_data:
        p = replace(p, subset=None)
    elif subset is not None:
        p = replace(p, subset=subset, n_samples=min(p.n_samples, subset))
    if epochs is not None:
        p = replace(p, finetune={**p.finetune, "epochs": epochs})
    return p
