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
from ..errors import CacheError, FmnistError
from .base import Outcome, Placement, Step, announce_hit, get_or_run, note_reuse, probe, reused
from ..tags import EXECUTOR_TAG, FAILED_STEPS_TAG

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
        needs = {name: add(s, q) for name, (s, q) in step.requires(p).items()}  # input name -> its cell
        res = step.resources(p)
        cell = Cell(f"{step.name} {label(step, p)}", (step, label(step, p), p, needs), tuple(needs.values()),
                    res.get("num_cpus", 1), bool(res.get("gpu")), res.get("cost", 1.0))
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
              ray_address: str = "", progress: bool = True, tags: dict[str, str] | None = None) -> GraphRun:
    """Run the graph, deciding once where each cell's run goes. One target run here (``parent.optional``) is the
    command's own run (it takes over ``mlflow run``'s), its inputs beside it, and its errors propagate as they
    are; else every cell is a child of one parent (which takes over ``mlflow run``'s), the cached cells found by
    the driver and only the rest handed to the executor, and GraphFailed (the parent ends FAILED) says which
    cells failed or were skipped: re-running the same command retries only those. ``tags``: on the targets'
    runs."""
    ex = get_executor(executor, address=ray_address, progress=progress)
    launcher = tracking.launcher_run_id()
    t0 = time.perf_counter()
    try:
        alone = len(graph.targets) == 1 and ex.in_process and parent.optional
        hits, todo = _probe(graph, data)  # (every command checked the store before reading its data)
        if alone:  # the command's own run: no parent, and the run `mlflow run` made is the target's
            (target,) = graph.targets
            if target in hits:
                note_reuse(hits[target][0].payload[0], hits[target][1], launcher)
            ran = _execute(get_executor("serial", progress=False), graph, hits, todo, data, tags,
                           {target: Placement(launcher=launcher)}, Placement(), alone=True)
            return GraphRun(_records(graph, hits, ran), None)
        if todo:
            _start(ex)  # a cluster that cannot take the graph fails here, before any run opens
        else:
            log.info("all %d cells cached%s", len(hits), "" if ex.in_process else f"; no {ex.name} executor started")
        with tracking.run(parent.name, step=parent.step, launcher=launcher) as parent_id:
            tracking.log_params(parent.params)
            tracking.set_tags({**parent.tags, EXECUTOR_TAG: executor})
            ran = _execute(ex, graph, hits, todo, data, tags, {}, Placement(parent=parent_id), desc=parent.name)
            out = GraphRun(_records(graph, hits, ran), parent_id)
            if parent.summary:
                out.records += parent.summary(out) or []
            _summarise(out.records, time.perf_counter() - t0)
            _raise_failures(out.records)
        return out
    finally:
        ex.close()


def run_step(step: Step, p: Any, ds: Any = None, *, tags: dict[str, str] | None = None) -> Outcome:
    """One step as the command's own run: a one-target graph, its inputs found or computed beside it; its
    Outcome (the result loaded on first use)."""
    ds = ds if ds is not None or not step.needs_data else p.load()
    graph = build([(step, p)], lambda _: ds)
    run = run_graph(graph, Parent(step.run_name(p), step.name), data=lambda _: ds, tags=tags, progress=False)
    (rec,) = [r for r in run.records if f"{r.step} {r.cell}" in graph.targets]
    return reused(step, p, ds, rec.run_id, rec.status == "cached")


def _records(graph: Graph, hits: dict[str, tuple[Cell, Outcome]], ran: dict[str, Record]) -> list[Record]:
    """The needed cells' records in the graph's order: the driver's hits and what the executor ran."""
    out = []
    for cell in graph.cells:
        if cell.id in hits:
            hit = hits[cell.id][1]
            out.append(Record(cell.payload[0].name, cell.payload[1], "cached", hit.run_id, hit.seconds,
                              node=socket.gethostname()))
        elif cell.id in ran:
            out.append(ran[cell.id])
    return out


def _probe(graph: Graph, data) -> tuple[dict[str, tuple[Cell, Outcome]], list[Cell]]:
    """The cached cells (with what the probe found) and the cells left to run, each waiting only on cells left
    to run. Dependants are probed first; an input is probed only when a cell reading it must run."""
    needed, hits = set(graph.targets), {}
    for cell in reversed(graph.cells):
        if cell.id not in needed:
            continue
        step, label, p, _ = cell.payload
        try:
            out = probe(step, p, data(p), announce=False)
        except Exception as e:  # the cell itself will meet this error, and fail with it in its record
            log.debug("graph: probe of %s failed: %s", cell.id, e)
            out = None
        if out:
            hits[cell.id] = (cell, out)
        else:
            needed.update(cell.after)
    todo = [replace(c, after=tuple(a for a in c.after if a not in hits)) for c in graph.cells
            if c.id in needed and c.id not in hits]
    for cell in graph.cells:  # in the graph's order, as a reader expects them
        if cell.id in hits:
            announce_hit(cell.payload[0], cell.payload[2], hits[cell.id][1].run_id)
    return hits, todo


def _start(executor) -> None:
    # The URI absolute (workers have other cwds); credentials as variables (other nodes lack ~/.mlflow/credentials):
    # in the runtime environment, never on a command line or in a logged param.
    executor.start({"MLFLOW_TRACKING_URI": tracking.tracking_uri(), **tracking.credentials_env()})
    if executor.multi_node and not tracking.tracking_uri().startswith(("http://", "https://")):
        raise FmnistError(f"a Ray cluster of {len(executor.nodes)} nodes needs an HTTP tracking server with proxied "
                          f"artifacts (the team server: make server), not {tracking.tracking_uri()}: other nodes "
                          f"cannot reach a local store")


def _execute(executor, graph: Graph, hits, todo: list[Cell], data, tags, placed: dict[str, Placement],
             default: Placement, desc: str = "cells", alone: bool = False) -> dict[str, Record]:
    """Run ``todo`` on the executor, each cell placed as ``placed`` says (else ``default``) with its inputs from
    the graph's records: the probe's hits (``hits``) and the cells run before it."""
    if not todo:
        return {}
    cached = {cid: out.info for cid, (_, out) in hits.items()}  # the probe's read: no second one per input
    work = CellWork(graph.targets, cached, placed, default, tags or {}, alone)
    if executor.in_process:  # cells share this process's datasets, loaded inputs and the open parent run
        run = lambda c, upstream: work(c, upstream, data(c.payload[2]))  # noqa: E731
    else:
        work.experiment_id = tracking.get_run_info(default.parent)["experiment_id"]
        run = work
    try:
        return dict(zip((c.id for c in todo), executor.run(todo, run, _skip, desc=desc)))
    finally:
        if default.parent:
            killed = tracking.end_unfinished_children(default.parent, "KILLED",
                                                      "its worker died or the command was stopped")
            if killed:
                log.warning("%d child run(s) left unfinished by lost workers marked KILLED", len(killed))


class CellWork:
    """One cell through ``get_or_run``, placed as the driver decided, its inputs from the graph's records; a
    failure becomes its record (``alone``, the command's own run and its inputs: it propagates as it is).
    Picklable for Ray workers (no dataset: they load their own)."""

    def __init__(self, targets, cached: dict[str, dict], placed: dict[str, Placement], default: Placement,
                 tags: dict[str, str], alone: bool = False):
        self.targets, self.cached, self.placed, self.default = set(targets), cached, placed, default
        self.tags, self.alone, self.experiment_id = tags, alone, ""

    def __call__(self, cell: Cell, upstream: dict[str, Record], ds=None) -> Record:
        if self.experiment_id:  # a worker: child runs live in the parent's experiment
            os.environ["MLFLOW_EXPERIMENT_ID"] = self.experiment_id
        step, label, p, needs = cell.payload
        rec = Record(step.name, label, node=os.environ.get("FMNIST_NODE_ID") or socket.gethostname())
        t0 = time.perf_counter()
        place = self.placed.get(cell.id, self.default)
        try:
            ds = ds if ds is not None or not step.needs_data else p.load()
            inputs = {name: self._input(step, p, ds, name, cid, upstream, place) for name, cid in needs.items()}
            out = get_or_run(step, p, ds, placement=place, inputs=inputs,
                             tags=self.tags if cell.id in self.targets else None)
            rec.status, rec.run_id = ("cached" if out.cached else "ran"), out.run_id
        except Exception as e:  # one cell failing must not stop the independent ones
            if self.alone:
                raise
            rec.status, rec.error = "failed", tracking.one_line(e)
            log.error("%s %s failed: %s", step.name, label, rec.error)
        rec.seconds = time.perf_counter() - t0
        return rec

    def _input(self, step, p, ds, name: str, cid: str, upstream: dict[str, Record], place: Placement) -> Outcome:
        """An input as the graph got it, loaded; one that will not load is computed again beside the cell."""
        s, q = step.requires(p)[name]
        run = self.cached[cid] if cid in self.cached else upstream[cid].run_id
        # "cached": the input was in the store when this cell started, as a grid's cell finds a sibling's; a
        # command's own run counts its input as computed when the command computed it
        cached = cid in self.cached or not self.alone or upstream[cid].status == "cached"
        out = reused(s, q, ds, run, cached)
        try:
            out.result
        except CacheError as e:
            log.warning("%s: run %s will not load (%s); recomputing", s.name, out.run_id, e)
            out = get_or_run(s, replace(q, force=True), ds, placement=Placement(parent=place.parent))
        return out


def _skip(cell: Cell, why: str) -> Record:
    return Record(cell.payload[0].name, cell.payload[1], status="skipped", error=why)


def _summarise(records: list[Record], seconds: float) -> None:
    """``steps.csv`` (every needed cell: ran, cached, failed or skipped, where and how long) on the parent."""
    import pandas as pd

    table = pd.DataFrame([asdict(r) for r in records])
    tracking.log_table(table, "steps.csv")
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    tracking.log_metrics({"graph_seconds": seconds, **{f"steps_{k}": v for k, v in counts.items()}})
    failed = [f"{r.step} {r.cell}" for r in records if r.status in ("failed", "skipped")]
    tracking.set_tags({FAILED_STEPS_TAG: ", ".join(failed) or "none"})
    log.info("%d cells in %.1fs: %s", len(records), seconds, ", ".join(f"{v} {k}" for k, v in counts.items()))


def _raise_failures(records: list[Record]) -> None:
    bad = [r for r in records if r.status in ("failed", "skipped")]
    if bad:
        first = next((r for r in bad if r.status == "failed"), bad[0])
        raise GraphFailed(f"{len(bad)} step(s) failed or were skipped: {', '.join(f'{r.step} {r.cell}' for r in bad)} "
                          f"(first: {first.step} {first.cell}: {first.error}); re-run the same command to retry "
                          f"only those")


__all__ = ["CellWork", "Graph", "GraphFailed", "GraphRun", "Parent", "build", "run_graph", "run_step"]
