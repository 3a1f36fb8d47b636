"""Executors of a task graph: ``serial`` (in this process, in order) or ``ray`` (Ray core tasks).

An executor gets ``Cell``s (an id, what they wait for, a resource hint and an opaque payload) and a
``work(cell, upstream) -> record`` function (``upstream``: the records of the cells it waits for). It knows
nothing about features, models or MLflow; the steps know nothing about executors.
"""

from __future__ import annotations

from .graph import Cell, Record, skipped_because
from .schedule import SerialExecutor

EXECUTORS = ("serial", "ray")


def get_executor(name: str, *, address: str = "", progress: bool = True):
    """The executor by name; errors are one line and happen before any run opens."""
    from ..errors import ChoiceError

    if name == "serial":
        return SerialExecutor(progress=progress)
    if name == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(address=address, progress=progress)
    raise ChoiceError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "Cell", "Record", "SerialExecutor", "get_executor", "skipped_because"]
