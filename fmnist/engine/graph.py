"""The task graph's parts: cells, their records, and the live progress line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cell:
    id: str  # unique in the graph, e.g. "classify scatnet/svm"
    payload: Any  # what ``work`` needs (opaque to the executor)
    after: tuple[str, ...] = ()  # ids of cells that must have succeeded first
    num_cpus: float = 1  # cores it keeps busy (math.inf: a whole node)
    wants_gpu: bool = False  # uses a GPU when the cluster has one
    cost: float = 1.0  # rough seconds on one 2-core node: only orders ready cells (longest chain first)


@dataclass
class Record:
    step: str
    cell: str
    status: str = "pending"  # ran | cached | failed | skipped
    run_id: str = ""
    seconds: float = 0.0
    error: str = ""
    node: str = ""  # where it ran (hostname, or the Ray node id)

    @property
    def ok(self) -> bool:
        return self.status in ("ran", "cached")


def skipped_because(cell: Cell, records: dict[str, Record]) -> str | None:
    """Why ``cell`` cannot run (a cell it waits for failed or was skipped), or None."""
    bad = [a for a in cell.after if a in records and not records[a].ok]
    return f"{bad[0]} {records[bad[0]].status}" if bad else None


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Where the graph stands: on a terminal one live line (done / running / failed, elapsed; tqdm), else (a
    log file, CI) one plain line per finished cell, never a redrawn bar. Silent when off."""

    def __init__(self, total: int, enabled: bool = True, desc: str = "study", stream=None):
        import sys

        from tqdm.auto import tqdm

        self.t0 = time.perf_counter()
        self.total, self.done, self.running, self.failed = total, 0, 0, 0
        self.stream = stream or sys.stderr
        self.lines = enabled and not _is_terminal(self.stream)
        self.desc = desc
        self.bar = tqdm(total=total, desc=desc, unit="cell", disable=not enabled or self.lines, dynamic_ncols=True,
                        mininterval=0.5, file=self.stream,
                        bar_format="{desc}: {n}/{total} cells {bar} {elapsed} {postfix}")

    def started(self) -> None:
        self.running += 1
        self._show()

    def finished(self, rec: Record) -> None:
        self.running = max(self.running - 1, 0)
        self.failed += not rec.ok
        self.done += 1
        self.bar.update(1)
        if self.lines:
            took = f" in {rec.seconds:.1f}s" if rec.status == "ran" else ""
            print(f"[fmnist] {self.desc} {self.done}/{self.total}: {rec.step} {rec.cell} {rec.status}{took}"
                  + (f": {rec.error}" if not rec.ok and rec.error else "")
                  + f" ({time.perf_counter() - self.t0:.0f}s elapsed)", file=self.stream, flush=True)
            return
        if not rec.ok:
            self.bar.write(f"[fmnist] {rec.step} {rec.cell} {rec.status}: {rec.error}", file=self.stream)
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix_str(f"running {self.running}, failed {self.failed}", refresh=True)

    def close(self) -> None:
        self.bar.close()
