"""Environment variables set for a block and put back after (the kernel and MLflow's clients read them)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def environ(updates: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``updates`` inside the block; each variable restored (or removed) after."""
    saved = {k: os.environ.get(k) for k in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
