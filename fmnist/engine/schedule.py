"""The one scheduling loop (``Plan.drive``) and the serial executor on it; list scheduling: which ready cells the
Ray executor starts when CPUs free up, and what a cluster would buy (a finished graph's cells on N workers)."""

from __future__ import annotations

import heapq
from typing import Callable

from .. import signals
from .graph import Cell, Progress, Record, skipped_because


def critical_path(seconds: dict[str, float], after: dict[str, tuple[str, ...]]) -> tuple[float, list[str]]:
    """The longest chain of dependent cells (no number of workers finishes sooner), and its cells."""
    memo: dict[str, tuple[float, list[str]]] = {}

    def longest(c: str) -> tuple[float, list[str]]:
        if c not in memo:
            best = max((longest(a) for a in after.get(c, ()) if a in seconds), default=(0.0, []))
            memo[c] = (best[0] + seconds[c], [*best[1], c])
        return memo[c]

    return max((longest(c) for c in seconds), default=(0.0, []))


def list_schedule(seconds: dict[str, float], after: dict[str, tuple[str, ...]], workers: int) -> float:
    """Predicted wall time: whenever a worker is free it takes the ready cell with the longest tail."""
    tail = tails(seconds, after)
    waiting = {c: {a for a in after.get(c, ()) if a in seconds} for c in seconds}
    ready = [(-tail[c], c) for c, w in waiting.items() if not w]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []  # (finish time, cell)
    now, free = 0.0, workers
    while ready or running:
        while ready and free:
            _, c = heapq.heappop(ready)
            heapq.heappush(running, (now + seconds[c], c))
            free -= 1
        now, done = heapq.heappop(running)
        free += 1
        for c, w in waiting.items():
            if done in w:
                w.discard(done)
                if not w:
                    heapq.heappush(ready, (-tail[c], c))
    return now


def tails(seconds: dict[str, float], after: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """Each cell's own time plus the longest chain of cells waiting on it (memoised: one pass over the graph)."""
    children: dict[str, list[str]] = {c: [] for c in seconds}
    for c, deps in after.items():
        for a in deps:
            if c in seconds and a in children:
                children[a].append(c)
    memo: dict[str, float] = {}

    def tail(c: str) -> float:
        if c not in memo:
            memo[c] = seconds[c] + max((tail(k) for k in children[c]), default=0.0)
        return memo[c]

    return {c: tail(c) for c in seconds}


def ranks(cells) -> dict[str, tuple[bool, float]]:
    """Each cell's priority: first whether other cells wait on it (started first, they open the graph up: a
    two-core extract left behind a long one-core cell idles the other core), then its estimated cost plus
    the longest chain of cells waiting on it."""
    waited_on = {a for c in cells for a in c.after}
    tail = tails({c.id: c.cost for c in cells}, {c.id: c.after for c in cells})
    return {c.id: (c.id in waited_on, tail[c.id]) for c in cells}


def admit(ready, free: float, need: dict[str, float], rank: dict[str, tuple[bool, float]]) -> list:
    """Of the ready cells, those to start now: highest rank first, each only when its CPUs are free, narrower
    ones filling what a wider one leaves (a core never idles while a cell that fits is ready)."""
    out = []
    for cell in sorted(ready, key=lambda c: rank[c.id], reverse=True):
        if need[cell.id] <= free + 1e-9:
            out.append(cell)
            free -= need[cell.id]
    return out


class Plan:
    """The graph's state, shared by the executors (they differ only in how they start and wait for a cell):
    which cells are ready, which must be skipped (a cell they wait for failed or was skipped), which to start
    now and what is done. Pure: no I/O, no clock.

    ``capacity`` CPUs, ``need`` per cell id (default 1 each): a serial executor is capacity 1 with ``ordered``
    (the first ready cell in the given order); Ray admits by ``ranks`` while CPUs are free.
    """

    def __init__(self, cells, capacity: float = 1, need: dict[str, float] | None = None, ordered: bool = False):
        self._why = skipped_because
        self.cells = list(cells)
        self.pending = list(self.cells)
        self.need = need or {c.id: 1.0 for c in self.cells}
        self.free = capacity
        self.rank = None if ordered else ranks(self.cells)
        self.running: set[str] = set()
        self.done: dict = {}

    @property
    def over(self) -> bool:
        return not self.pending and not self.running

    def _ready(self) -> list:
        return [c for c in self.pending if all(a in self.done for a in c.after)]

    def skips(self) -> list:
        """(cell, why) for each ready cell that cannot run; they leave the plan (``finish`` records them)."""
        out = [(c, why) for c in self._ready() if (why := self._why(c, self.done))]
        for c, _ in out:
            self.pending.remove(c)
        return out

    def admit(self) -> list:
        """The ready cells to start now (their CPUs reserved until ``finish``)."""
        ready = [c for c in self._ready() if not self._why(c, self.done)]
        if self.rank is None:
            chosen = [c for c in ready[:1] if self.need[c.id] <= self.free + 1e-9]
        else:
            chosen = admit(ready, self.free, self.need, self.rank)
        for c in chosen:
            self.pending.remove(c)
            self.running.add(c.id)
            self.free -= self.need[c.id]
        return chosen

    def skip_ready(self, skip, bar) -> None:
        """Record ``skip(cell, why)`` for every ready cell that cannot run, on the progress ``bar`` too."""
        for cell, why in self.skips():
            bar.started()
            self.finish(cell, skip(cell, why))
            bar.finished(self.done[cell.id])

    def drive(self, start, wait, skip, bar) -> list:
        """The one scheduling loop both executors run: record ``skip(cell, why)`` for what cannot run, hand each
        admitted cell to ``start(cell)``, then take what ``wait()`` says has finished (``[(cell, record)]``, maybe
        none yet) until every cell is done; the records in the cells' order. Executors differ only in
        ``start`` and ``wait``."""
        while not self.over:
            signals.check()  # between cells: a SIGTERM whose exception Python swallowed still stops the plan
            self.skip_ready(skip, bar)
            for cell in self.admit():
                bar.started()
                start(cell)
            finished = wait() if self.running else []
            if not finished:
                self.check()
            for cell, record in finished:
                self.finish(cell, record)
                bar.finished(self.done[cell.id])
        return self.records()

    def upstream(self, cell) -> dict:
        """The records of the cells ``cell`` waits on (what its work reads its inputs from)."""
        return {a: self.done[a] for a in cell.after}

    def finish(self, cell, record) -> None:
        if cell.id in self.running:
            self.running.remove(cell.id)
            self.free += self.need[cell.id]
        self.done[cell.id] = record

    def check(self) -> None:
        """Raise when nothing runs and nothing can start: cells wait on cells not in the graph (a bug, not a hang)."""
        if self.pending and not self.running and not self._ready():
            raise RuntimeError(f"cells wait on cells not in the graph: {[c.id for c in self.pending]}")

    def records(self) -> list:
        """Every cell's record, in the order the cells were given."""
        return [self.done[c.id] for c in self.cells]


class SerialExecutor:
    """Run the graph in this process, one cell after another in the order given."""

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
