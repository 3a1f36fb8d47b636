"""Distribution shifts of test images: kinds (each with three graded levels), deterministic for a seed."""

from .base import SHIFTS, apply, check_level, level_name, levels, rng_for

from . import geometric, photometric  # noqa: E402,F401  (registration side effects; the report's order)
from .measure import NONE, accuracy_rows, sets, shift_metrics, shift_sample, shifted_sets  # noqa: E402

__all__ = ["NONE", "SHIFTS", "accuracy_rows", "apply", "check_level", "level_name", "levels", "rng_for", "sets",
           "shift_metrics", "shift_sample", "shifted_sets"]
