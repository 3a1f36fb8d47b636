"""Run the graph in this process, one cell after another in the order given."""

from __future__ import annotations

from typing import Callable

from .graph import Cell, Progress, Record
from .schedule import Plan


class SerialExecutor:
    name = "serial"
    in_process = True  # cells run here: they may share this process's objects
    multi_node = False

    def __init__(self, progress: bool = True):
        self.progress = progress

    def start(self, env: dict[str, str]) -> None:
        """Nothing to start: cells see this process's environment."""

    def run(self, cells: list[Cell], work: Callable[[Cell, dict[str, Record]], Record],
            skip: Callable[[Cell, str], Record], desc: str = "cells") -> list[Record]:
        """``work(cell, upstream records)`` for each cell whose predecessors succeeded, else ``skip(cell, why)``;
        records in the cells' order."""
        finished: list[tuple[Cell, Record]] = []

        def wait() -> list[tuple[Cell, Record]]:
            out = finished[:]
            finished.clear()
            return out

        bar = Progress(len(cells), self.progress, desc=desc)
        plan = Plan(cells, ordered=True)
        try:  # a cell is done as soon as it is started: one at a time, in the given order
            return plan.drive(lambda c: finished.append((c, work(c, plan.upstream(c)))), wait, skip, bar)
        finally:
            bar.close()

    def close(self) -> None:
        pass
