"""Every command is a graph: (step, params) cells built from what each step ``requires``, handed to an executor.

``build`` adds each target's inputs before it (one cell per cache key, so a grid's cells share one extract);
``run_graph`` opens one parent run for a grid (more than one target: the run ``mlflow run`` made, under it), has
the driver probe which cells are cached (one read each, nothing loaded: an input is probed only when a cell
that reads it must run), hands the rest to the serial or Ray executor as children of that parent, and logs
``steps.csv``. Inputs are siblings of the cells that read them, in every command alike.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from .. import tracking
from ..engine import Cell, Record, get_executor
from ..errors import FmnistError
from .base import Step, announce_hit, get_or_run, probe

log = logging.getLogger("fmnist")


class GraphFailed(FmnistError):
    pass


@dataclass
class Graph:
    cells: list[Cell]
    targets: set[str]  # the ids the command asked for; the others are inputs, run only when a target needs them


def build(targets: list[tuple[Step, Any]], data: Callable[[Any], Any],
          label: Callable[[Step, Any], str] | None = None) -> Graph:
    """The cells for ``targets`` and everything they require, inputs first; one cell per (step, cache key).
    ``data(p)``: the dataset a cell's params name. Computing the keys checks every cell's params: bad input
    fails here, before any run opens."""
    label = label or (lambda step, p: step.label(p))
    cells: list[Cell] = []
    by_key: dict[tuple[str, str], str] = {}

    def add(step: Step, p: Any) -> str:
        k = (step.name, step.key(p, data(p) if step.needs_data else None) if step.cacheable else repr(p))
        if k in by_key:
            return by_key[k]
        after = tuple(add(s, q) for s, q in step.requires(p).values())
        res = step.resources(p)
        cell = Cell(f"{step.name} {label(step, p)}", (step, label(step, p), p), after, res.get("num_cpus", 1),
                    bool(res.get("gpu")), res.get("cost", 1.0))
        if any(c.id == cell.id for c in cells):
            raise RuntimeError(f"two different cells are both named {cell.id!r}")
        cells.append(cell)
        by_key[k] = cell.id
        return cell.id

    return Graph(cells, {add(step, p) for step, p in targets})


@dataclass
class GraphRun:
    records: list[Record]  # the cells that were needed, in the graph's order
    parent_run_id: str | None

    def ok(self, step: str | None = None) -> list[Record]:
        return [r for r in self.records if r.ok and (step is None or r.step == step)]


@dataclass(frozen=True)
class Parent:
    """The parent run of a graph: its name, step tag, params, tags, and what it logs at the end (``summary``
    gets the GraphRun inside the open parent; records it returns, e.g. the study's report, join steps.csv)."""

    name: str
    step: str
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    summary: Callable[[GraphRun], list[Record] | None] | None = None
    optional: bool = True  # one target (not a grid) runs as the command's own run, with no parent


def run_graph(graph: Graph, parent: Parent, *, data: Callable[[Any], Any], executor: str = "serial",
              ray_address: str = "", progress: bool = True) -> GraphRun:
    """Run the graph: a single cell here as the command's own run; else under one parent, the cached cells
    found by the driver and only the rest handed to the executor. Raises GraphFailed (the parent ends
    FAILED) when a cell failed or was skipped; re-running the same command retries only those."""
    ex = get_executor(executor, address=ray_address, progress=progress)
    t0 = time.perf_counter()
    try:
        if len(graph.targets) == 1 and ex.in_process and parent.optional:
            return _alone(next(c for c in graph.cells if c.id in graph.targets), data)
        hits, todo = _probe(graph, data)  # (every command checked the store before reading its data)
        if todo:
            _start(ex)  # a cluster that cannot take the graph fails here, before any run opens
        else:
            log.info("all %d cells cached%s", len(hits), "" if ex.in_process else f"; no {ex.name} executor started")
        with tracking.run(parent.name, step=parent.step) as parent_id:
            tracking.log_params(parent.params)
            tracking.set_tags({**parent.tags, "fmnist.executor": executor})
            ran = _execute(ex, todo, parent_id, data, parent.name) if todo else {}
            needed = [c.id for c in graph.cells if c.id in hits or c.id in ran]
            out = GraphRun([hits.get(c) or ran[c] for c in needed], parent_id)
            if parent.summary:
                out.records += parent.summary(out) or []
            _summarise(out.records, time.perf_counter() - t0)
            _raise_failures(out.records)
        return out
    finally:
        ex.close()


def _alone(cell: Cell, data) -> GraphRun:
    """One target: the command's own run (``mlflow run``'s, under it), its inputs got first beside it, never
    inside it (``get_or_run``); its errors propagate as they are."""
    step, label, p = cell.payload
    out = get_or_run(step, p, data(p))
    rec = Record(step.name, label, "cached" if out.cached else "ran", out.run_id, out.seconds,
                 node=socket.gethostname())
    return GraphRun([rec], None)


def _probe(graph: Graph, data) -> tuple[dict[str, Record], list[Cell]]:
    """The cached cells (as records) and the cells left to run, each waiting only on cells left to run.
    Dependants are probed first; an input is probed only when a cell reading it must run."""
    needed, hits = set(graph.targets), {}
    for cell in reversed(graph.cells):
        if cell.id not in needed:
            continue
        step, label, p = cell.payload
        try:
            out = probe(step, p, data(p), announce=False)
        except Exception as e:  # the cell itself will meet this error, and fail with it in its record
            log.debug("graph: probe of %s failed: %s", cell.id, e)
            out = None
        if out:
            hits[cell.id] = Record(step.name, label, "cached", out.run_id, out.seconds, node=socket.gethostname())
        else:
            needed.update(cell.after)
    todo = [replace(c, after=tuple(a for a in c.after if a not in hits)) for c in graph.cells
            if c.id in needed and c.id not in hits]
    for cell in graph.cells:  # in the graph's order, as a reader expects them
        if cell.id in hits:
            announce_hit(cell.payload[0], cell.payload[2], hits[cell.id].run_id)
    return hits, todo


def _start(executor) -> None:
    # The URI absolute (workers have other cwds); credentials as variables (other nodes lack ~/.mlflow/credentials):
    # in the runtime environment, never on a command line or in a logged param.
    executor.start({"MLFLOW_TRACKING_URI": tracking.tracking_uri(), **tracking.credentials_env()})
    if executor.multi_node and not tracking.tracking_uri().startswith(("http://", "https://")):
        raise FmnistError(f"a Ray cluster of {len(executor.nodes)} nodes needs an HTTP tracking server with proxied "
                          f"artifacts (the team server: make server), not {tracking.tracking_uri()}: other nodes "
                          f"cannot reach a local store")


def _execute(executor, cells: list[Cell], parent: str, data, desc: str) -> dict[str, Record]:
    if executor.in_process:  # cells share this process's datasets, loaded inputs and the open parent run
        work = lambda c: run_cell(c, parent, data(c.payload[2]))  # noqa: E731
    else:
        work = RemoteCell(parent, tracking.get_run_info(parent)["experiment_id"])
    try:
        return dict(zip((c.id for c in cells), executor.run(cells, work, _skip, desc=desc)))
    finally:
        killed = tracking.end_unfinished_children(parent, "KILLED", "its worker died or the command was stopped")
        if killed:
            log.warning("%d child run(s) left unfinished by lost workers marked KILLED", len(killed))


def run_cell(cell: Cell, parent_run_id: str | None = None, ds=None) -> Record:
    """One cell through ``get_or_run``, as a child of the graph's parent; a failure becomes its record."""
    step, label, p = cell.payload
    rec = Record(step.name, label, node=os.environ.get("FMNIST_NODE_ID") or socket.gethostname())
    t0 = time.perf_counter()
    try:
        parent = None if tracking.active_run_id() == parent_run_id else parent_run_id
        out = get_or_run(step, p, ds, parent_run_id=parent)
        rec.status, rec.run_id = ("cached" if out.cached else "ran"), out.run_id
    except Exception as e:  # one cell failing must not stop the independent ones
        rec.status, rec.error = "failed", tracking.one_line(e)
        log.error("%s %s failed: %s", step.name, label, rec.error)
    rec.seconds = time.perf_counter() - t0
    return rec


def _skip(cell: Cell, why: str) -> Record:
    return Record(cell.payload[0].name, cell.payload[1], status="skipped", error=why)


class RemoteCell:
    """``run_cell`` bound to the parent run, picklable for other processes (no dataset: they load their own)."""

    def __init__(self, parent: str, experiment_id: str):
        self.parent, self.experiment_id = parent, experiment_id

    def __call__(self, cell: Cell) -> Record:
        os.environ["MLFLOW_EXPERIMENT_ID"] = self.experiment_id  # child runs live in the parent's experiment
        return run_cell(cell, self.parent)


def _summarise(records: list[Record], seconds: float) -> None:
    """``steps.csv`` (every needed cell: ran, cached, failed or skipped, where and how long) on the parent."""
    import pandas as pd

    table = pd.DataFrame([asdict(r) for r in records])
    tracking.log_table(table, "steps.csv")
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    tracking.log_metrics({"graph_seconds": seconds, **{f"steps_{k}": v for k, v in counts.items()}})
    failed = [f"{r.step} {r.cell}" for r in records if r.status in ("failed", "skipped")]
    tracking.set_tags({"fmnist.failed_steps": ", ".join(failed) or "none"})
    log.info("%d cells in %.1fs: %s", len(records), seconds, ", ".join(f"{v} {k}" for k, v in counts.items()))


def _raise_failures(records: list[Record]) -> None:
    bad = [r for r in records if r.status in ("failed", "skipped")]
    if bad:
        first = next((r for r in bad if r.status == "failed"), bad[0])
        raise GraphFailed(f"{len(bad)} step(s) failed or were skipped: {', '.join(f'{r.step} {r.cell}' for r in bad)} "
                          f"(first: {first.step} {first.cell}: {first.error}); re-run the same command to retry "
                          f"only those")


__all__ = ["Graph", "GraphFailed", "GraphRun", "Parent", "RemoteCell", "build", "run_cell", "run_graph"]
