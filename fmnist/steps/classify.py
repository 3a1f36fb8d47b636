"""Classification as tracked runs: one run per (feature, model) cell, a parent run over a grid."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import cache, plots, tracking
from ..classifiers import CLASSIFIERS, build_classifier, fit_classifier, input_transform
from ..classifiers.tuning import announce, check_val_fraction
from ..data import Dataset, load_dataset, stratified_indices
from ..errors import CacheError, ParamError
from ..evaluation import classification_report, slug
from ..features import FEATURES, RUNTIME_DEFAULTS, feature_params
from .extract import FeatureSet, get_features, load_feature_run

log = logging.getLogger("fmnist")

# train_accuracy is measured on a stratified sample of this many training images: predicting all 60k
# costs an RBF SVM six times its test-set prediction and says nothing more.
TRAIN_EVAL_N = 10000


@dataclass
class CellResult:
    feature: str
    label: str
    model: str
    run_id: str
    extract_run_id: str | None
    chosen: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)


def classify(
    *,
    feature: str,
    model: str,
    dataset: str = "fashion-mnist",
    data_dir: str | None = None,
    subset: int | None = None,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    tune: bool = True,
    val_fraction: float = 0.1,
    n_jobs: int = -1,
    extract_run: str | None = None,
    batch_size: int = RUNTIME_DEFAULTS["batch_size"],
    device: str = RUNTIME_DEFAULTS["device"],
    progress: bool = True,
    ds: Dataset | None = None,
) -> list[CellResult]:
    """Fit and evaluate every (feature, model) cell; one run each, children of one parent for a grid.

    ``feature``/``model``: a name, a comma list or ``all``. Features come from the matching FINISHED
    extract run (or ``extract_run``, checked against the data), else are computed and logged first.
    """
    features, models = FEATURES.expand(feature), CLASSIFIERS.expand(model)
    # Every check that can fail on the user's input runs before any run is opened.
    fparams = {f: feature_params(f, params) for f in features}
    check_val_fraction(tune, val_fraction)
    if extract_run and len(features) != 1:
        raise ParamError(f"extract_run names one extract run: give one feature, not {feature!r}")
    ds = ds or load_dataset(dataset, data_dir=data_dir, subset=subset, seed=seed)
    common = dict(ds=ds, seed=seed, tune=tune, val_fraction=val_fraction, n_jobs=n_jobs)

    def features_for(name: str) -> FeatureSet:
        if extract_run:
            fs = load_feature_run(extract_run, ds, name)
        else:
            fs = get_features(feature=name, ds=ds, params=fparams[name], batch_size=batch_size, device=device,
                              progress=progress)
        check_features(fs, ds)
        return fs

    if len(features) == 1 and len(models) == 1:
        with tracking.run(f"classify-{features[0]}-{models[0]}", step="classify"):
            return [_cell(features_for(features[0]), models[0], **common)]

    results: list[CellResult] = []
    with tracking.run(f"classify-{feature.replace(',', '+')}-{model.replace(',', '+')}", step="classify-group"):
        tracking.log_params({"feature": feature, "model": model, "dataset": ds.name, "subset": ds.subset or "all",
                             "seed": seed, "tune": tune, "val_fraction": val_fraction})
        t0 = time.perf_counter()
        for f in features:
            fs = features_for(f)
            for m in models:
                with tracking.run(f"classify-{f}-{m}", step="classify"):
                    results.append(_cell(fs, m, **common))
        _log_summary(results, time.perf_counter() - t0)
    return results


def classify_key(*, feature: str, params: dict[str, Any], model: str, tune: bool, seed: int, ds: Dataset) -> str:
    """Cache key of one FINISHED classify cell: its params, the data and the code that computes it."""
    code = cache.step_code_version(__name__, "fmnist.classifiers", "fmnist.classifiers.tuning",
                                   CLASSIFIERS.get(model).fn.__module__, FEATURES.get(feature).fn.__module__)
    return cache.cache_key("classify", {"feature": feature, **params, "model": model, "tune": tune, "seed": seed},
                           ds.digest, code)


def check_features(fs: FeatureSet, ds: Dataset) -> None:
    """Refuse feature arrays that cannot belong to this dataset (wrong shape, labels or non-finite values)."""
    where = f"extract run {fs.run_id}" if fs.run_id else "features"
    for split, x, y, n in (("train", fs.x_train, fs.y_train, len(ds.y_train)), ("test", fs.x_test, fs.y_test,
                                                                                len(ds.y_test))):
        if x.ndim != 2 or len(x) != n or len(y) != n:
            raise CacheError(f"{where}: {split} features have shape {x.shape}, expected ({n}, D); refusing them")
    if fs.x_train.shape[1] != fs.x_test.shape[1]:
        raise CacheError(f"{where}: train features are {fs.x_train.shape[1]}-d but test features "
                         f"{fs.x_test.shape[1]}-d; refusing them")
    if not np.array_equal(fs.y_train, ds.y_train) or not np.array_equal(fs.y_test, ds.y_test):
        raise CacheError(f"{where}: labels differ from the dataset's; refusing them")
    for split, x in (("train", fs.x_train), ("test", fs.x_test)):
        if not np.isfinite(x).all():
            raise CacheError(f"{where}: {split} features hold NaN or inf; refusing them")


def _cell(fs: FeatureSet, model: str, *, ds: Dataset, seed: int, tune: bool, val_fraction: float,
          n_jobs: int) -> CellResult:
    run_id = tracking.active_run_id()
    spec = build_classifier(model, tune=tune, seed=seed, n_jobs=n_jobs, feature=fs.feature)
    tracking.log_params({"feature": fs.feature, "model": model, "dataset": ds.name, "subset": ds.subset or "all",
                         "seed": seed, "tune": tune, "val_fraction": val_fraction, "train_eval_n": TRAIN_EVAL_N,
                         "input_transform": input_transform(fs.feature), **fs.params})
    tracking.set_tags({"fmnist.feature_label": fs.label, "fmnist.extract_run_id": fs.run_id or "",
                       "fmnist.feature_cached": str(fs.cached).lower(), "fmnist.model": model})
    name = f"{model} on {fs.label}"
    res = fit_classifier(spec, fs.x_train, fs.y_train, tune=tune, val_fraction=val_fraction, seed=seed, name=name)
    tracking.log_params({"tune_train_n": res.n_tune_train, "n_val": res.n_val,
                         **{f"hp_{k}": v for k, v in res.chosen.items()}})

    with announce(f"predict {name} on {len(fs.y_test)} test images"):
        t = time.perf_counter()
        y_pred = res.model.predict(fs.x_test)
        predict_seconds = time.perf_counter() - t
    sample = stratified_indices(fs.y_train, TRAIN_EVAL_N, seed)
    train_acc = float(np.mean(res.model.predict(fs.x_train[sample]) == fs.y_train[sample]))
    rep = classification_report(fs.y_test, y_pred, fs.classes)

    metrics = {"test_accuracy": rep["accuracy"], "train_accuracy": train_acc, "macro_f1": rep["macro_f1"],
               "fit_seconds": res.fit_seconds, "predict_seconds": predict_seconds,
               "tune_seconds": res.tune_seconds, "n_train": len(fs.y_train), "n_test": len(fs.y_test),
               "dim": fs.dim}
    if res.val_accuracy is not None:
        metrics["val_accuracy"] = res.val_accuracy
    metrics.update({f"test_accuracy_{slug(c)}": a for c, a in rep["per_class_accuracy"].items()})
    tracking.log_metrics(metrics)

    import pandas as pd

    cm = rep["confusion"]
    tracking.log_table(pd.DataFrame({
        "class_index": range(len(fs.classes)), "class": list(fs.classes),
        "test_accuracy": [rep["per_class_accuracy"][c] for c in fs.classes],
        "support": cm.sum(axis=1), "correct": np.diag(cm),
    }), "per_class_accuracy.csv")
    fig = plots.confusion_matrix_figure(cm, fs.classes, title=f"{model} on {fs.label}")
    try:
        tracking.log_figure(fig, "confusion_matrix.png")
    finally:
        plots.close(fig)
    if res.trials:
        tracking.log_table(pd.DataFrame(res.trials), "tuning.csv")
    with announce(f"log model {name}"):
        tracking.log_sklearn_model(res.model, name="model", input_example=fs.x_test[:5],
                                      trusted_types=spec.trusted_types)
    log.info("%s: test_accuracy %.4f, macro_f1 %.4f, fit %.1fs, predict %.1fs (run %s)", name, rep["accuracy"],
             rep["macro_f1"], res.fit_seconds, predict_seconds, run_id)
    return CellResult(fs.feature, fs.label, model, run_id or "", fs.run_id, res.chosen, metrics)


def _log_summary(results: list[CellResult], seconds: float) -> None:
    import pandas as pd

    rows = [{"feature": r.feature, "feature_label": r.label, "model": r.model, **{k: r.metrics.get(k) for k in (
        "test_accuracy", "val_accuracy", "train_accuracy", "macro_f1", "fit_seconds", "predict_seconds")},
        **{f"hp_{k}": v for k, v in r.chosen.items()}, "run_id": r.run_id} for r in results]
    tracking.log_table(pd.DataFrame(rows), "results.csv")
    tracking.log_metrics({"grid_seconds": seconds})
    for r in results:
        log.info("%-28s %-7s test_accuracy %.4f", r.label, r.model, r.metrics["test_accuracy"])
