"""Query the tracking store into tidy pandas tables: the report notebook's whole logic, and public API.

    >>> from fmnist import report
    >>> report.comparison_table()          # models x features, test accuracy in %, with averages
    >>> report.sota_table()                # published results with this study's best rows ranked in
    >>> report.significance_table()        # McNemar on shared test images, Holm-corrected

Every table takes ``experiment`` (default: ``$MLFLOW_EXPERIMENT_NAME`` or ``fmnist``) and ``dataset`` and uses
the latest FINISHED run per cell; missing cells are NaN, never an error. ``runs = report.load(experiment,
dataset)`` reads the store once; every table and finding is a pure function of it (``table(runs=runs)``), so the
notebook's tables agree with each other and read nothing more. Called without ``runs``, a table loads its own.
"""

from __future__ import annotations

import contextlib
import logging
import fnmatch
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from . import tracking
from .classifiers import CLASSIFIERS
from .embeddings import EMBEDDINGS
from .embeddings.page import VIEW_PAGE
from .features import FEATURES
from .data import DATASETS
from .evaluation import confusion, slug, wilson_interval
from .shifts import NONE, level_name, levels, sets
from .significance import correct_on_shared, holm, mcnemar_exact
from .steps.base import load_predictions, verify_artifacts
from .steps.classify import CLASSIFY
from .steps.finetune import FINETUNE
from .steps.register import model_prefix
from .steps.shift import EXAMPLES_FIGURE as SHIFT_EXAMPLES, PREDICTIONS_ARTIFACT as SHIFT_PREDICTIONS, SHIFT
from .steps.visualize import VISUALIZE
from .tags import (COMPARED_TAG, COMPARED_WITH_TAG, DATA_DIGEST_TAG, DATASET_PARAM, EPOCHS_PARAM, FEATURE_LABEL_TAG,
                   FEATURE_PARAM, IMAGE_SIZE_PARAM, KINDS_PARAM, MODE_PARAM, MODEL_PARAM, N_SAMPLES_PARAM, N_TEST_TAG,
                   PROMOTION_TAG, SCORED_RUN_TAG, SCORED_STEP_PARAM, SEED_PARAM, SHIFT_N_PARAM, STEP_TAG, SUBSET_PARAM,
                   TEST_ACCURACY_CI_TAG, TEST_ACCURACY_TAG, param_col, tag_col)

log = logging.getLogger("fmnist")

# Tables follow the registries' order: a new feature, model or method needs no line here.
MODEL_ORDER, FEATURE_ORDER, METHOD_ORDER = CLASSIFIERS.names(), FEATURES.names(), EMBEDDINGS.names()
MODEL_NAMES = {e.name: e.hook("title", e.name) for e in CLASSIFIERS}


def _order(values, preferred: list[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    key = {v: i for i, v in enumerate(preferred)}
    return sorted(values, key=lambda v: (min((key[p] for p in key if str(v).startswith(p)), default=99), str(v)))


READ = {s.name: s for s in (CLASSIFY, FINETUNE, VISUALIZE, SHIFT)}  # the steps whose runs the report reads
STEPS_READ = tuple(READ)
CURVE_METRICS = ("train_loss", "train_accuracy", "val_accuracy")  # the fine-tunes' per-epoch metrics it reads
CLASSIFY_CELL, FINETUNE_CELL, VIEW_CELL, SHIFT_CELL = (list(s.report_cell) for s in READ.values())
RUN_COLUMNS = ("run_id", "experiment_id", "status", "start_time", "end_time", "artifact_uri")


class Runs:
    """One reading of the store (``load``): every table and finding below is a pure function of it, so they
    agree with each other, and one made by hand tests them without MLflow.

    ``steps``: FINISHED runs per step, newest first, with the columns each step declares (``report_columns``);
    ``every_dataset``: classify runs of every dataset; ``predictions``: scored run id -> its predictions
    (``unreadable``: why one is not there); ``histories``: (run, metric) -> per-epoch values; ``images``: visualize
    run id -> its embedding.png (and the newest shift-features run's shift_examples.png); ``pages``: visualize run
    id -> its view.html; ``versions``: the dataset's registered model versions; ``shift_predictions``:
    shift run id -> its ``shift_predictions.npz`` (the cells "Under shift" tests). Read from the store (a
    ``Runs`` from ``load``), each part is read once, when a table first needs it; made by hand, a part not given
    is empty.
    """

    PARTS = ("every_dataset", "predictions", "unreadable", "histories", "images", "pages", "versions",
             "shift_predictions")
    EMPTY = {"every_dataset": pd.DataFrame, "versions": list}  # a part not given (the others: a dict)

    def __init__(self, experiment: str | None = None, dataset: str | None = "fashion-mnist",
                 steps: dict[str, pd.DataFrame] | None = None, *, registry_prefix: str | None = None,
                 from_store: bool = False, **parts):
        unknown = set(parts) - set(self.PARTS)
        if unknown:
            raise TypeError(f"Runs: unknown parts {sorted(unknown)}; valid: {', '.join(self.PARTS)}")
        self.experiment, self.dataset, self.registry_prefix = experiment, dataset, registry_prefix
        self.steps, self._from_store = dict(steps or {}), from_store
        self._parts = {k: v for k, v in parts.items() if v is not None}

    def step(self, name: str) -> pd.DataFrame:
        if name not in self.steps and self._from_store:
            self.steps[name] = _search(name, self.experiment, self.dataset)
        return self.steps.get(name, pd.DataFrame()).copy()

    def _part(self, name: str):
        if name not in self._parts:
            self._parts.update(_read(self, name) if self._from_store else {name: self.EMPTY.get(name, dict)()})
        return self._parts[name]

    every_dataset = property(lambda self: self._part("every_dataset"))
    predictions = property(lambda self: self._part("predictions"))
    unreadable = property(lambda self: self._part("unreadable"))
    histories = property(lambda self: self._part("histories"))
    images = property(lambda self: self._part("images"))
    pages = property(lambda self: self._part("pages"))
    versions = property(lambda self: self._part("versions"))
    shift_predictions = property(lambda self: self._part("shift_predictions"))


def load(experiment: str | None = None, dataset: str | None = "fashion-mnist",
         registry_prefix: str | None = None) -> Runs:
    """The store's FINISHED classify, finetune and visualize runs of ``dataset`` in ``experiment`` (default
    ``$MLFLOW_EXPERIMENT_NAME`` or ``fmnist``), the predictions of each scored cell, the fine-tunes' per-epoch
    metrics, the views' pictures and the registered versions of the dataset's models, as one ``Runs``: each part
    is read once, when a table first needs it (a table of accuracies reads no predictions)."""
    return Runs(experiment, dataset, registry_prefix=registry_prefix, from_store=True)


def _read(rs: Runs, part: str) -> dict:
    """One part of ``rs`` from the store (predictions and why some are unreadable come together)."""
    if part == "every_dataset":
        return {part: _search("classify", rs.experiment, None) if rs.dataset else rs.step("classify")}
    if part in ("predictions", "unreadable"):
        got, unreadable = {}, {}
        for run_id in _scored_runs(rs)["run_id"]:
            try:
                got[run_id] = predictions(run_id)
            except Exception as e:  # a run without (intact) predictions is left out of the tests, not fatal
                unreadable[run_id] = tracking.one_line(e)
        return {"predictions": got, "unreadable": unreadable}
    if part == "histories":
        return {part: {(r["run_id"], m): tracking.metric_history(r["run_id"], m)
                       for _, r in _latest(rs, "finetune", FINETUNE_CELL).iterrows() for m in CURVE_METRICS}}
    if part == "images":
        images = {}
        for _, r in _latest(rs, "visualize", VIEW_CELL).iterrows():
            try:
                images[r["run_id"]] = tracking.artifact_local_path(r["run_id"], "embedding.png")
            except Exception:  # a run without its picture is shown as missing, not fatal
                continue
        examples = rs.step("shift-features")
        if not examples.empty:  # the newest: what the transformations look like
            try:
                images[examples["run_id"].iloc[0]] = tracking.artifact_local_path(examples["run_id"].iloc[0],
                                                                                  SHIFT_EXAMPLES)
            except Exception:
                pass
        return {part: images}
    if part == "pages":
        pages = {}
        for _, r in _latest(rs, "visualize", VIEW_CELL).iterrows():
            try:
                pages[r["run_id"]] = tracking.artifact_local_path(r["run_id"], VIEW_PAGE)
            except Exception:  # a view logged before runs had pages: its figure links nowhere
                continue
        return {part: pages}
    if part == "shift_predictions":  # only the cells "Under shift" tests: each feature set's best
        got = {}
        for run_id in shift_lines(runs=rs)["run_id"].unique():
            try:
                got[run_id] = shift_predictions(run_id)
            except Exception as e:  # left out of the shift tests, not fatal
                log.warning("shift: leaving out run %s: %s", run_id, tracking.one_line(e))
        return {part: got}
    return {part: _versions(_registry_prefix(rs.registry_prefix, rs.dataset))}


@contextlib.contextmanager
def snapshot():
    """Kept so that older notebooks still run: it changes nothing (each table called without ``runs`` reads the
    store itself); ``runs = report.load()`` and ``table(runs=runs)`` read it once."""
    yield None


def freeze() -> None:
    """Kept so that older notebooks still run: it changes nothing (see ``snapshot``)."""


def _given(runs: Runs | None, experiment: str | None, dataset: str | None) -> Runs:
    """The runs a table is computed from: as given, else the store's (only the parts the table reads)."""
    return runs if runs is not None else load(experiment, dataset)


def runs(step: str, experiment: str | None = None, dataset: str | None = "fashion-mnist", *,
         runs: Runs | None = None) -> pd.DataFrame:
    """FINISHED runs of one step (``fmnist.step`` tag), newest first, with params/metrics/tags columns (given
    ``runs``: the columns the step declares for the report)."""
    if runs is not None:
        return runs.step(step)
    return _search(step, experiment, dataset, every_column=True)


def _search(step: str, experiment: str | None, dataset: str | None, every_column: bool = False) -> pd.DataFrame:
    filt = f"tags.`{STEP_TAG}` = '{step}' and attributes.status = 'FINISHED'"
    if dataset:
        filt += f" and {param_col(DATASET_PARAM)} = '{dataset}'"
    df = tracking.search_runs(filt, [experiment] if experiment else None)
    if not len(df):
        return pd.DataFrame()
    if not every_column and step in READ:  # what the step declares the report reads
        keep = (*RUN_COLUMNS, *READ[step].report_columns)
        df = df[[c for c in df.columns if any(fnmatch.fnmatchcase(c, k) for k in keep)]]
    return df.reset_index(drop=True)


def _col(df: pd.DataFrame, name: str, default=np.nan) -> pd.Series:
    return df[name] if name in df.columns else pd.Series(default, index=df.index)


def _whole(values: pd.Series) -> pd.Series:
    """Counts (epochs, pixels) as integers, not ``1.0``: MLflow keeps metrics as floats and params as text."""
    return pd.to_numeric(values, errors="coerce").round().astype("Int64")


def _feature_label(df: pd.DataFrame) -> pd.Series:
    label = _col(df, tag_col(FEATURE_LABEL_TAG), None).astype(object)
    return label.where(label.notna(), _col(df, param_col(FEATURE_PARAM), "?").astype(object))


def _keyed_runs(r: Runs, step: str, keys: list[str]) -> pd.DataFrame:
    """FINISHED runs of ``step``, newest first, with a column per key (``feature`` uses its label)."""
    df = r.step(step)
    if df.empty:
        return df
    for k in keys:
        df[k] = _feature_label(df) if k == FEATURE_PARAM else _col(df, param_col(k), "?")
    return df


def latest_cells(step: str, keys: list[str], experiment: str | None = None,
                 dataset: str | None = "fashion-mnist", *, runs: Runs | None = None) -> pd.DataFrame:
    """The newest FINISHED run per combination of ``keys`` (param names; ``feature`` uses its label)."""
    return _latest(_given(runs, experiment, dataset), step, keys)


def _latest(r: Runs, step: str, keys: list[str]) -> pd.DataFrame:
    df = _keyed_runs(r, step, keys)
    return df if df.empty else df.drop_duplicates(subset=keys, keep="first").reset_index(drop=True)


def seed_runs(step: str, keys: list[str], experiment: str | None = None,
              dataset: str | None = "fashion-mnist", *, runs: Runs | None = None) -> pd.DataFrame:
    """The newest FINISHED run per cell (``keys``) and seed, on the subset of the cell's newest run.

    So a cell run with seeds 0,1,2 gives three rows, and a quick-profile run left in the experiment from before
    a full one does not mix into the full one's numbers.
    """
    return _seeds(_given(runs, experiment, dataset), step, keys)


def _seeds(r: Runs, step: str, keys: list[str]) -> pd.DataFrame:
    df = _keyed_runs(r, step, keys)
    if df.empty:
        return df
    df["seed"] = _col(df, param_col(SEED_PARAM), "0").fillna("0")
    df["subset"] = _col(df, param_col(SUBSET_PARAM), "all").fillna("all")
    newest = df.drop_duplicates(subset=keys, keep="first")[[*keys, "subset"]]  # runs are newest first
    df = df.merge(newest, on=[*keys, "subset"], how="inner", sort=False)
    return df.drop_duplicates(subset=[*keys, "seed"], keep="first").reset_index(drop=True)


def seed_summary(metric: str = "test_accuracy", experiment: str | None = None,
                 dataset: str | None = "fashion-mnist", *, runs: Runs | None = None) -> pd.DataFrame:
    """Per classify cell: mean, std (over seeds, ddof=1) and n of ``metric``; with one seed, its 95% interval."""
    rs = _given(runs, experiment, dataset)
    cols = ["model", "feature", "mean", "std", "n", "ci_low", "ci_high", "subset"]
    df = _seeds(rs, "classify", CLASSIFY_CELL)
    if df.empty or f"metrics.{metric}" not in df.columns:
        return pd.DataFrame(columns=cols)
    df["value"] = df[f"metrics.{metric}"]
    for k in ("low", "high"):
        df[f"ci_{k}"] = _col(df, f"metrics.{metric}_ci_{k}")
    g = df.groupby(CLASSIFY_CELL, sort=False)
    out = g.agg(mean=("value", "mean"), std=("value", "std"), n=("value", "count"), ci_low=("ci_low", "first"),
                ci_high=("ci_high", "first"), subset=("subset", "first")).reset_index()
    several = out["n"] > 1
    out.loc[several, ["ci_low", "ci_high"]] = np.nan  # the spread over seeds speaks instead
    out.loc[~several, "std"] = np.nan
    return out[cols]


def comparison_display(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                       *, runs: Runs | None = None) -> pd.DataFrame:
    """``comparison_table`` as text: ``mean +/- std (n=3)`` over seeds, or ``acc [low, high]`` for one seed (%)."""
    rs = _given(runs, experiment, dataset)
    summary = seed_summary(runs=rs)
    table = comparison_table(runs=rs)
    if table.empty:
        return table
    text = table.map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    for _, r in summary.iterrows():
        if r["model"] in text.index and r["feature"] in text.columns:
            m = 100 * r["mean"]
            text.loc[r["model"], r["feature"]] = (
                f"{m:.2f} ± {100 * r['std']:.2f} (n={r['n']})" if r["n"] > 1
                else f"{m:.2f} [{100 * r['ci_low']:.2f}, {100 * r['ci_high']:.2f}]" if pd.notna(r["ci_low"])
                else f"{m:.2f}")
    return text


def comparison_table(metric: str = "test_accuracy", experiment: str | None = None, percent: bool = True,
                     averages: bool = True, dataset: str | None = "fashion-mnist",
                     *, runs: Runs | None = None) -> pd.DataFrame:
    """Models as rows, features as columns (the report's form), with row and column averages.

    A cell run with several seeds shows their mean (``seed_summary`` has the spread).
    """
    rs = _given(runs, experiment, dataset)
    cells = _seeds(rs, "classify", CLASSIFY_CELL)
    if cells.empty or f"metrics.{metric}" not in cells.columns:
        return pd.DataFrame(index=pd.Index([], name="model"))
    table = cells.pivot_table(index="model", columns="feature", values=f"metrics.{metric}", aggfunc="mean")
    table = table.reindex(index=_order(table.index, MODEL_ORDER), columns=_order(table.columns, FEATURE_ORDER))
    if percent:
        table = table * 100.0
    if averages:
        table["Average"] = table.mean(axis=1)
        table.loc["Average"] = table.mean(axis=0)
    table.index.name, table.columns.name = "model", "feature"
    return table


def fit_time_table(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                   *, runs: Runs | None = None) -> pd.DataFrame:
    """Fit seconds, same layout as ``comparison_table``."""
    rs = _given(runs, experiment, dataset)
    return comparison_table("fit_seconds", percent=False, runs=rs)


STUDY_COLUMNS = ["method", "family", "accuracy", "source", "trained_on", "full_test_set", "group"]


def _trained_on(r: pd.Series) -> str:
    """What a run learned from: ``60,000 train images, 6 epochs, weights none (random init)``."""
    n, epochs = r.get("metrics.n_train"), r.get(param_col(EPOCHS_PARAM))
    what = [f"{int(n):,} train images" if pd.notna(n) else "train images: not recorded"]
    if isinstance(epochs, str) and epochs:
        what.append(f"{epochs} epochs")
    if isinstance(r.get("weights_used"), str):
        what.append(f"weights {r['weights_used']}")
    return ", ".join(what)


def _full_test_set(r: pd.Series) -> bool:
    subset = r.get(param_col(SUBSET_PARAM))
    return subset is None or (isinstance(subset, float) and np.isnan(subset)) or str(subset) == "all"


def study_rows(experiment: str | None = None, dataset: str | None = "fashion-mnist",
               *, runs: Runs | None = None) -> pd.DataFrame:
    """This study's results as (method, accuracy %) rows: every classify cell and every fine-tune mode, each
    saying what it was trained on and whether it was scored on the full test set."""
    rs = _given(runs, experiment, dataset)
    def cell_rows(cells: pd.DataFrame, method, group) -> list[dict]:
        return [{"method": f"{method(r)} (this study)", "family": "this study",
                 "accuracy": 100 * r["metrics.test_accuracy"], "source": f"run {r['run_id']}",
                 "trained_on": _trained_on(r), "full_test_set": _full_test_set(r),
                 "group": group(r)}
                for _, r in cells.iterrows() if pd.notna(r.get("metrics.test_accuracy"))]

    rows = cell_rows(_latest(rs, "classify", CLASSIFY_CELL),
                     lambda r: f"{MODEL_NAMES.get(r['model'], r['model'])} on {r['feature']}",
                     lambda r: f"classify:{r['model']}") + \
        cell_rows(_latest(rs, "finetune", FINETUNE_CELL),
                  lambda r: f"ResNet-18 fine-tune {r['mode']}, {r['weights_used']}",
                  lambda r: f"finetune:{r['mode']}:{r['weights_used']}")
    return pd.DataFrame(rows, columns=STUDY_COLUMNS)


def reference_results(dataset: str | None = "fashion-mnist") -> pd.DataFrame:
    """Published results kept with the package (``fmnist/resources/sota.csv``, with sources), for ``dataset``
    (None: every dataset's)."""
    with resources.files("fmnist").joinpath("resources/sota.csv").open() as f:
        table = pd.read_csv(f)
    if dataset:
        table = table[table["dataset"] == dataset]
    return table.drop(columns="dataset").reset_index(drop=True)


def course_table(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                 *, runs: Runs | None = None) -> pd.DataFrame:
    """The course report's accuracies (``fmnist/resources/course_report.csv``) beside this study's cells, in %:
    one row per model (and the full fine-tune); empty for other datasets."""
    rs = _given(runs, experiment, dataset)
    dataset = rs.dataset  # the runs' own, when given
    if dataset not in (None, "fashion-mnist"):
        return pd.DataFrame()
    with resources.files("fmnist").joinpath("resources/course_report.csv").open() as f:
        course = pd.read_csv(f)
    acc = comparison_table(averages=False, runs=rs)
    ft = finetune_table(runs=rs)
    rows = []
    for model, part in course.groupby("model", sort=False):
        row = {"model": MODEL_NAMES.get(model, "ResNet-18, full fine-tune (on the images)"
                                        if model == "finetune-full" else model)}
        for _, c in part.iterrows():
            if c["feature"] == "images":  # in the raw column: it too learns from the pixels
                ours = ft.loc[ft["mode"] == "full", "test_accuracy"]
                row.update({"course report: raw": c["accuracy"], "this study: raw": ours.max() if len(ours) else np.nan})
                continue
            have = model in acc.index and c["feature"] in acc.columns
            row.update({f"course report: {c['feature']}": c["accuracy"],
                        f"this study: {c['feature']}": acc.loc[model, c["feature"]] if have else np.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def sota_table(experiment: str | None = None, best_only: bool = True,
               dataset: str | None = "fashion-mnist", *, runs: Runs | None = None) -> pd.DataFrame:
    """Published results for ``dataset`` with this study's best rows ranked in: only runs scored on the full test
    set (``best_only``: best classify cell per model and each fine-tune mode); subset runs: ``subset_rows``."""
    rs = _given(runs, experiment, dataset)
    dataset = rs.dataset  # the runs' own, when given
    ours = study_rows(runs=rs)
    ours = ours[ours["full_test_set"].astype(bool)]
    if best_only:
        ours = ours.sort_values("accuracy", ascending=False).drop_duplicates("group")
    ours = ours.drop(columns=["group", "full_test_set"])
    table = pd.concat([reference_results(dataset).assign(trained_on=""), ours], ignore_index=True)
    table = table.sort_values("accuracy", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def subset_rows(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                *, runs: Runs | None = None) -> pd.DataFrame:
    """This study's runs scored on a subset of the test set: not comparable with published results, so apart."""
    rs = _given(runs, experiment, dataset)
    ours = study_rows(runs=rs)
    ours = ours[~ours["full_test_set"].astype(bool)].sort_values("accuracy", ascending=False)
    return ours.drop(columns=["group", "full_test_set", "family"]).reset_index(drop=True)


def separation_table(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                     *, runs: Runs | None = None) -> pd.DataFrame:
    """Per (feature, method): k-NN accuracy in 2-D, trustworthiness, silhouette, embed seconds, n."""
    rs = _given(runs, experiment, dataset)
    cells = _latest(rs, "visualize", VIEW_CELL)
    cols = ["knn_accuracy", "trustworthiness", "silhouette", "embed_seconds"]
    if cells.empty:
        return pd.DataFrame(columns=["feature", "method", *cols, "n_samples", "run_id"])
    out = cells[VIEW_CELL].copy()
    for c in cols:
        out[c] = _col(cells, f"metrics.{c}")
    out["n_samples"] = _col(cells, param_col(N_SAMPLES_PARAM))
    out["run_id"] = cells["run_id"]
    rank = {(f, m): (i, j) for i, f in enumerate(_order(out["feature"], FEATURE_ORDER))
            for j, m in enumerate(_order(out["method"], METHOD_ORDER))}
    order = sorted(out.index, key=lambda i: rank[(out.at[i, "feature"], out.at[i, "method"])])
    return out.loc[order].reset_index(drop=True)


def embedding_images(experiment: str | None = None,
                     dataset: str | None = "fashion-mnist", *, runs: Runs | None = None) -> dict[tuple[str, str], Path]:
    """(feature, method) -> local path of the run's ``embedding.png``."""
    rs = _given(runs, experiment, dataset)
    return {(r["feature"], r["method"]): rs.images[r["run_id"]] for _, r in separation_table(runs=rs).iterrows()
            if r["run_id"] in rs.images}


def view_pages(experiment: str | None = None,
               dataset: str | None = "fashion-mnist", *, runs: Runs | None = None) -> dict[tuple[str, str], Path]:
    """(feature, method) -> local path of the run's ``view.html`` (hover a point to see the image)."""
    rs = _given(runs, experiment, dataset)
    return {(r["feature"], r["method"]): rs.pages[r["run_id"]] for _, r in separation_table(runs=rs).iterrows()
            if r["run_id"] in rs.pages}


def view_page_name(feature: str, method: str) -> str:
    """The file a view's page is copied to beside the report: ``views/<feature>-<method>.html``."""
    return f"{slug(feature)}-{method}.html"


def finetune_table(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                   *, runs: Runs | None = None) -> pd.DataFrame:
    """One row per (mode, weights): test accuracy %, macro-F1, best epoch, seconds per epoch, settings."""
    rs = _given(runs, experiment, dataset)
    cells = _latest(rs, "finetune", FINETUNE_CELL)
    cols = ["mode", "weights_used", "test_accuracy", "macro_f1", "best_val_accuracy", "best_epoch",
            "epoch_seconds", "epochs", "image_size", "run_id"]
    if cells.empty:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame({
        "mode": cells["mode"], "weights_used": cells["weights_used"],
        "test_accuracy": 100 * _col(cells, "metrics.test_accuracy"), "macro_f1": _col(cells, "metrics.macro_f1"),
        "best_val_accuracy": 100 * _col(cells, "metrics.best_val_accuracy"),
        "best_epoch": _whole(_col(cells, "metrics.best_epoch")), "epoch_seconds": _col(cells, "metrics.epoch_seconds"),
        "epochs": _whole(_col(cells, param_col(EPOCHS_PARAM))),
        "image_size": _whole(_col(cells, param_col(IMAGE_SIZE_PARAM))),
        "run_id": cells["run_id"],
    })
    return out.reset_index(drop=True)


def learning_curves(experiment: str | None = None, metrics: tuple[str, ...] = CURVE_METRICS,
                    dataset: str | None = "fashion-mnist", min_epochs: int = 1,
                    *, runs: Runs | None = None) -> pd.DataFrame:
    """Long table (mode, weights_used, metric, epoch, value) of the fine-tune runs' per-epoch metrics, for the
    runs with at least ``min_epochs`` epochs (a curve of one epoch is a dot)."""
    rs = _given(runs, experiment, dataset)
    rows = []
    for _, r in finetune_table(runs=rs).iterrows():
        if len(rs.histories.get((r["run_id"], "val_accuracy"), [])) < min_epochs:
            continue
        for m in metrics:
            for step, value in rs.histories.get((r["run_id"], m), []):
                rows.append({"mode": r["mode"], "weights_used": r["weights_used"], "metric": m, "epoch": step,
                             "value": value})
    return pd.DataFrame(rows, columns=["mode", "weights_used", "metric", "epoch", "value"])


SHIFT_COLUMNS = ["cell", "step", "feature", "model", "kind", "level", "set", "accuracy", "ci_low", "ci_high", "images",
                 "run_id", "scored_run"]


def shift_table(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                *, runs: Runs | None = None) -> pd.DataFrame:
    """Accuracy (%) of each scored model under each shift (``fmnist shift``), tidy: one row per (cell, kind,
    level), ``none`` being the untransformed sample, with its 95% Wilson interval and the images it was scored on;
    the newest shift run per scored model."""
    rs = _given(runs, experiment, dataset)
    rows = []
    for _, r in _latest(rs, "shift", SHIFT_CELL).iterrows():
        n = int(float(r.get(param_col(SHIFT_N_PARAM), "nan")))
        if r[SCORED_STEP_PARAM] == "finetune":
            cell, model, feature = f"ResNet-18 fine-tune {r[MODE_PARAM]}", f"finetune:{r[MODE_PARAM]}", "images"
        else:
            feature, model = r[FEATURE_PARAM], r[MODEL_PARAM]  # the feature's label (``_keyed_runs``)
            cell = f"{MODEL_NAMES.get(model, model)} on {feature}"
        for name, kind, level in sets(r.get(param_col(KINDS_PARAM)) or "all"):
            acc = r.get(f"metrics.shift/{name}", np.nan)
            if pd.isna(acc):
                continue
            lo, hi = wilson_interval(int(round(acc * n)), n)
            rows.append({"cell": cell, "step": r[SCORED_STEP_PARAM], "feature": feature, "model": model, "kind": kind,
                         "level": level, "set": name, "accuracy": 100 * acc, "ci_low": 100 * lo, "ci_high": 100 * hi,
                         "images": n, "run_id": r["run_id"], "scored_run": r.get(tag_col(SCORED_RUN_TAG), "")})
    return pd.DataFrame(rows, columns=SHIFT_COLUMNS)


FINETUNE_LINE = "fine-tune"


def _middle(kind: str) -> str:
    """A kind's middle level's set name (``translate_2px``): where the table and the paired tests look."""
    return level_name(kind, levels(kind)[len(levels(kind)) // 2])


def _group(r) -> str:
    """The group a shift table row's cell competes in: its feature set, or the fine-tunes."""
    return FINETUNE_LINE if r["step"] == "finetune" else r["feature"]


def shift_lines(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                *, runs: Runs | None = None) -> pd.DataFrame:
    """The cells "Under shift" draws: per feature set its best classifier, and the best fine-tune (best by the
    scored run's test accuracy; by its accuracy on the untransformed shift sample when that run is not in the
    runs read), as ``shift_table`` rows with ``group`` (the feature set, or ``fine-tune``) added."""
    rs = _given(runs, experiment, dataset)
    t = shift_table(runs=rs)
    if t.empty:
        return t.assign(group=pd.Series(dtype=object))
    tested = {r["run_id"]: float(r.get("metrics.test_accuracy", np.nan)) for _, r in _scored_runs(rs).iterrows()}
    t["group"] = [_group(r) for _, r in t.iterrows()]
    as_is = t[t["set"] == NONE].set_index("run_id")["accuracy"] / 100
    score = {run: tested.get(t.loc[t["run_id"] == run, "scored_run"].iloc[0], np.nan) for run in as_is.index}
    score = {run: v if pd.notna(v) else as_is[run] for run, v in score.items()}
    best = {}
    for run, group in t.drop_duplicates("run_id")[["run_id", "group"]].itertuples(index=False):
        if group not in best or score[run] > score[best[group]]:
            best[group] = run
    order = _order([g for g in best if g != FINETUNE_LINE], FEATURE_ORDER) + (
        [FINETUNE_LINE] if FINETUNE_LINE in best else [])
    return pd.concat([t[t["run_id"] == best[g]] for g in order], ignore_index=True)


def shift_kept_table(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                     *, runs: Runs | None = None) -> pd.DataFrame:
    """Accuracy (%) of every cell as is and at each kind's middle level (e.g. ``translate_2px``), and its mean
    over every transformed set; one row per scored model (the newest shift run of each)."""
    t = shift_table(runs=_given(runs, experiment, dataset))
    if t.empty:
        return pd.DataFrame()
    kinds = list(dict.fromkeys(k for k in t["kind"] if k != NONE))
    middle = [NONE] + [_middle(k) for k in kinds]
    wide = t.pivot_table(index="cell", columns="set", values="accuracy", sort=False)
    out = wide.reindex(columns=[c for c in middle if c in wide.columns]).rename(columns={NONE: "as is"})
    out["mean under shift"] = t[t["kind"] != NONE].groupby("cell", sort=False)["accuracy"].mean()
    group = {r["cell"]: _group(r) for _, r in t.iterrows()}
    rank = {g: i for i, g in enumerate(_order([g for g in set(group.values()) if g != FINETUNE_LINE], FEATURE_ORDER))}
    key = lambda c: (rank.get(group[c], len(rank)), -out.loc[c, "as is"])  # noqa: E731  fine-tunes last
    return out.loc[sorted(out.index, key=key)].rename_axis(index="cell", columns=None)


SHIFT_TEST_COLUMNS = ["kind", "set", "a", "b", "loss_a", "loss_b", "images", "both_right", "only_a", "only_b",
                      "p_value", "p_holm", "significant", "verdict"]


def shift_significance(experiment: str | None = None, dataset: str | None = "fashion-mnist", a: str = "scatnet",
                       b: str = "raw", *, runs: Runs | None = None) -> pd.DataFrame:
    """Per kind, at its middle level: does feature set ``a``'s best cell lose significantly less than ``b``'s?

    ``loss_a``/``loss_b``: accuracy as is minus accuracy shifted (percentage points, on the same images). The test:
    of the images both cells get right as they are (``both_right``), McNemar's exact test on which each still
    gets right shifted (``only_a``: ``a`` keeps it and ``b`` loses it), Holm-corrected over the kinds.
    """
    rs = _given(runs, experiment, dataset)
    lines = shift_lines(runs=rs)
    best = {name: next((lines[lines["group"] == g] for g in lines["group"].unique() if str(g).split(" ")[0] == name),
                       None) for name in (a, b)}
    la, lb = best[a], best[b]
    if la is None or lb is None:
        return pd.DataFrame(columns=SHIFT_TEST_COLUMNS)
    pa, pb = (rs.shift_predictions.get(df["run_id"].iloc[0]) for df in (la, lb))
    if pa is None or pb is None:
        return pd.DataFrame(columns=SHIFT_TEST_COLUMNS)
    _, ia, ib = np.intersect1d(pa["test_index"], pb["test_index"], assume_unique=True, return_indices=True)
    label = pa["label"][ia]
    right_a, right_b = pa[f"p_{NONE}"][ia] == label, pb[f"p_{NONE}"][ib] == label
    both = right_a & right_b
    rows = []
    for kind in dict.fromkeys(k for k in la["kind"] if k != NONE):
        name = _middle(kind)
        if f"p_{name}" not in pa or f"p_{name}" not in pb:
            continue
        ka, kb = pa[f"p_{name}"][ia] == label, pb[f"p_{name}"][ib] == label
        test = mcnemar_exact(ka[both], kb[both])
        rows.append({"kind": kind, "set": name, "a": la["cell"].iloc[0], "b": lb["cell"].iloc[0],
                     "loss_a": 100 * (right_a.mean() - ka.mean()), "loss_b": 100 * (right_b.mean() - kb.mean()),
                     "images": len(label), "both_right": int(both.sum()), "only_a": test.only_a,
                     "only_b": test.only_b, "p_value": test.p_value})
    out = pd.DataFrame(rows, columns=SHIFT_TEST_COLUMNS[:-3])
    if out.empty:
        return pd.DataFrame(columns=SHIFT_TEST_COLUMNS)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["significant"] = out["p_holm"] < 0.05
    out["verdict"] = [(f"{a} loses less" if r.only_a > r.only_b else f"{b} loses less") if r.significant
                      else "no significant difference" for r in out.itertuples()]
    return out[SHIFT_TEST_COLUMNS]


def shift_examples(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                   *, runs: Runs | None = None) -> Path | None:
    """The newest shift-features run's ``shift_examples.png`` (a few test images as they are and under every kind
    and level), or None."""
    rs = _given(runs, experiment, dataset)
    examples = rs.step("shift-features")
    return None if examples.empty else rs.images.get(examples["run_id"].iloc[0])


def shift_predictions(run_id: str) -> dict[str, np.ndarray]:
    """A shift run's ``shift_predictions.npz``, checksum verified: ``label``, ``test_index`` (each image's index in
    the dataset's test split) and ``p_<set>`` (the predictions on each set, ``p_none`` as they are)."""
    path = verify_artifacts(run_id).get(SHIFT_PREDICTIONS)
    if path is None:
        raise FileNotFoundError(f"shift run {run_id} recorded no {SHIFT_PREDICTIONS}")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _shift_findings(rs: Runs) -> list[str]:
    lines = shift_lines(runs=rs)
    if lines.empty:
        return []
    moved = lines[lines["kind"] != NONE].groupby("cell", sort=False)["accuracy"].mean()
    as_is = lines[lines["kind"] == NONE].set_index("cell")["accuracy"]
    n = int(lines["images"].iloc[0])
    out = [f"Under shift ({n:,} test images, {lines.loc[lines['kind'] != NONE, 'set'].nunique()} transformed sets), "
           "mean accuracy of each feature set's best cell: " + ", ".join(
               f"{cell} {v:.1f}% ({as_is[cell]:.1f}% as is)" for cell, v in moved.items()) + "."]
    sig = shift_significance(runs=rs)
    if not sig.empty:
        groups = {v: sig.loc[sig["verdict"] == v, "kind"].tolist() for v in dict.fromkeys(sig["verdict"])}
        said = "; ".join(f"{v.replace(' loses less', ' loses significantly less')} under {', '.join(k)}"
                         for v, k in groups.items())
        out.append(f"At the middle level of each kind, {sig['a'].iloc[0]} against {sig['b'].iloc[0]}: {said} "
                   "(McNemar's exact test on the images both get right as they are, Holm-corrected).")
    return out


def predictions(run_id: str) -> dict[str, np.ndarray]:
    """A classify or finetune run's ``predictions.npz``, checksum verified: ``test_index`` (each image's index in
    the dataset's test split, so runs on different samples meet on the images they share), ``label``,
    ``predicted``, ``scores`` (when the model has them), ``test_split`` (that split's digest) and ``data_digest``.
    Runs logged before predictions held dataset indices read with ``test_split`` "" and ``test_index`` their
    positions in their own sample (``fmnist.steps.base.load_predictions``)."""
    return load_predictions(run_id)


def _scored_runs(rs: Runs) -> pd.DataFrame:
    """The latest run of every classify cell and fine-tune mode, named as the tables name them."""
    rows = [{"cell": f"{MODEL_NAMES.get(r['model'], r['model'])} on {r['feature']}", "step": "classify", **r}
            for _, r in _latest(rs, "classify", CLASSIFY_CELL).iterrows()]
    rows += [{"cell": f"ResNet-18 fine-tune {r['mode']}, {r['weights_used']}", "step": "finetune",
              "model": f"finetune:{r['mode']}", **r, "feature": r["weights_used"]}
             for _, r in _latest(rs, "finetune", FINETUNE_CELL).iterrows()]
    return pd.DataFrame(rows, columns=None if rows else ["cell", "step", "model", "feature", "run_id"])


def scored_cells(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                 *, runs: Runs | None = None) -> pd.DataFrame:
    """Every classify cell and fine-tune mode (latest FINISHED run each) that kept its test predictions."""
    rs = _given(runs, experiment, dataset)
    out = []
    for _, r in _scored_runs(rs).iterrows():
        row = {k: r[k] for k in ("cell", "step", "model", "feature")}
        pred = rs.predictions.get(r["run_id"])
        if pred is None:  # a run without (intact) predictions is left out of the tests, not fatal
            log.warning("significance: leaving out run %s (%s): %s", r["run_id"], row["cell"],
                        rs.unreadable.get(r["run_id"], "not read"))
            continue
        out.append({**row, "accuracy": float(r["metrics.test_accuracy"]), "run_id": r["run_id"],
                    "ci_low": float(r.get("metrics.test_accuracy_ci_low", np.nan)),
                    "ci_high": float(r.get("metrics.test_accuracy_ci_high", np.nan)),
                    "data_digest": r.get(tag_col(DATA_DIGEST_TAG)), "label": pred["label"],
                    "correct": pred["label"] == pred["predicted"], "predictions": pred})
    return pd.DataFrame(out, columns=["cell", "step", "model", "feature", "accuracy", "ci_low", "ci_high", "run_id",
                                      "data_digest", "label", "correct", "predictions"])


SIGNIFICANCE_COLUMNS = ["family", "a", "b", "accuracy_a", "accuracy_b", "n_test", "only_a", "only_b", "p_value",
                        "p_holm", "significant"]


def significance_table(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                       alpha: float = 0.05, *, runs: Runs | None = None) -> pd.DataFrame:
    """Paired tests on the shared test images, one row per pair (McNemar's exact test, two-sided).

    Family ``vs best``: the most accurate cell (classify or fine-tune) against every other; family
    ``features per model``: for each classifier, every pair of feature sets. ``p_holm`` is Holm-corrected
    within its family; ``significant`` is ``p_holm < alpha``. Only runs scored on the same test images are
    paired: those on the data (digest) with the largest test set, e.g. the full profile's runs when a quick
    one shares the experiment. Accuracies in %.
    """
    rs = _given(runs, experiment, dataset)
    cells = scored_cells(runs=rs)
    if cells.empty:
        return pd.DataFrame(columns=SIGNIFICANCE_COLUMNS)
    cells["data_digest"] = cells["data_digest"].fillna("")
    cells["n_test"] = [len(lab) for lab in cells["label"]]
    cells["runs_on_data"] = cells["data_digest"].map(cells["data_digest"].value_counts())
    chosen = cells.sort_values(["n_test", "runs_on_data"], ascending=False).iloc[0]["data_digest"]
    cells = cells[cells["data_digest"] == chosen]
    cells = cells.sort_values(["accuracy", "cell"], ascending=[False, True]).reset_index(drop=True)  # ties: by name

    def pair(family: str, a: pd.Series, b: pd.Series) -> dict | None:
        correct_a, correct_b = correct_on_shared(a["predictions"], b["predictions"])  # matched by test index
        if not len(correct_a):
            return None
        t = mcnemar_exact(correct_a, correct_b)
        return {"family": family, "a": a["cell"], "b": b["cell"], "accuracy_a": 100 * a["accuracy"],
                "accuracy_b": 100 * b["accuracy"], "n_test": len(correct_a), "only_a": t.only_a, "only_b": t.only_b,
                "p_value": t.p_value}

    best = cells.iloc[0]
    families = [[pair("vs best", best, c) for _, c in cells.iloc[1:].iterrows()]]
    per_model = []
    for model in _order(cells.loc[cells["step"] == "classify", "model"], MODEL_ORDER):
        group = cells[(cells["step"] == "classify") & (cells["model"] == model)]
        group = group.set_index("feature").loc[_order(group["feature"], FEATURE_ORDER)].reset_index()
        per_model += [pair("features per model", group.iloc[i], group.iloc[j])
                      for i in range(len(group)) for j in range(i + 1, len(group))]
    families.append(per_model)
    rows = []
    for fam in families:
        fam = [r for r in fam if r is not None]
        for r, adj in zip(fam, holm([r["p_value"] for r in fam])):
            rows.append({**r, "p_holm": float(adj), "significant": bool(adj < alpha)})
    return pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)


def tied_with_best(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                   *, runs: Runs | None = None) -> list[str]:
    """The best cell and the cells not significantly worse than it (Holm-corrected McNemar, p >= 0.05)."""
    rs = _given(runs, experiment, dataset)
    sig = significance_table(runs=rs)
    vs = sig[sig["family"] == "vs best"]
    if sig.empty:
        return []
    best = vs["a"].iloc[0] if len(vs) else None
    return ([best] if best else []) + vs.loc[~vs["significant"], "b"].tolist()


VERDICTS = ("best", "tied with the best", "significantly worse")


def significance_summary(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                         *, runs: Runs | None = None) -> pd.DataFrame:
    """The answer of the paired tests, one row per cell, most accurate first: its accuracy and 95% interval
    (%), and whether it is the best, tied with it (not significantly worse) or significantly worse (``p_holm``
    of its test against the best)."""
    rs = _given(runs, experiment, dataset)
    cols = ["cell", "accuracy", "ci_low", "ci_high", "verdict", "p_holm"]
    sig = significance_table(runs=rs)
    vs = sig[sig["family"] == "vs best"] if not sig.empty else sig
    if vs.empty:
        return pd.DataFrame(columns=cols)
    cells = scored_cells(runs=rs).drop_duplicates("cell").set_index("cell")
    rows = [{"cell": vs["a"].iloc[0], "verdict": VERDICTS[0], "p_holm": np.nan}]
    rows += [{"cell": r["b"], "verdict": VERDICTS[2] if r["significant"] else VERDICTS[1], "p_holm": r["p_holm"]}
             for _, r in vs.iterrows()]
    for r in rows:
        c = cells.loc[r["cell"]]
        r.update(accuracy=100 * c["accuracy"], ci_low=100 * c["ci_low"], ci_high=100 * c["ci_high"])
    return pd.DataFrame(rows, columns=cols).sort_values("accuracy", ascending=False, kind="stable").reset_index(drop=True)


def feature_winners(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                    *, runs: Runs | None = None) -> pd.DataFrame:
    """Per classifier, which feature set wins: the most accurate one, the feature sets it is significantly
    ahead of, and those it is tied with (Holm-corrected McNemar within the classifier's family)."""
    rs = _given(runs, experiment, dataset)
    cols = ["model", "best", "accuracy", "ahead_of", "tied_with"]
    sig = significance_table(runs=rs)
    fm = sig[sig["family"] == "features per model"] if not sig.empty else sig
    out = []
    for model in dict.fromkeys(c.split(" on ")[0] for c in fm["a"]):
        rows = fm[fm["a"].str.startswith(f"{model} on ")]
        acc = {**dict(zip(rows["a"], rows["accuracy_a"])), **dict(zip(rows["b"], rows["accuracy_b"]))}
        best = max(acc, key=lambda c: (acc[c], c))
        ahead, tied = [], []
        for _, r in rows.iterrows():
            if best in (r["a"], r["b"]):
                other = r["b"] if r["a"] == best else r["a"]
                (ahead if r["significant"] else tied).append(other.split(" on ", 1)[1])
        out.append({"model": model, "best": best.split(" on ", 1)[1], "accuracy": acc[best],
                    "ahead_of": ", ".join(ahead), "tied_with": ", ".join(tied)})
    return pd.DataFrame(out, columns=cols)


def _significance_findings(sig: pd.DataFrame) -> list[str]:
    if sig.empty:
        return []
    out = []
    vs = sig[sig["family"] == "vs best"]
    if len(vs):
        best, ties = vs["a"].iloc[0], vs.loc[~vs["significant"], "b"].tolist()
        if ties:
            out.append(f"{best} is the most accurate cell, but not significantly more accurate than "
                       + ", ".join(ties) + " (McNemar's exact test on the shared test images, Holm-corrected, "
                       "p >= 0.05): treat those as ties.")
        else:
            out.append(f"{best} is significantly more accurate than every other cell (McNemar's exact test, "
                       f"Holm-corrected over {len(vs)} comparison{'s' if len(vs) > 1 else ''}, p < 0.05).")
    fm = sig[sig["family"] == "features per model"]
    for model in dict.fromkeys(c.split(" on ")[0] for c in fm["a"]):
        rows = fm[fm["a"].str.startswith(f"{model} on ")]
        won = [f"{(r['a'] if r['accuracy_a'] >= r['accuracy_b'] else r['b']).split(' on ')[1]} over "
               f"{(r['b'] if r['accuracy_a'] >= r['accuracy_b'] else r['a']).split(' on ')[1]}"
               for _, r in rows.iterrows() if r["significant"]]
        same = [f"{r['a'].split(' on ')[1]} ~ {r['b'].split(' on ')[1]}" for _, r in rows.iterrows()
                if not r["significant"]]
        text = f"{model}: " + ("; ".join(won) if won else "no feature set significantly better than another")
        out.append(text + (f" (no significant difference: {', '.join(same)})." if same and won else "."))
    return out


def findings(experiment: str | None = None, dataset: str | None = "fashion-mnist",
             *, runs: Runs | None = None) -> list[str]:
    """Short written findings computed from the numbers (nothing hard-coded); a difference is called one only
    when McNemar's test (Holm-corrected) says it is significant."""
    rs = _given(runs, experiment, dataset)
    out = []
    sig = significance_table(runs=rs)  # once: it reads every run's predictions
    acc = comparison_table(runs=rs)
    if not acc.empty and acc.shape[0] > 1:
        body = acc.drop(index="Average", columns="Average")
        feats = acc.loc["Average"].drop("Average").dropna()
        models = acc["Average"].drop("Average").dropna()
        if len(feats) > 1:  # a ranking needs two: "highest ... raw; lowest: raw" reads as a bug
            ahead = _ahead_everywhere(feats.idxmax(), sig)
            out.append(f"Highest average over classifiers: {feats.idxmax()} ({feats.max():.2f}%); lowest: "
                       f"{feats.idxmin()} ({feats.min():.2f}%)" + (
                           f"; {feats.idxmax()} is significantly ahead of every other feature set under every "
                           "classifier." if ahead else "; averages only: the per-classifier tests below say which "
                           "gaps are real."))
        if len(models) > 1 and len(feats) > 1:  # with one feature set, the average is the cell itself
            out.append(f"Highest average over feature sets: {MODEL_NAMES.get(models.idxmax(), models.idxmax())} "
                       f"({models.max():.2f}%).")
        stacked = body.stack().dropna()
        if len(stacked):
            (m, f), v = stacked.idxmax(), stacked.max()
            ci = _interval(rs, m, f)
            out.append(f"Most accurate classify cell: {MODEL_NAMES.get(m, m)} on {f} with {v:.2f}% test accuracy{ci}.")
    out += _significance_findings(sig)
    out += _shift_findings(rs)
    sep = separation_table(runs=rs)
    if not sep.empty and sep["knn_accuracy"].notna().any():
        best = sep.loc[sep["knn_accuracy"].idxmax()]
        by_method = sep.groupby("method")["knn_accuracy"].mean().sort_values(ascending=False)
        out.append(f"2-D view that separates the classes best (k-NN accuracy in 2-D): {best['method']} on "
                   f"{best['feature']} ({100 * best['knn_accuracy']:.1f}%); averaged over features the methods rank "
                   + ", ".join(f"{k} {100 * v:.1f}%" for k, v in by_method.items()) + ".")
    ft = finetune_table(runs=rs)
    if not ft.empty and ft["test_accuracy"].notna().any():
        best = ft.loc[ft["test_accuracy"].idxmax()]
        out.append(f"Best fine-tune: {best['mode']} with {best['weights_used']} weights, "
                   f"{best['test_accuracy']:.2f}% test accuracy after {best['epochs']} epochs.")
    if not out:
        out.append("No finished runs found yet: run the study (`make run`) first.")
    return out


def _interval(rs: Runs, model: str, feature: str) -> str:
    """`` (95% CI a-b%)`` for a classify cell that logged one, else nothing."""
    cells = _latest(rs, "classify", CLASSIFY_CELL)
    row = cells[(cells["model"] == model) & (cells["feature"] == feature)]
    lo, hi = (_col(row, f"metrics.test_accuracy_ci_{k}") for k in ("low", "high"))
    if row.empty or lo.isna().all() or hi.isna().all():
        return ""
    return f" (95% CI {100 * lo.iloc[0]:.2f}-{100 * hi.iloc[0]:.2f}%)"


# ------------------------------------------------------------------------------------- for readers


def weights_lines(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                  *, runs: Runs | None = None) -> list[str]:
    """Which weights every ResNet-18 number used (feature runs and fine-tunes)."""
    rs = _given(runs, experiment, dataset)
    out = []
    cells = _latest(rs, "classify", CLASSIFY_CELL)
    labels = sorted({f for f in cells.get("feature", []) if str(f).startswith("resnet18")}) if not cells.empty else []
    if labels:
        out.append("ResNet-18 features: " + ", ".join(labels) + ".")
    ft = finetune_table(runs=rs)
    for w, g in (ft.groupby("weights_used", sort=False) if not ft.empty else ()):
        modes = " and ".join(MODE_NAMES.get(m, m) for m in dict.fromkeys(g["mode"]))
        out.append(f"ResNet-18 fine-tuned ({modes}) from {WEIGHTS_NAMES.get(w, w)}.")
    return out


MODE_NAMES = {"full": "the full network", "last_layer": "the last layer only"}
WEIGHTS_NAMES = {"none (random init)": "a random initialisation, no ImageNet weights",
                 "imagenet:IMAGENET1K_V1": "ImageNet weights (IMAGENET1K_V1)"}


def best_per_feature(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                     *, runs: Runs | None = None) -> pd.DataFrame:
    """Per feature set: its best classifier, accuracy (mean over seeds) and interval or spread, as text (%)."""
    rs = _given(runs, experiment, dataset)
    summary = seed_summary(runs=rs)
    cols = ["feature", "model", "accuracy", "uncertainty", "n"]
    if summary.empty:
        return pd.DataFrame(columns=cols)
    best = summary.sort_values("mean", ascending=False).drop_duplicates("feature")
    best = best.set_index("feature").loc[_order(best["feature"], FEATURE_ORDER)].reset_index()
    return pd.DataFrame({
        "feature": best["feature"], "model": [MODEL_NAMES.get(m, m) for m in best["model"]],
        "accuracy": 100 * best["mean"],
        "uncertainty": [f"± {100 * r['std']:.2f} over {r['n']} seeds" if r["n"] > 1
                        else f"95% CI {100 * r['ci_low']:.2f}-{100 * r['ci_high']:.2f}" if pd.notna(r["ci_low"])
                        else "" for _, r in best.iterrows()],
        "n": best["n"]})[cols]


def summary(experiment: str | None = None, dataset: str | None = "fashion-mnist",
            *, runs: Runs | None = None) -> list[str]:
    """The report's opening: which weights the ResNet-18 numbers used, the best cell per feature, the findings."""
    rs = _given(runs, experiment, dataset)
    out = weights_lines(runs=rs)
    for _, r in best_per_feature(runs=rs).iterrows():
        out.append(f"Best on {r['feature']}: {r['model']}, {r['accuracy']:.2f}%"
                   + (f" ({r['uncertainty']})" if r["uncertainty"] else "") + ".")
    return out + findings(runs=rs)


def per_class_table(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                    *, runs: Runs | None = None) -> pd.DataFrame:
    """Per-class test accuracy (%, recall): one row per classify cell (``model on feature``) and fine-tune,
    one column per class."""
    rs = _given(runs, experiment, dataset)
    dataset = rs.dataset  # the runs' own, when given
    classes = list(DATASETS[dataset].classes) if dataset in DATASETS else None
    frames = []
    for step, keys, name in (("classify", CLASSIFY_CELL,
                              lambda r: f"{MODEL_NAMES.get(r['model'], r['model'])} on {r['feature']}"),
                             ("finetune", FINETUNE_CELL,
                              lambda r: f"ResNet-18 fine-tune {r['mode']}, {r['weights_used']}")):
        cells = _latest(rs, step, keys)
        for _, r in cells.iterrows():
            cols = classes or sorted(k[len("metrics.test_accuracy_"):] for k in r.index
                                     if k.startswith("metrics.test_accuracy_") and not k.endswith(("_low", "_high"))
                                     and pd.notna(r[k]))
            row = {c: 100 * r.get(f"metrics.test_accuracy_{slug(c)}", np.nan) for c in cols}
            frames.append(pd.Series(row, name=name(r)))
    return pd.DataFrame(frames) if frames else pd.DataFrame()


def best_cell(experiment: str | None = None, dataset: str | None = "fashion-mnist",
              *, runs: Runs | None = None) -> dict | None:
    """The most accurate cell that kept its predictions: name, run id, confusion matrix (rows: true class)."""
    rs = _given(runs, experiment, dataset)
    cells = scored_cells(runs=rs)
    if cells.empty:
        return None
    best = cells.sort_values(["accuracy", "cell"], ascending=[False, True]).iloc[0]
    pred = rs.predictions[best["run_id"]]
    n_classes = int(max(pred["label"].max(), pred["predicted"].max()) + 1)
    return {"cell": best["cell"], "run_id": best["run_id"], "accuracy": 100 * best["accuracy"],
            "confusion": confusion(pred["label"], pred["predicted"], n_classes)}


def most_confused(cm: np.ndarray, classes, k: int = 3) -> pd.DataFrame:
    """The ``k`` class pairs mistaken for each other most often (both directions counted)."""
    cm = np.asarray(cm)
    pairs = [(classes[i], classes[j], int(cm[i, j]), int(cm[j, i]))
             for i in range(len(cm)) for j in range(i + 1, len(cm))]
    df = pd.DataFrame(pairs, columns=["class_a", "class_b", "a_as_b", "b_as_a"])
    df["confusions"] = df["a_as_b"] + df["b_as_a"]
    return df.sort_values("confusions", ascending=False, kind="stable").head(k).reset_index(drop=True)


def cross_dataset_table(experiment: str | None = None, *, runs: Runs | None = None) -> pd.DataFrame:
    """Test accuracy (%) per model (rows) and (dataset, feature) (columns), every dataset in the experiment."""
    rs = _given(runs, experiment, None)
    all_runs = rs.every_dataset
    if all_runs.empty or param_col(DATASET_PARAM) not in all_runs.columns:
        return pd.DataFrame()
    parts = {}
    for ds in dict.fromkeys(all_runs[param_col(DATASET_PARAM)].dropna()):
        of_ds = all_runs[all_runs[param_col(DATASET_PARAM)] == ds].reset_index(drop=True)
        one = Runs(rs.experiment, ds, {"classify": of_ds})
        t = comparison_table(averages=False, runs=one)
        if not t.empty:
            parts[ds] = t
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, axis=1, names=["dataset", "feature"])
    return table.reindex(index=_order(table.index, MODEL_ORDER))


def class_names(dataset: str | None, n: int) -> list[str]:
    """The dataset's class names, or ``0..n-1`` for data outside the registry."""
    spec = DATASETS.get(dataset or "")
    return list(spec.classes) if spec and len(spec.classes) == n else [str(i) for i in range(n)]


def _ahead_everywhere(feature: str, sig: pd.DataFrame) -> bool:
    """True when ``feature`` beats every other feature set, significantly, under every classifier tested."""
    fm = sig[sig["family"] == "features per model"] if not sig.empty else sig
    pairs = [r for _, r in fm.iterrows() if r["a"].endswith(f" on {feature}") or r["b"].endswith(f" on {feature}")]
    return bool(pairs) and all(r["significant"] and ((r["accuracy_a"] > r["accuracy_b"]) == r["a"].endswith(
        f" on {feature}")) for r in pairs)


def _versions(prefix: str) -> list[dict]:
    """Every version of the registered models named ``prefix...``: {model, aliases (alias: version), version}."""
    return [{"model": name, "aliases": aliases, "version": v}
            for name, aliases in tracking.registered_models(prefix).items() for v in tracking.model_versions(name)]


def _registered(prefix: str | None, dataset: str | None, runs: Runs | None) -> list[dict]:
    prefix = _registry_prefix(prefix, dataset if runs is None else runs.dataset)
    found = _versions(prefix) if runs is None else runs.versions
    return [v for v in found if v["model"].startswith(prefix)]


def registry_table(prefix: str | None = None, dataset: str | None = "fashion-mnist", *,
                   runs: Runs | None = None) -> pd.DataFrame:
    """Each registered model of ``dataset`` (``fmnist-<feature>`` for Fashion-MNIST, ``<dataset>-<feature>``
    otherwise; or the names starting with ``prefix``): its champion (version, run, test accuracy and interval)
    and its challenger with the comparison that kept it from promotion. One row per model; empty when nothing
    is registered."""
    rows, by_model = [], {}
    for v in _registered(prefix, dataset, runs):
        by_model.setdefault(v["model"], (v["aliases"], {}))[1][v["version"].version] = v["version"]
    for name, (aliases, versions) in by_model.items():
        champ, chall = versions.get(aliases.get("champion", "")), versions.get(aliases.get("challenger", ""))
        rows.append({"model": name, "versions": len(versions), "champion": _said(champ),
                     "champion run": champ.run_id if champ else "", "challenger": _said(chall),
                     "challenger vs champion": chall.tags.get(PROMOTION_TAG, "") if chall else "",
                     "serve": f"fmnist serve --model {name}@champion" if champ else ""})
    return pd.DataFrame(rows)


def _registry_prefix(prefix: str | None, dataset: str | None) -> str:
    return prefix if prefix is not None else model_prefix(dataset or "fashion-mnist")


def _said(v) -> str:
    return "" if v is None else (f"v{v.version}: {100 * float(v.tags.get(TEST_ACCURACY_TAG, 'nan')):.2f}% "
                                 f"{_pct_interval(v.tags.get(TEST_ACCURACY_CI_TAG, ''))}").strip()


REGISTRY_VERSION_COLUMNS = ["model", "version", "alias", "test accuracy", "test images", "compared on", "why",
                            "run"]


def registry_versions(prefix: str | None = None, dataset: str | None = "fashion-mnist", *,
                      runs: Runs | None = None) -> pd.DataFrame:
    """Every version of each registered model of ``dataset``, newest first: its alias, test accuracy (%, with
    its interval) on how many test images, the test images it shared with the champion it was compared with,
    and why it is or is not the champion."""
    rows = []
    for found in _registered(prefix, dataset, runs):
        v, by_version = found["version"], {n: a for a, n in found["aliases"].items()}
        shared, against = v.tags.get(COMPARED_TAG), v.tags.get(COMPARED_WITH_TAG, "")
        rows.append({"model": found["model"], "version": int(v.version), "alias": by_version.get(v.version, ""),
                     "test accuracy": _said(v).partition(": ")[2],
                     "test images": int(v.tags[N_TEST_TAG]) if v.tags.get(N_TEST_TAG) else None,
                     "compared on": f"{shared} shared with {against}" if shared else "",
                     "why": v.tags.get(PROMOTION_TAG, ""), "run": v.run_id})
    return pd.DataFrame(rows, columns=REGISTRY_VERSION_COLUMNS)


def _pct_interval(text: str) -> str:
    """'[0.9130, 0.9240]' -> '[91.30, 92.40]'."""
    try:
        lo, hi = (float(x) for x in text.strip("[]").split(","))
    except ValueError:
        return ""
    return f"[{100 * lo:.2f}, {100 * hi:.2f}]"


# ------------------------------------------------------------------------------------- docs/results.md


def markdown_table(df: pd.DataFrame, index: bool = True) -> str:
    """A GitHub-flavoured Markdown table (floats to 2 decimals, blanks for missing values)."""
    df = df.reset_index() if index else df
    fmt = lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else (  # noqa: E731
        f"{v:.2f}" if isinstance(v, float) else str(v))
    rows = [[str(c) for c in df.columns]] + [[fmt(v) for v in r] for r in df.itertuples(index=False)]
    lines = ["| " + " | ".join(r).replace("\n", " ") + " |" for r in rows]
    return "\n".join([lines[0], "|" + "---|" * len(df.columns), *lines[1:]])


def results_markdown(experiment: str | None = None, dataset: str | None = "fashion-mnist", about: str = "",
                     *, runs: Runs | None = None) -> str:
    """The study's results as a Markdown page (docs/results.md): accuracy table with intervals, which
    differences are real, under shift, fine-tuning, and the published results with ours ranked in; ``about`` opens it
    (the command, date and machine of the run)."""
    rs = _given(runs, experiment, dataset)
    acc, summ, wins = comparison_display(runs=rs), significance_summary(runs=rs), feature_winners(runs=rs)
    ft, sota, course = finetune_table(runs=rs), sota_table(runs=rs), course_table(runs=rs)
    weights = weights_lines(runs=rs)
    out = ["# Results", "", about.strip(), ""] if about.strip() else ["# Results", ""]
    out += [f"- {w}" for w in weights] + ([""] if weights else [])
    out += ["## Test accuracy (%): classifiers x feature sets", "",
            "Each cell: the test accuracy with its 95% Wilson interval over the test images (or mean ± std over "
            "seeds).", ""]
    out += [markdown_table(acc.rename_axis(index="model", columns=None)) if not acc.empty else "_No classify runs._", ""]
    if not summ.empty:
        s = summ.assign(interval=[f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(summ["ci_low"], summ["ci_high"])],
                        p_holm=[("" if pd.isna(p) else f"{p:.2g}") for p in summ["p_holm"]])
        out += ["## Which differences are real", "",
                "Each cell against the most accurate one (McNemar's exact test on the shared test images, "
                "Holm-corrected, p < 0.05).", "",
                markdown_table(s[["cell", "accuracy", "interval", "verdict", "p_holm"]], index=False), ""]
    if not wins.empty:
        w = wins.assign(model=[MODEL_NAMES.get(m, m) for m in wins["model"]])
        out += ["Per classifier, the best feature set and what it is significantly ahead of or tied with:", "",
                markdown_table(w, index=False), ""]
    kept = shift_kept_table(runs=rs)
    if not kept.empty:
        t = shift_table(runs=rs)
        n, moved = int(t["images"].iloc[0]), t.loc[t["kind"] != NONE, "set"].nunique()
        sig = shift_significance(runs=rs)
        out += ["## Under shift", "",
                f"Every scored model on the same {n:,} test images (drawn from the whole test split by the seed), "
                f"as they are and at each kind's middle level (accuracy, %; the last column: the mean over all {moved} "
                "transformed sets; `fmnist shift`, docs/steps.md).", "",
                markdown_table(kept), ""]
        if not sig.empty:
            s = sig.assign(p_holm=[f"{p:.2g}" for p in sig["p_holm"]])
            out += [f"{sig['a'].iloc[0]} against {sig['b'].iloc[0]}: loss = accuracy as is minus shifted "
                    "(percentage points); of the images both get right as they are, how many only one of them "
                    "still gets right shifted (McNemar's exact test, Holm-corrected over the kinds).", "",
                    markdown_table(s[["kind", "set", "loss_a", "loss_b", "both_right", "only_a", "only_b", "p_holm",
                                      "verdict"]].rename(columns={"loss_a": "loss a (pp)", "loss_b": "loss b (pp)"}),
                                   index=False), ""]
        out += [f"- {line}" for line in _shift_findings(rs)] + [""]
    if not ft.empty:
        out += ["## Fine-tuning ResNet-18", "",
                markdown_table(ft.drop(columns="run_id"), index=False), ""]
    if not course.empty:
        out += ["## Against the course report", "",
                "The course report trained the same four classifiers on raw pixels and on scattering features "
                "(J=3, L=1, order 2: 63 coefficients; this study's default is J=2, L=8, order 2 with a log and a "
                "standardisation ahead of every model), and fine-tuned ResNet-18 "
                "(`fmnist/resources/course_report.csv`).", "",
                markdown_table(course, index=False), ""]
    if not sota.empty:
        out += ["## Published results, with this study's best rows ranked in", "",
                markdown_table(sota, index=False), ""]
    return "\n".join(out).rstrip() + "\n"
