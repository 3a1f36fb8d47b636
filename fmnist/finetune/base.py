"""The fine-tuning registries (the package ``__init__`` imports the modules that fill them)."""

from ..registry import Registry

MODES = Registry("mode")
OPTIMIZERS = Registry("optimizer")
SCHEDULES = Registry("schedule")
