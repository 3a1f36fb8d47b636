"""Run the graph in this process, one cell after another in the order given (today's behaviour)."""

from __future__ import annotations

from typing import Callable

from .graph import Cell, Progress, Record, skipped_because


class SerialExecutor:
    name = "serial"
    in_process = True  # cells run here: they may share this process's objects
    multi_node = False

    def __init__(self, progress: bool = True):
        self.progress = progress

    def start(self, env: dict[str, str]) -> None:
        """Nothing to start: cells see this process's environment."""

    def run(self, cells: list[Cell], work: Callable[[Cell], Record], skip: Callable[[Cell, str], Record]
            ) -> list[Record]:
        """``work(cell)`` for each cell whose predecessors succeeded, else ``skip(cell, why)``."""
        done: dict[str, Record] = {}
        bar = Progress(len(cells), self.progress)
        try:
            for cell in cells:
                why = skipped_because(cell, done)
                bar.started()
                done[cell.id] = skip(cell, why) if why else work(cell)
                bar.finished(done[cell.id])
        finally:
            bar.close()
        return list(done.values())

    def close(self) -> None:
        pass
