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
    shift_n: int = 2000  # shift: test images every scored model meets under each transformation
    feature_params: dict[str, Any] = field(default_factory=dict)  # e.g. resnet18 image size
    finetune: dict[str, Any] = field(default_factory=dict)  # overrides of FitConfig defaults
    finetune_cpu: dict[str, Any] = field(default_factory=dict)  # further overrides when training on a CPU
    doc: str = ""

    def finetune_for(self, device_type: str) -> dict[str, Any]:
        """The FitConfig overrides for a device type ('cpu', 'cuda', 'mps')."""
        return {**self.finetune, **(self.finetune_cpu if device_type == "cpu" else {})}


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick", subset=2000, tune=False, n_samples=1000, shift_n=200,
        feature_params={"image_size": 32},
        # One epoch over 1,800 images is 56 steps at batch 32; at the default batch 128 / lr 0.05 a
        # from-scratch full fine-tune is still at chance (10%), at batch 32 / lr 0.01 / no augmentation
        # it reaches 75% test accuracy.
        finetune={"epochs": 1, "image_size": 32, "batch_size": 32, "lr": 0.01, "augment": False},
        doc="2,000 images per split, fixed classifier settings, 1,000-point views, ResNet at 32 px, "
            "1 fine-tune epoch at 32 px, 200 test images under shift",
    ),
    "full": Profile(
        "full", subset=None, tune=True, n_samples=5000,
        # On a GPU the fast recipe (fmnist.finetune.train.FAST_RECIPE; bench/gpu.py measures and chooses it on
        # the device). On a CPU it is the standard recipe: the GPU-sized defaults (64 px, 10 epochs,
        # augmentation) would take ~40 min for mode=full alone (bench: 230 img/s at 64 px); 6 epochs at 32 px
        # without augmentation reached 92.29% in 10 min in the full study of docs/results.md.
        finetune={"recipe": "fast"},
        finetune_cpu={"recipe": "standard", "image_size": 32, "epochs": 6, "augment": False},
        doc="all 70,000 images, tuned classifiers, 5,000-point views, fine-tune with the fast recipe on a GPU "
            "(on a CPU: the standard one, 6 epochs at 32 px, no augmentation), 2,000 test images under shift",
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
    if epochs is not None:  # explicit epochs win on every device
        p = replace(p, finetune={**p.finetune, "epochs": epochs}, finetune_cpu={**p.finetune_cpu, "epochs": epochs})
    return p
