"""The whole study as a task graph of (step, params) cells, handed to an executor (serial or Ray).

One parent run, one child run per cell (each through ``get_or_run``, so cached cells are reused),
``steps.csv`` on the parent, then the report. Failures are isolated: dependants are skipped, independent
cells go on, the parent ends FAILED naming them, and re-running retries only those.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import click

from .. import tracking
from ..classifiers import CLASSIFIERS
from ..data import Dataset, dataset_names, load_dataset
from ..device import resolve_device
from ..embeddings import EMBEDDINGS
from ..engine import EXECUTORS, Cell, Record, get_executor
from ..errors import FmnistError, ParamError
from ..features import FEATURES
from ..study import PROFILES, get_profile
from .base import get_or_run, lookup
from .classify import CLASSIFY, ClassifyParams
from .extract import EXTRACT, ExtractParams
from .finetune import FINETUNE, FinetuneParams
from .params import COUNT, param
from .report import DEFAULT_OUTPUT, REPORT, ReportParams, render_or_reuse
from .register import ALREADY, register_best
from .visualize import VISUALIZE, VisualizeParams

log = logging.getLogger("fmnist")

FINETUNE_MODES = ("last_layer", "full")
STEPS = {s.name: s for s in (EXTRACT, CLASSIFY, VISUALIZE, FINETUNE, REPORT)}


class ProfileCount(click.ParamType):
    """``profile`` (the profile's own subset), ``all`` or a positive number of images."""

    name = "subset"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() == "profile":
            return "profile"
        return COUNT.convert(value, param, ctx)


@dataclass(frozen=True)
class StudyParams:
    profile: str = param("quick", "; ".join(f"{p.name}: {p.doc}" for p in PROFILES.values()),
                         type=click.Choice(list(PROFILES)))
    features: str = param("all", "all, or a comma list of features.")
    models: str = param("all", "all, or a comma list of classifiers.")
    methods: str = param("all", "all, or a comma list of 2-D methods.")
    finetune: bool = param(True, "Fine-tune ResNet-18 (both modes).")
    subset: Any = param("profile", "profile, all, or N images per split (overrides the profile).",
                        type=ProfileCount())
    epochs: int = param(0, "Fine-tune epochs; 0 = the profile's.", type=click.IntRange(min=0))
    dataset: str = param("fashion-mnist", "Dataset of the MNIST family.", type=click.Choice(dataset_names()))
    data_dir: str = param("", "Folder with the IDX files [default: $FMNIST_DATA_DIR or ./data].")
    seeds: str = param("0", "Seeds, comma-separated (e.g. 0,1,2): each re-draws the subsets, validation split, "
                            "model randomness and view sampling, as its own cached cells.")
    weights: str = param("auto", "ResNet-18 weights for features and fine-tuning: imagenet, none, auto or a .pth path.")
    device: str = param("auto", "auto (CUDA when present), cpu, cuda, cuda:N, mps.")
    report: bool = param(True, "Render the report at the end (false: the cells only, e.g. while iterating on a "
                               "grid; `fmnist report` renders it later).")
    report_output: str = param(DEFAULT_OUTPUT, "Where to write the HTML report.")
    executor: str = param("serial", f"{' | '.join(EXECUTORS)}: run the cells one after another here, or as Ray "
                                    "tasks (a local instance, or the cluster at --ray-address).",
                          type=click.Choice(list(EXECUTORS)))
    ray_address: str = param("", "Ray cluster to join (host:port, auto) [default: $RAY_ADDRESS, else a local "
                                 "instance with every core].")
    progress: bool = param(True, "Progress bars.", flag=True)


def parse_seeds(text: Any) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2): distinct non-negative integers, at least one."""
    try:
        seeds = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ParamError(f"seeds={text!r}: give distinct non-negative integers separated by commas, e.g. 0,1,2")
    return seeds


def build_cells(sp: StudyParams, datasets: dict[int, Dataset], prof) -> list[Cell]:
    """Per seed: extract per feature -> classify and visualize per feature; finetune per mode (independent).

    With several seeds every label ends in ``@seed=N``; seeds whose data are the same images (the full data)
    share one extract per feature.
    """
    feat = {"weights": sp.weights, **prof.feature_params}
    cells: list[Cell] = []
    extract_of: dict[tuple[str, str], str] = {}  # (feature, data digest) -> the extract cell computing it

    def add(step: str, label: str, p, after: tuple[str, ...] = ()) -> str:
        res = STEPS[step].resources(p)
        cells.append(Cell(f"{step} {label}", (step, label, p), after, res.get("num_cpus", 1), bool(res.get("gpu")),
                          res.get("cost", 1.0)))
        return cells[-1].id

    feats = FEATURES.expand(sp.features)
    for seed, ds in datasets.items():
        at = f"@seed={seed}" if len(datasets) > 1 else ""
        common = dict(dataset=sp.dataset, data_dir=sp.data_dir, subset=prof.subset, seed=seed, device=sp.device,
                      progress=sp.progress and sp.executor == "serial")
        for f in feats:
            if (f, ds.digest) not in extract_of:
                extract_of[(f, ds.digest)] = add("extract", f"{f}{at}", ExtractParams(feature=f, **common, **feat))
        for f in feats:
            for m in CLASSIFIERS.expand(sp.models):
                add("classify", f"{f}/{m}{at}", ClassifyParams(feature=f, model=m, tune=prof.tune, **common, **feat),
                    (extract_of[(f, ds.digest)],))
        n_samples = min(prof.n_samples, len(ds.y_test))  # a small subset caps the views' sample
        for f in feats:
            for m in EMBEDDINGS.expand(sp.methods):
                add("visualize", f"{f}/{m}{at}",
                    VisualizeParams(feature=f, method=m, n_samples=n_samples, **common, **feat),
                    (extract_of[(f, ds.digest)],))
        if sp.finetune:
            ft = prof.finetune_for(resolve_device(sp.device).type)
            for mode in FINETUNE_MODES:
                add("finetune", f"{mode}{at}", FinetuneParams(mode=mode, weights=sp.weights, **common, **ft).check())
    for c in cells:  # bad feature params fail here, before any run opens (classify/visualize read these)
        if c.payload[0] == "extract":
            c.payload[2].resolved()
    return cells


def run_cell(cell: Cell, parent_run_id: str | None = None, ds: Dataset | None = None) -> Record:
    """One cell through ``get_or_run``, as a child of the study's parent; a failure becomes its record."""
    step, label, p = cell.payload
    rec = Record(step, label, node=os.environ.get("FMNIST_NODE_ID") or socket.gethostname())
    t0 = time.perf_counter()
    try:
        parent = None if tracking.active_run_id() == parent_run_id else parent_run_id
        out = get_or_run(STEPS[step], p, ds, parent_run_id=parent)
        rec.status, rec.run_id = ("cached" if out.cached else "ran"), out.run_id
    except Exception as e:  # one cell failing must not stop the independent ones
        rec.status, rec.error = "failed", tracking.one_line(e)
        log.error("study: %s %s failed: %s", step, label, rec.error)
    rec.seconds = time.perf_counter() - t0
    return rec


def _skip(cell: Cell, why: str) -> Record:
    return Record(cell.payload[0], cell.payload[1], status="skipped", error=why)


class StudyFailed(FmnistError):
    pass


def run_study(**kw: Any) -> list[Record]:
    """Extract -> classify -> visualize -> finetune -> report (unless ``report=False``), each cell a child run of
    one parent."""
    sp = StudyParams(**kw)
    prof = get_profile(sp.profile, subset=None if sp.subset in ("profile", None) else sp.subset,
                       full_data=sp.subset is None, epochs=sp.epochs or None)
    seeds = parse_seeds(sp.seeds)
    datasets = _datasets(sp, prof, seeds)
    ds = datasets[seeds[0]]
    cells = build_cells(sp, datasets, prof)
    executor = get_executor(sp.executor, address=sp.ray_address, progress=sp.progress)
    t0 = time.perf_counter()
    try:
        tracking.check_store()
        hits = _cache_hits(cells, datasets)  # resolved here: an executor only gets the cells left to run
        todo = _waiting_only_on(cells, hits)
        if todo:
            _start(executor)  # a cluster that cannot take the study fails here, before any run opens
        else:
            log.info("study: all %d cells cached; no %s executor started", len(cells), executor.name)
        with tracking.run(f"study-{prof.name}", step="study") as parent:
            tracking.log_params(_study_params(sp, prof, cells, ds))
            tracking.set_tags({"fmnist.data_digest": ds.digest, "fmnist.profile_doc": prof.doc,
                               "fmnist.executor": sp.executor})
            ran = dict(zip((c.id for c in todo), _execute(executor, todo, parent, datasets) if todo else []))
            records = [hits.get(c.id) or ran[c.id] for c in cells]
            records.append(_register(records, parent))
            if sp.report:
                records.append(_report(sp, parent, ds.name))
            _summarise(records, time.perf_counter() - t0)
    finally:
        executor.close()
    return records


def _cache_hits(cells: list[Cell], datasets: dict[int, Dataset]) -> dict[str, Record]:
    """The cells whose FINISHED runs can be reused (artifacts verified), as records: found by the driver, so a
    study with nothing left to run starts no executor."""
    hits = {}
    for cell in cells:
        step, label, p = cell.payload
        try:
            out = lookup(STEPS[step], p, datasets[p.seed])
        except Exception as e:  # the cell itself will meet this error, and fail with it in its record
            log.debug("study: lookup of %s failed: %s", cell.id, e)
            continue
        if out:
            hits[cell.id] = Record(step, label, "cached", out.run_id, out.seconds, node=socket.gethostname())
    return hits


def _waiting_only_on(cells: list[Cell], hits: dict[str, Record]) -> list[Cell]:
    """The cells left to run, each waiting only on cells that are left to run too."""
    return [replace(c, after=tuple(a for a in c.after if a not in hits)) for c in cells if c.id not in hits]


def _start(executor) -> None:
    # The URI absolute (workers have other cwds); credentials as variables (other nodes lack ~/.mlflow/credentials):
    # in the runtime environment, never on a command line or in a logged param.
    executor.start({"MLFLOW_TRACKING_URI": tracking.tracking_uri(), **tracking.credentials_env()})
    if executor.multi_node and not tracking.tracking_uri().startswith(("http://", "https://")):
        raise FmnistError(f"a Ray cluster of {len(executor.nodes)} nodes needs an HTTP tracking server with proxied "
                          f"artifacts (the team server: make server), not {tracking.tracking_uri()}: other nodes "
                          f"cannot reach a local store")


def _datasets(sp: StudyParams, prof, seeds: tuple[int, ...]) -> dict[int, Dataset]:
    """The data of each seed: its own subset draw, or (full data) the same images for every seed."""
    out: dict[int, Dataset] = {}
    for seed in seeds:
        if out and prof.subset is None:
            out[seed] = replace(next(iter(out.values())), seed=seed)
        else:
            out[seed] = load_dataset(sp.dataset, data_dir=sp.data_dir or None, subset=prof.subset, seed=seed)
    return out


def _execute(executor, cells: list[Cell], parent: str, datasets: dict[int, Dataset]) -> list[Record]:
    if executor.in_process:  # cells share this process's datasets and the open parent run
        work = lambda c: run_cell(c, parent, datasets[c.payload[2].seed])  # noqa: E731
    else:
        work = _RayWork(parent, tracking.get_run_info(parent)["experiment_id"])
    try:
        return executor.run(cells, work, _skip)
    finally:
        killed = tracking.end_unfinished_children(parent, "KILLED", "its worker died or the study was stopped")
        if killed:
            log.warning("study: %d child run(s) left unfinished by lost workers marked KILLED", len(killed))


class _RayWork:
    """``run_cell`` bound to the parent run, picklable for other processes (no dataset: they load their own)."""

    def __init__(self, parent: str, experiment_id: str):
        self.parent, self.experiment_id = parent, experiment_id

    def __call__(self, cell: Cell) -> Record:
        os.environ["MLFLOW_EXPERIMENT_ID"] = self.experiment_id  # child runs live in the parent's experiment
        return run_cell(cell, self.parent)


def _study_params(sp: StudyParams, prof, cells: list[Cell], ds: Dataset) -> dict[str, Any]:
    feats = FEATURES.expand(sp.features)
    n_samples = next((c.payload[2].n_samples for c in cells if c.payload[0] == "visualize"), 0)
    epochs = next((c.payload[2].epochs for c in cells if c.payload[0] == "finetune"), 0)
    return {"profile": prof.name, "features": ",".join(feats), "models": ",".join(CLASSIFIERS.expand(sp.models)),
            "methods": ",".join(EMBEDDINGS.expand(sp.methods)), "finetune": sp.finetune,
            "subset": prof.subset or "all", "dataset": ds.name, "seeds": sp.seeds, "weights": sp.weights,
            "device": sp.device, "tune": prof.tune, "n_samples": n_samples, "epochs": epochs,
            "executor": sp.executor, "ray_address": sp.ray_address}


def _register(records: list[Record], parent: str) -> Record:
    """The best model per feature and of fine-tuning into the Model Registry (``fmnist.steps.register``)."""
    rec = Record("register", "models", run_id=parent, node=socket.gethostname())
    t = time.perf_counter()
    try:
        done = register_best([r.run_id for r in records if r.ok and r.step in ("classify", "finetune")])
        rec.status = "cached" if all(r.why == ALREADY for r in done) else "ran"
        tracking.set_tags({"fmnist.registered": ", ".join(f"{r.name} v{r.version} ({r.alias})" for r in done)
                           or "none"})
    except Exception as e:
        rec.status, rec.error = "failed", tracking.one_line(e)
        log.error("study: registering the best models failed: %s", rec.error)
    rec.seconds = time.perf_counter() - t
    return rec


def _report(sp: StudyParams, parent: str, dataset: str) -> Record:
    """The report on the study's own experiment and dataset (the name its runs carry)."""
    rec = Record("report", "html", run_id=parent, node=socket.gethostname())
    t = time.perf_counter()
    try:
        out = render_or_reuse(ReportParams(output=sp.report_output, dataset=dataset))
        rec.status = "cached" if out.cached else "ran"
        rec.run_id = out.run_id
    except Exception as e:
        rec.status, rec.error = "failed", tracking.one_line(e)
        log.error("study: report failed: %s", rec.error)
    rec.seconds = time.perf_counter() - t
    return rec


def _summarise(records: list[Record], seconds: float) -> None:
    import pandas as pd

    table = pd.DataFrame([asdict(r) for r in records])
    tracking.log_table(table, "steps.csv")
    counts = table["status"].value_counts().to_dict()
    tracking.log_metrics({"study_seconds": seconds, **{f"steps_{k}": v for k, v in counts.items()}})
    failed = [f"{r.step} {r.cell}" for r in records if r.status in ("failed", "skipped")]
    tracking.set_tags({"fmnist.failed_steps": ", ".join(failed) or "none"})
    log.info("study: %d steps in %.1fs: %s", len(records), seconds, ", ".join(f"{v} {k}" for k, v in counts.items()))
    if failed:
        raise StudyFailed(f"{len(failed)} step(s) failed or were skipped: {', '.join(failed)}; "
                          f"re-run the same command to retry only those")


__all__ = ["STEPS", "StudyFailed", "StudyParams", "build_cells", "run_cell", "run_study"]
