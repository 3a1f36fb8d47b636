"""Run a logged result again and say whether it reproduces (``fmnist rerun RUN_ID``).

The run's step is recomputed from its recorded params (``fmnist.params_json``) with the cache bypassed for it
(its inputs still come from the cache, verified), in a new run tagged ``fmnist.rerun_of``. Each logged metric
is compared with the new value: exact, or within the tolerance its step declares (``Step.tolerances``);
timings are not results and are not compared. Artifacts with recorded checksums are compared by checksum, and
predictions that differ by how many test images changed. A study parent reruns every cell.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .. import tracking
from ..engine import Cell, Record, get_executor
from ..envinfo import drift, pinned_threads
from ..errors import FmnistError
from ..significance import shared_images
from ..steps.base import (ARTIFACTS_TAG, CODE_TAG, ENV_TAG, PARAMS_TAG, PREDICTIONS, RERUN_TAG, load_predictions,
                          provenance)
from ..steps.graph import run_step
from ..steps.all import STEPS as ALL_STEPS
from ..steps.params import param
from ..tags import DATA_DIGEST_TAG

log = logging.getLogger("fmnist")

NOT_RESULTS = ("*_seconds", "images_per_second", "seconds", "system/*")  # how long and on what: never compared
IDENTICAL, WITHIN, DIFFERS = "identical", "within tolerance", "differs"


@dataclass(frozen=True)
class RerunParams:
    run_id: str = param("", "The FINISHED run to rerun: a step's run, or a study parent (every cell).")
    allow_drift: bool = param(False, "Rerun even when the data, code or environment differs from the run's "
                                     "(the drift is reported above the table).")
    cells: str = param("", "A study's cells to rerun, a comma list (e.g. 'classify raw/lda'); empty: all.")
    executor: str = param("serial", "How a study's cells run: serial or ray.")
    ray_address: str = param("", "A Ray cluster to join (host:port); empty: $RAY_ADDRESS or a local instance.")
    progress: bool = param(True, "Show the live line (or a line per cell off a terminal).", flag=True, key=False)


class DriftError(FmnistError):
    """The data, the code or the environment is not the run's: a rerun would not test reproduction."""


@dataclass
class Row:
    what: str  # a metric name, or "artifact <name>"
    logged: Any
    new: Any
    verdict: str
    note: str = ""


@dataclass
class Rerun:
    run_id: str
    new_run_id: str
    step: str
    cell: str
    rows: list[Row] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.verdict != DIFFERS for r in self.rows)


STEPS = {k: v for k, v in ALL_STEPS.items() if k != "report"}  # what a run can be rerun of


def rerun_run(run_id: str, allow_drift: bool = False) -> Rerun:
    """Recompute one FINISHED step run and compare; DriftError (one line) when data, code or environment
    changed and ``allow_drift`` is off."""
    if not tracking.run_exists(run_id):
        raise FmnistError(f"no run {run_id!r} in {tracking.tracking_uri().split('?')[0]}")
    info = tracking.get_run_info(run_id)
    name = info["tags"].get(tracking.STEP_TAG, "")
    step = STEPS.get(name)
    if step is None:
        raise FmnistError(f"run {run_id} is a {name or 'non-fmnist'} run; rerun takes a FINISHED run of one of: "
                          f"{', '.join(STEPS)}, or a study")
    if info["status"] != "FINISHED":
        raise FmnistError(f"run {run_id} is {info['status']}, not FINISHED: nothing was logged to reproduce")
    recorded = info["tags"].get(PARAMS_TAG)
    if not recorded:
        raise FmnistError(f"run {run_id} records no params to rerun ({PARAMS_TAG}): an older fmnist logged it")
    p = replace(step.Params(**json.loads(recorded)), force=True)
    ds = p.load()
    before = json.loads(info["tags"].get(ENV_TAG) or "{}")
    with pinned_threads(before):  # the run's thread counts: they change a result's last bits
        now = provenance(step, p)
        found = _drift(info["tags"], ds.digest, now)
        if found and not allow_drift:
            raise DriftError(f"run {run_id} was computed with other "
                             f"{' and '.join(sorted({d.split(':')[0] for d in found}))} ({'; '.join(found)}); "
                             f"--allow-drift reruns it anyway and reports the drift")
        new_id = run_step(step, p, ds, tags={RERUN_TAG: run_id}).run_id  # its inputs found as a rule, not rerun
    new = tracking.get_run_info(new_id)
    tol = step.tolerances(p)
    rows = compare_metrics(info["metrics"], new["metrics"], tol)
    rows += compare_artifacts(run_id, info["tags"], new_id, new["tags"], tol.get("predictions_changed", 0.0))
    return Rerun(run_id, new_id, name, step.run_name(p), rows, found)


def _drift(tags: dict, digest: str, now: dict[str, str]) -> list[str]:
    found = []
    if tags.get(DATA_DIGEST_TAG, digest) != digest:
        found.append(f"data: digest {tags.get(DATA_DIGEST_TAG, '')[:12]} -> {digest[:12]}")
    if tags.get(CODE_TAG, "") != now[CODE_TAG]:
        found.append(f"code: {tags.get(CODE_TAG, '(none recorded)')} -> {now[CODE_TAG]}")
    before = json.loads(tags.get(ENV_TAG) or "{}")
    found += [f"environment: {d}" for d in drift(before, json.loads(now[ENV_TAG]))]
    return found


def _tolerance(metric: str, tolerances: dict[str, float]) -> float:
    return next((t for pat, t in tolerances.items() if fnmatch.fnmatch(metric, pat)), 0.0)


def compare_metrics(logged: dict[str, float], new: dict[str, float], tolerances: dict[str, float]) -> list[Row]:
    rows = []
    for k in sorted(logged):
        if any(fnmatch.fnmatch(k, pat) for pat in NOT_RESULTS):
            continue
        a, b = logged[k], new.get(k)
        tol = _tolerance(k, tolerances)
        if b is not None and (a == b or (math.isnan(a) and math.isnan(b))):
            rows.append(Row(k, a, b, IDENTICAL))
        elif b is not None and tol > 0 and abs(a - b) <= tol:
            rows.append(Row(k, a, b, WITHIN, f"tolerance {tol:g}"))
        else:
            rows.append(Row(k, a, b, DIFFERS, "" if tol == 0 else f"tolerance {tol:g}"))
    return rows


def compare_artifacts(run_id: str, tags: dict, new_id: str, new_tags: dict, changed_ok: float = 0.0) -> list[Row]:
    before, after = (json.loads(t.get(ARTIFACTS_TAG) or "{}") for t in (tags, new_tags))
    rows = []
    for name, sha in sorted(before.items()):
        got = after.get(name)
        if got == sha:
            rows.append(Row(f"artifact {name}", sha[:12], got[:12], IDENTICAL, "sha256"))
            continue
        note, verdict = "", DIFFERS
        if name == PREDICTIONS and got:
            changed, n = _changed_predictions(run_id, new_id)
            note = f"{changed} of {n} test predictions changed"
            if changed_ok and changed <= changed_ok * n:
                verdict, note = WITHIN, f"{note}; tolerance {changed_ok:g} of them"
        rows.append(Row(f"artifact {name}", sha[:12], (got or "missing")[:12], verdict, note))
    return rows


def _changed_predictions(a: str, b: str) -> tuple[int, int]:
    """(test predictions of run ``a`` that run ``b`` changed or did not make, how many ``a`` made), matched by
    test image (``shared_images``)."""
    pa, pb = load_predictions(a), load_predictions(b)
    s = shared_images(pa, pb)
    n = len(pa["predicted"])
    return n - int(np.sum(pa["predicted"][s.a] == pb["predicted"][s.b])), n


def table(r: Rerun) -> str:
    """The comparison as aligned text: metric, logged, new, verdict."""
    def fmt(v):
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    lines = [(row.what, fmt(row.logged), fmt(row.new), row.verdict + (f" ({row.note})" if row.note else ""))
             for row in r.rows]
    head = ("metric", "logged", "new", "verdict")
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(3)]
    out = [f"{head[0]:{widths[0]}}  {head[1]:>{widths[1]}}  {head[2]:>{widths[2]}}  {head[3]}"]
    out += [f"{a:{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in lines]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- a study


def study_cells(run_id: str, only: str = "") -> list[tuple[str, str, str]]:
    """(step, cell label, run id) of a study parent's cells from its ``steps.csv``; ``only``: a comma list of
    cells (``classify raw/lda`` or ``raw/lda``)."""
    import pandas as pd

    steps_csv = pd.read_csv(tracking.artifact_local_path(run_id, "steps.csv"))
    cells = [(r.step, r.cell, r.run_id) for r in steps_csv.itertuples()
             if r.step in STEPS and r.status in ("ran", "cached") and isinstance(r.run_id, str)]
    if only:
        wanted = [w.strip() for w in only.split(",") if w.strip()]
        names = {f"{s} {c}": (s, c, i) for s, c, i in cells}
        unknown = [w for w in wanted if w not in names and not any(c == w for _, c, _ in cells)]
        if unknown:
            raise FmnistError(f"study {run_id} has no cell {unknown[0]!r}; its cells: {', '.join(names)}")
        cells = [x for n, x in names.items() if n in wanted or x[1] in wanted]
    return cells


def rerun_study(run_id: str, *, executor: str = "serial", address: str = "", only: str = "",
                allow_drift: bool = False, progress: bool = True) -> list:
    """Every cell of a study parent rerun through the executor; its Records (status ``ran`` when the cell
    reproduces, ``failed`` with the reason when it does not)."""
    cells = study_cells(run_id, only)
    graph = [Cell(f"{s} {c}", (s, c, i, allow_drift), num_cpus=_cpus_of(i)) for s, c, i in cells]
    ex = get_executor(executor, address=address, progress=progress)
    try:
        ex.start({"MLFLOW_TRACKING_URI": tracking.tracking_uri(), **tracking.credentials_env()})
        work = RerunCell(tracking.get_run_info(run_id)["experiment_id"])
        return ex.run(graph, work, lambda cell, why: Record(cell.payload[0], cell.payload[1], "skipped", error=why),
                      desc=f"rerun {run_id[:8]}")
    finally:
        ex.close()


def _cpus_of(run_id: str) -> float:
    """The CPUs a cell's rerun holds: as many as the threads the run was computed with (so that they can be
    pinned without oversubscribing), else what its step declares."""
    tags = tracking.get_run_info(run_id)["tags"]
    env = json.loads(tags.get(ENV_TAG) or "{}")
    if env.get("threads") or env.get("blas_threads"):
        return max(int(env.get("threads") or 1), int(env.get("blas_threads") or 1))
    step = STEPS[tags[tracking.STEP_TAG]]
    return step.resources(step.Params(**json.loads(tags.get(PARAMS_TAG) or "{}"))).get("num_cpus", 1)


class RerunCell:
    """One cell's rerun as an executor's work (picklable: Ray workers call it)."""

    def __init__(self, experiment_id: str):
        self.experiment_id = experiment_id

    def __call__(self, cell, upstream=None):
        import os
        import socket
        import time

        step, label, run_id, allow_drift = cell.payload
        os.environ.setdefault("MLFLOW_EXPERIMENT_ID", self.experiment_id)  # the rerun beside the original
        rec = Record(step, label, node=socket.gethostname())
        t = time.perf_counter()
        try:
            r = rerun_run(run_id, allow_drift)
            rec.run_id = r.new_run_id
            differs = [row for row in r.rows if row.verdict == DIFFERS]
            rec.status = "ran" if not differs else "failed"
            rec.error = "; ".join(f"{row.what} {row.logged} -> {row.new}" + (f" ({row.note})" if row.note else "")
                                  for row in differs)
        except Exception as e:
            rec.status, rec.error = "failed", tracking.one_line(e)
        rec.seconds = time.perf_counter() - t
        return rec
