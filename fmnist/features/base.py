"""The feature registry and what its entries share (the package ``__init__`` imports each feature module)."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from ..registry import Registry

FEATURES = Registry("feature")

# Options every feature accepts that do not change its values (kept out of cache keys).
RUNTIME_DEFAULTS: dict[str, Any] = {"batch_size": 256, "device": "auto"}


class InputTransform(NamedTuple):
    """Steps a feature puts ahead of every classifier's pipeline (logged as ``input_transform``)."""

    description: str
    steps: Callable[[], list]  # -> [(name, sklearn transformer), ...]
    trusted_types: list[str]  # functions skops must trust to load the logged model
