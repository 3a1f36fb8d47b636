"""The embedding registry (the package ``__init__`` imports each method's module)."""

from ..registry import Registry

EMBEDDINGS = Registry("method")
