"""The whole study as one graph (``fmnist.steps.graph``): extract, classify, visualize and finetune cells, then
the Model Registry and the report on the parent.

One parent run, one child run per cell (each through ``get_or_run``, so cached cells are reused),
``steps.csv`` on the parent. Failures are isolated: dependants are skipped, independent cells go on, the
parent ends FAILED naming them, and re-running retries only those.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, replace
from typing import Any

import click

from .. import tracking
from ..classifiers import CLASSIFIERS
from ..data import Dataset, dataset_names, load_dataset
from ..device import resolve_device
from ..embeddings import EMBEDDINGS
from ..engine import Cell, Record
from ..errors import ParamError
from ..features import FEATURES
from ..study import PROFILES, get_profile
from ..steps.graph import Graph, GraphFailed, GraphRun, Parent, build, run_graph
from ..steps.classify import CLASSIFY, ClassifyParams
from ..steps.extract import EXTRACT, ExtractParams
from ..steps.finetune import FINETUNE, FinetuneParams
from ..steps.params import COUNT, ExecOpts, param
from ..steps.report import DEFAULT_OUTPUT, ReportParams, render_or_reuse
from ..steps.register import ALREADY, register_best
from ..steps.shift import SHIFT, ShiftOpts, shift_of
from ..steps.visualize import VISUALIZE, VisualizeParams
from ..tags import (DATA_DIGEST_TAG, DATASET_PARAM, EPOCHS_PARAM, N_SAMPLES_PARAM, PROFILE_DOC_TAG, REGISTERED_TAG,
                   SHIFT_N_PARAM, SUBSET_PARAM)

log = logging.getLogger("fmnist")

FINETUNE_MODES = ("last_layer", "full")


class ProfileCount(click.ParamType):
    """``profile`` (the profile's own subset), ``all`` or a positive number of images."""

    name = "subset"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() == "profile":
            return "profile"
        return COUNT.convert(value, param, ctx)


@dataclass(frozen=True)
class StudyParams(ExecOpts):
    profile: str = param("quick", "; ".join(f"{p.name}: {p.doc}" for p in PROFILES.values()),
                         type=click.Choice(list(PROFILES)))
    features: str = param("all", "all, or a comma list of features.")
    models: str = param("all", "all, none, or a comma list of classifiers.")
    methods: str = param("all", "all, none, or a comma list of 2-D methods.")
    finetune: bool = param(True, "Fine-tune ResNet-18 (both modes).")
    shift: bool = param(True, "Measure every scored model under shift (`fmnist shift`: the profile's test sample "
                              "translated, rotated, scaled, deformed, noised, blurred); false skips it.")
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


def _expand(registry, spec: str) -> list[str]:
    """``none`` leaves that kind of cell out of the study; else the registry's ``all`` or comma list."""
    return [] if spec.strip().lower() == "none" else registry.expand(spec)


def build_graph(sp: StudyParams, datasets: dict[int, Dataset], prof) -> Graph:
    """Per seed: extract per feature, classify and visualize per feature, finetune per mode (independent).

    With several seeds every label ends in ``@seed=N``; seeds whose data are the same images (the full data)
    share one extract per feature (one cell per cache key).
    """
    feat = {"weights": sp.weights, **prof.feature_params}
    targets: list[tuple[Any, Any]] = []
    feats = FEATURES.expand(sp.features)
    for seed, ds in datasets.items():
        common = dict(dataset=sp.dataset, data_dir=sp.data_dir, subset=prof.subset, seed=seed, device=sp.device,
                      progress=sp.progress and sp.executor == "serial")
        targets += [(EXTRACT, ExtractParams(feature=f, **common, **feat)) for f in feats]
        targets += [(CLASSIFY, ClassifyParams(feature=f, model=m, tune=prof.tune, **common, **feat))
                    for f in feats for m in _expand(CLASSIFIERS, sp.models)]
        n_samples = min(prof.n_samples, len(ds.y_test))  # a small subset caps the views' sample
        targets += [(VISUALIZE, VisualizeParams(feature=f, method=m, n_samples=n_samples, **common, **feat))
                    for f in feats for m in _expand(EMBEDDINGS, sp.methods)]
        if sp.finetune:
            ft = prof.finetune_for(resolve_device(sp.device).type)
            targets += [(FINETUNE, FinetuneParams(mode=mode, weights=sp.weights, **common, **ft).check())
                        for mode in FINETUNE_MODES]
        if sp.shift:  # every scored model of this seed, on the same test images (drawn from the whole split)
            opts = ShiftOpts(shift_n=shift_n(sp, prof))
            targets += [(SHIFT, shift_of(s, q, opts)) for s, q in list(targets)
                        if s in (CLASSIFY, FINETUNE) and q.seed == seed]
    for _, p in targets:  # bad feature params fail here, before any run opens
        if isinstance(p, ExtractParams):
            p.resolved()
    at = (lambda p: f"@seed={p.seed}") if len(datasets) > 1 else (lambda p: "")
    return build(targets, lambda p: datasets[p.seed], label=lambda step, p: step.label(p) + at(p))


def shift_n(sp: StudyParams, prof) -> int:
    """The profile's shift sample, capped by the test split it is drawn from (a small data folder)."""
    return min(prof.shift_n, len(load_dataset(sp.dataset, data_dir=sp.data_dir or None).y_test))


StudyFailed = GraphFailed  # a study's cells failed or were skipped


def run_study(sp: StudyParams | None = None, **kw: Any) -> list[Record]:
    """Extract -> classify -> visualize -> finetune, then the registry and the report (unless ``report=False``),
    each cell a child run of one parent. ``sp``, or its fields."""
    sp = sp if sp is not None else StudyParams(**kw)
    prof = get_profile(sp.profile, subset=None if sp.subset in ("profile", None) else sp.subset,
                       full_data=sp.subset is None, epochs=sp.epochs or None)
    seeds = parse_seeds(sp.seeds)
    tracking.check_store()  # a dead server fails in one line before the data is even read
    datasets = _datasets(sp, prof, seeds)
    ds = datasets[seeds[0]]
    graph = build_graph(sp, datasets, prof)

    def finish(run: GraphRun) -> list[Record]:
        extra = [_register(run.records, run.parent_run_id)]
        return extra + ([_report(sp, run.parent_run_id, ds.name)] if sp.report else [])

    parent = Parent(f"study-{prof.name}", "study", _study_params(sp, prof, graph.cells, ds),
                    {DATA_DIGEST_TAG: ds.digest, PROFILE_DOC_TAG: prof.doc}, finish, optional=False)
    return run_graph(graph, parent, data=lambda p: datasets[p.seed], **sp.exec_kw(), progress=sp.progress).records


def _datasets(sp: StudyParams, prof, seeds: tuple[int, ...]) -> dict[int, Dataset]:
    """The data of each seed: its own subset draw, or (full data) the same images for every seed."""
    out: dict[int, Dataset] = {}
    for seed in seeds:
        if out and prof.subset is None:
            out[seed] = replace(next(iter(out.values())), seed=seed)
        else:
            out[seed] = load_dataset(sp.dataset, data_dir=sp.data_dir or None, subset=prof.subset, seed=seed)
    return out


def _study_params(sp: StudyParams, prof, cells: list[Cell], ds: Dataset) -> dict[str, Any]:
    feats = FEATURES.expand(sp.features)
    n_samples = next((c.payload[2].n_samples for c in cells if c.payload[0] is VISUALIZE), 0)
    epochs = next((c.payload[2].epochs for c in cells if c.payload[0] is FINETUNE), 0)
    return {"profile": prof.name, "features": ",".join(feats), "models": ",".join(_expand(CLASSIFIERS, sp.models)),
            "methods": ",".join(_expand(EMBEDDINGS, sp.methods)), "finetune": sp.finetune,
            DATASET_PARAM: ds.name, SUBSET_PARAM: prof.subset or "all",  # as asked (a small folder may hold fewer)
            "seeds": sp.seeds, "weights": sp.weights, "device": sp.device, "tune": prof.tune,
            N_SAMPLES_PARAM: n_samples, EPOCHS_PARAM: epochs, "shift": sp.shift,
            SHIFT_N_PARAM: shift_n(sp, prof) if sp.shift else 0,
            "executor": sp.executor, "ray_address": sp.ray_address}


def _register(records: list[Record], parent: str) -> Record:
    """The best model per feature and of fine-tuning into the Model Registry (``fmnist.steps.register``)."""
    rec = Record("register", "models", run_id=parent, node=socket.gethostname())
    t = time.perf_counter()
    try:
        done = register_best([r.run_id for r in records if r.ok and r.step in ("classify", "finetune")])
        rec.status = "cached" if all(r.why == ALREADY for r in done) else "ran"
        tracking.set_tags({REGISTERED_TAG: ", ".join(f"{r.name} v{r.version} ({r.alias})" for r in done)
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


__all__ = ["StudyFailed", "StudyParams", "build_graph", "run_study"]
