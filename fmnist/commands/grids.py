"""The grid commands: each builds one graph of step cells (``fmnist.steps``) and hands it to the graph runner
(``fmnist.steps.graph``); ``fmnist.cli`` parses and calls these. Several targets are siblings under one parent
run that holds the grid's table; one target is the command's own run."""

from __future__ import annotations

import logging
from dataclasses import fields, replace
from typing import Any

from .. import plots, tracking
from ..classifiers import CLASSIFIERS
from ..classifiers.tuning import check_val_fraction
from ..data import Dataset
from ..embeddings import EMBEDDINGS
from ..embeddings.figures import grid_figure
from ..engine import Record
from ..errors import ParamError
from ..features import FEATURES
from ..finetune import MODES
from ..plots import close
from ..search import CANDIDATES, best, chosen
from ..steps.classify import CLASSIFY, CellResult, ClassifyParams
from ..steps.extract import EXTRACT, ExtractParams
from ..steps.finetune import FINETUNE, FinetuneParams, _prepared
from ..steps.graph import GraphRun, Parent, build, run_graph
from ..steps.params import Common, ExecOpts, parse_value
from ..steps.search import CANDIDATE, CandidateParams, SearchParams
from ..steps.visualize import DEFAULT_N_SAMPLES, VISUALIZE, VisualizeParams, _sample
from ..steps.base import data_params
from ..tags import (EPOCHS_PARAM, EXTRACT_RUN_TAG, FEATURE_LABEL_TAG, FEATURE_PARAM, HP_PARAM_PREFIX, METHOD_PARAM,
                    MODE_PARAM, MODEL_PARAM, N_SAMPLES_PARAM, SEARCH_BEST_TAG, SEARCH_CHOSEN_TAG, SEED_PARAM)

log = logging.getLogger("fmnist")


def given(cls: type, p: Any, ex: ExecOpts | None, kw: dict[str, Any]) -> tuple[Any, ExecOpts]:
    """A command's Params and ExecOpts: the objects as given (the CLI passes them), else built from keywords
    (``classify(feature="raw", tune=False, executor="ray")`` in Python)."""
    runs = {f.name for f in fields(ExecOpts)}
    ex = ex or ExecOpts(**{k: kw.pop(k) for k in list(kw) if k in runs})
    if p is not None and kw:
        raise TypeError(f"give {cls.__name__} or its fields, not both (got {sorted(kw)})")
    return (p if p is not None else cls(**kw)), ex


# ----------------------------------------------------------------------------------------------- classify


def classify_cells(p: ClassifyParams) -> list[ClassifyParams]:
    """One params per (feature, model) of a grid spec, every name checked before any run opens."""
    features, models = FEATURES.expand(p.feature), CLASSIFIERS.expand(p.model)
    check_val_fraction(p.tune, p.val_fraction)
    if p.extract_run and len(features) != 1:
        raise ParamError(f"extract_run names one extract run: give one feature, not {p.feature!r}")
    out = [replace(p, feature=f, model=m) for f in features for m in models]
    for c in out:
        c.extract_params().resolved()  # bad feature params fail here
    return out


def cell_result(info: dict[str, Any], p: ClassifyParams) -> CellResult:
    """A grid row from a cell's run, as read back (params, metrics, tags)."""
    chosen = {k.removeprefix(HP_PARAM_PREFIX): parse_value(v) for k, v in info["params"].items()
              if k.startswith(HP_PARAM_PREFIX)}
    label = info["tags"].get(FEATURE_LABEL_TAG, p.feature)
    return CellResult(p.feature, label, p.model, info["run_id"], info["tags"].get(EXTRACT_RUN_TAG), chosen,
                      info["metrics"])


def classify(p: ClassifyParams | None = None, ex: ExecOpts | None = None, *, ds: Dataset | None = None,
             params: dict[str, Any] | None = None, **kw: Any) -> list[CellResult]:
    """Fit and evaluate every (feature, model) cell: one graph (extract cells, then these), one run each,
    children of one parent that holds ``results.csv``. ``p`` (else ``kw``: its fields; ``params``: feature params
    such as J, L), ``ex`` (else ``executor``, ``ray_address``)."""
    p, ex = given(ClassifyParams, p, ex, {**kw, **(params or {})})
    grid = classify_cells(p)
    tracking.check_store()  # a dead server fails in one line before the data is even read
    ds = ds if ds is not None else p.load()
    graph = build([(CLASSIFY, c) for c in grid], lambda _: ds)
    results: list[CellResult] = []

    def summary(run: GraphRun) -> None:
        results.extend(_results(run, grid))
        _log_summary(results)

    parent = Parent(f"classify-{p.feature.replace(',', '+')}-{p.model.replace(',', '+')}", "classify-group",
                    {FEATURE_PARAM: p.feature, MODEL_PARAM: p.model, **data_params(ds), SEED_PARAM: p.seed,
                     "tune": p.tune, "val_fraction": p.val_fraction}, summary=summary)
    run = run_graph(graph, parent, data=lambda _: ds, progress=p.progress, **ex.exec_kw())
    return results if run.parent_run_id else _results(run, grid)


def _results(run: GraphRun, grid: list[ClassifyParams]) -> list[CellResult]:
    """The grid's rows, in its order, from one read of every cell's run."""
    by_cell = {r.cell: r.run_id for r in run.ok("classify")}
    infos = tracking.runs_info(list(by_cell.values()))
    return [cell_result(infos[by_cell[CLASSIFY.label(c)]], c) for c in grid if CLASSIFY.label(c) in by_cell]


def _log_summary(results: list[CellResult]) -> None:
    import pandas as pd

    rows = [{"feature": r.feature, "feature_label": r.label, "model": r.model, **{k: r.metrics.get(k) for k in (
        "test_accuracy", "val_accuracy", "train_accuracy", "macro_f1", "fit_seconds", "predict_seconds")},
        **{HP_PARAM_PREFIX + k: v for k, v in r.chosen.items()}, "run_id": r.run_id} for r in results]
    tracking.log_table(pd.DataFrame(rows), "results.csv")
    for r in results:
        log.info("%-28s %-7s test_accuracy %.4f", r.label, r.model, r.metrics["test_accuracy"])


# ------------------------------------------------------------------------------------------------ extract


def extract(p: ExtractParams | None = None, ex: ExecOpts | None = None, **kw: Any) -> list[Record]:
    """``fmnist extract``: one extract cell per feature of ``feature`` (all, or a comma list); several are
    siblings under one parent. ``p`` and ``ex``, or their fields."""
    p, ex = given(ExtractParams, p, ex, kw)
    cells = [replace(p, feature=f) for f in FEATURES.expand(p.feature)]
    for c in cells:
        c.resolved()  # bad params fail before any run opens
    tracking.check_store()  # a dead server fails in one line before the data is even read
    ds = p.load()
    graph = build([(EXTRACT, c) for c in cells], lambda _: ds)
    parent = Parent("extract-" + "+".join(c.feature for c in cells), "extract-group", {"feature": p.feature})
    return run_graph(graph, parent, data=lambda _: ds, progress=p.progress, **ex.exec_kw()).records


# ---------------------------------------------------------------------------------------------- visualize


def visualize_cells(p: VisualizeParams, ds: Dataset) -> list[VisualizeParams]:
    """One params per (feature, method), checked (sample size, method params) before any run opens."""
    out = [replace(p, feature=f, method=m) for f in FEATURES.expand(p.feature) for m in EMBEDDINGS.expand(p.method)]
    n = len(_sample(p, ds))
    for c in out:
        c.method_params(n)
        c.extract_params().resolved()
    return out


def visualize(p: VisualizeParams | None = None, ex: ExecOpts | None = None, *, ds: Dataset | None = None,
              features: list[str] | None = None, methods: list[str] | None = None,
              n_samples: int | None = DEFAULT_N_SAMPLES, method_given: dict[str, Any] | None = None,
              feature_given: dict[str, Any] | None = None, **kw: Any) -> list[dict]:
    """Embed a stratified test sample of each feature set with each method; one run per pair.

    One graph: the extract cells and the views, children of one parent run (step ``visualize-group``) that
    holds ``embedding_grid.png`` and ``separation.csv``. ``p`` and ``ex``, or their fields (``features``,
    ``methods`` as lists; ``method_given``, ``feature_given``: their params).
    """
    if p is None:
        kw.update(feature=",".join(features or ["all"]), method=",".join(methods or ["all"]), n_samples=n_samples,
                  **(method_given or {}), **(feature_given or {}))
    p, ex = given(VisualizeParams, p, ex, kw)
    features, methods = FEATURES.expand(p.feature), EMBEDDINGS.expand(p.method)
    p = replace(p, feature=",".join(features), method=",".join(methods))
    tracking.check_store()  # a dead server fails in one line before the data is even read
    ds = ds if ds is not None else p.load()
    grid = visualize_cells(p, ds)
    n = len(_sample(p, ds))
    out: list[dict] = []

    def summary(run: GraphRun) -> None:
        out.extend(_views(run, grid, ds))
        log_grid(out, features, methods, ds, title=f"{ds.name}: test sample n={n}, seed={p.seed} "
                                                     f"(bold: best k-NN accuracy of the row)")
        log.info("visualize: %d views; best k-NN accuracy per feature: %s", len(out),
                 "; ".join(_best(out, f) for f in features if any(c["feature"] == f for c in out)))

    parent = Parent("visualize-" + "+".join(features) + "-" + "+".join(methods), "visualize-group",
                    {FEATURE_PARAM: ",".join(features), METHOD_PARAM: ",".join(methods), N_SAMPLES_PARAM: n,
                     SEED_PARAM: p.seed, **data_params(ds)}, summary=summary)
    run = run_graph(build([(VISUALIZE, c) for c in grid], lambda _: ds), parent, data=lambda _: ds,
                    progress=p.progress, **ex.exec_kw())
    return out if run.parent_run_id else _views(run, grid, ds)


def _views(run: GraphRun, grid: list[VisualizeParams], ds: Dataset) -> list[dict]:
    """Each view of the grid, in its order, read back from its run (one read of all the runs)."""
    by_cell = {r.cell: r.run_id for r in run.ok("visualize")}
    infos = tracking.runs_info(list(by_cell.values()))
    return [VISUALIZE.load(infos[by_cell[VISUALIZE.label(c)]], c, ds) for c in grid if VISUALIZE.label(c) in by_cell]


def log_grid(out: list[dict], features: list[str], methods: list[str], ds: Dataset, title: str) -> None:
    import pandas as pd

    summary = pd.DataFrame([{"feature": c["feature"], "feature_label": c["feature_label"], "method": c["method"],
                             **c["metrics"], "run_id": c["run_id"]} for c in out])
    tracking.log_table(summary, "separation.csv")
    fig = grid_figure(out, features, methods, list(ds.classes), title=title)
    tracking.log_figure(fig, "embedding_grid.png")
    close(fig)


def _best(cells: list[dict], feature: str) -> str:
    row = [c for c in cells if c["feature"] == feature]
    b = max(row, key=lambda c: c["metrics"]["knn_accuracy"])
    return f"{b['feature_label']} -> {b['method']} ({b['metrics']['knn_accuracy']:.3f})"


# ----------------------------------------------------------------------------------------------- finetune


def finetune_modes(p: FinetuneParams | None = None, ex: ExecOpts | None = None, *, ds: Dataset | None = None,
                   **kw: Any) -> list[Record]:
    """``fmnist finetune``: one cell per mode of ``mode`` (all, or a comma list) as a graph; several are siblings
    under one parent holding ``results.csv``. ``p`` and ``ex``, or their fields."""
    p, ex = given(FinetuneParams, p, ex, kw)
    modes = MODES.expand(p.mode)
    tracking.check_store()  # a dead server fails in one line before the data is even read
    if len(modes) > 1 and p.resume.strip().lower() not in ("auto", "never"):
        raise ParamError(f"resume={p.resume} continues one run: give one mode, not {p.mode!r}")
    p, ds = _prepared(replace(p, mode=modes[0]) if len(modes) == 1 else p, ds, modes)
    cells = [replace(p, mode=m).check() for m in modes]

    def summary(run) -> None:
        import pandas as pd

        infos = tracking.runs_info([r.run_id for r in run.ok("finetune")])
        tracking.log_table(pd.DataFrame([{"mode": i["params"].get(MODE_PARAM), **{k: i["metrics"].get(k) for k in (
            "test_accuracy", "best_val_accuracy", "best_epoch", "fit_seconds")}, "run_id": i["run_id"]}
            for i in infos.values()]), "results.csv")

    parent = Parent(f"finetune-{'+'.join(modes)}", "finetune-group",
                    {MODE_PARAM: ",".join(modes), **data_params(ds), SEED_PARAM: p.seed, EPOCHS_PARAM: p.epochs,
                     "weights": p.weights}, summary=summary)
    return run_graph(build([(FINETUNE, c) for c in cells], lambda _: ds), parent, data=lambda _: ds,
                     progress=p.progress, **ex.exec_kw()).records


# ------------------------------------------------------------------------------------------ scatnet search


def scatnet_search(p: SearchParams | None = None, ex: ExecOpts | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Run (or reuse) every selected candidate as a cell of one graph under a ``scatnet-search`` parent, which holds
    ``tuning.csv``, ``search.png`` and the best and the chosen candidate; returns the rows in candidate order.
    ``p`` and ``ex``, or their fields."""
    p, ex = given(SearchParams, p, ex, kw)
    picked = p.selected()  # a bad candidate list fails before the data is read
    tracking.check_store()
    ds = p.load()
    common = {f.name: getattr(p, f.name) for f in fields(Common)}
    cells = [CandidateParams(candidate=CANDIDATES.index(c) + 1, n_train=p.n_train, val_fraction=p.val_fraction,
                             **common) for c in picked]
    rows: list[dict[str, Any]] = []

    def summary(run) -> None:
        by_cell = {r.cell: r.run_id for r in run.ok(CANDIDATE.name)}
        infos = tracking.runs_info(list(by_cell.values()))
        rows.extend(CANDIDATE.load(infos[by_cell[CANDIDATE.label(c)]], c, ds) for c in cells
                    if CANDIDATE.label(c) in by_cell)
        if rows:
            _log_search(rows)

    parent = Parent("scatnet-search", "scatnet-search",
                    {**data_params(ds), SEED_PARAM: p.seed, "n_train": p.n_train,
                     "val_fraction": p.val_fraction, "n_candidates": len(cells)}, summary=summary, optional=False)
    run = run_graph(build([(CANDIDATE, c) for c in cells], lambda _: ds), parent, data=lambda _: ds,
                    progress=p.progress, **ex.exec_kw())
    win, pick = best(rows), chosen(rows)
    log.info("scatnet search (run %s): best %s (val_accuracy %.4f); chosen within one standard error: %s (%.4f)",
             run.parent_run_id, win["candidate"], win["val_accuracy"], pick["candidate"], pick["val_accuracy"])
    return rows


def _log_search(rows: list[dict[str, Any]]) -> None:
    """The table, the bar chart and the picks, onto the search's parent run."""
    import pandas as pd

    win, pick = best(rows), chosen(rows)
    tracking.log_table(pd.DataFrame(rows), "tuning.csv")
    fig = plots.bar_figure([r["candidate"] for r in rows], [r["val_accuracy"] for r in rows],
                           title="scatnet search: validation accuracy (RBF SVM)", highlight=rows.index(pick))
    try:
        tracking.log_figure(fig, "search.png")
    finally:
        plots.close(fig)
    tracking.log_metrics({"best_val_accuracy": win["val_accuracy"], "chosen_val_accuracy": pick["val_accuracy"]})
    tracking.set_tags({SEARCH_BEST_TAG: win["candidate"], SEARCH_CHOSEN_TAG: pick["candidate"]})
