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

    def run(self, cells: list[Cell], work: Callable[[Cell], Record], skip: Callable[[Cell, str], Record],
            desc: str = "cells") -> list[Record]:
        """``work(cell)`` for each cell whose predecessors succeeded, else ``skip(cell, why)``; records in the
        cells' order."""
        plan = Plan(cells, ordered=True)
        bar = Progress(len(cells), self.progress, desc=desc)
        try:
            while not plan.over:
                plan.skip_ready(skip, bar)
                for cell in plan.admit():
                    bar.started()
                    plan.finish(cell, work(cell))
                    bar.finished(plan.done[cell.id])
                plan.check()
        finally:
            bar.close()
        return plan.records()

    def close(self) -> None:
        pass
