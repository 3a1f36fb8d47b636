"""Classification as a step: one run per (feature, model) cell; ``classify`` runs a grid as a graph (its extract
cells and its cells, siblings under one parent)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import click
import numpy as np

from .. import cache, plots, tracking
from ..classifiers import CLASSIFIERS, build_classifier, fit_classifier, input_transform, model_input
from ..classifiers.tuning import announce
from ..data import Dataset, data_digest, stratified_indices
from ..errors import CacheError
from ..evaluation import (CI_METHOD, accuracy_metrics, class_probabilities, classification_report,
                          predictions_arrays, slug)
from ..features import FEATURES
from ..predictor import for_classifier
from .base import (DATA_COLUMNS, PREDICTIONS, RunContext, Step, data_params, log_predictions, scaled,
                   split_evaluation)
from .extract import ARTIFACT, EXTRACT, ExtractParams, extract_params_of, FeatureSet, load_feature_run
from .params import Common, FeatureOpts, param
from ..tags import (CI_METHOD_TAG, EXTRACT_RUN_TAG, FEATURE_CACHED_TAG, FEATURE_LABEL_TAG, FEATURE_PARAM,
                    HP_PARAM_PREFIX, MODEL_PARAM, MODEL_TAG, SEED_PARAM, param_col, tag_col)

log = logging.getLogger("fmnist")

# train_accuracy is measured on a stratified sample of this many training images: predicting all 60k
# costs an RBF SVM six times its test-set prediction and says nothing more.
TRAIN_EVAL_N = 10000


@dataclass(frozen=True)
class ClassifyParams(FeatureOpts, Common):
    feature: str = param("scatnet", f"all, or a comma list of: {', '.join(FEATURES.names())}.")
    model: str = param("all", f"all, or a comma list of: {', '.join(CLASSIFIERS.names())}.")
    tune: bool = param(True, "Choose hyperparameters on a validation split of the training set "
                             "(false: fixed defaults).")
    val_fraction: float = param(0.1, "Share of the training set held out for validation (0 with tune=false: "
                                     "no validation fit).", type=click.FloatRange(0, 1, max_open=True))
    n_jobs: int = param(-1, "Parallel jobs for models that use them (rf).", key=False)
    extract_run: str = param("", "Use this FINISHED extract run's features (checked against the data) instead of "
                                 "the cache lookup.")

    def extract_params(self) -> ExtractParams:
        return extract_params_of(self)


@dataclass
class CellResult:
    feature: str
    label: str
    model: str
    run_id: str
    extract_run_id: str | None
    chosen: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # what log() writes as artifacts


def classify_code(p: ClassifyParams) -> str:
    return cache.step_code_version(__name__, "fmnist.steps.base", "fmnist.classifiers", "fmnist.classifiers.tuning",
                                   CLASSIFIERS.get(p.model).fn.__module__, FEATURES.get(p.feature).fn.__module__)


class Classify(Step):
    name = "classify"
    Params = ClassifyParams
    report_cell = (MODEL_PARAM, FEATURE_PARAM)  # a feature is shown by its label (FEATURE_LABEL_TAG)
    report_columns = (param_col(MODEL_PARAM), param_col(FEATURE_PARAM), tag_col(FEATURE_LABEL_TAG), *DATA_COLUMNS)

    def code(self, p: ClassifyParams) -> str:
        return classify_code(p)

    def run_name(self, p: ClassifyParams) -> str:
        return f"classify-{p.feature}-{p.model}"

    def run_params(self, p: ClassifyParams, ds: Dataset) -> dict[str, Any]:
        return {FEATURE_PARAM: p.feature, MODEL_PARAM: p.model, **data_params(ds), SEED_PARAM: p.seed, "tune": p.tune,
                "val_fraction": p.val_fraction, "train_eval_n": TRAIN_EVAL_N,
                "input_transform": input_transform(p.feature, p.model), **p.extract_params().resolved()}

    def resources(self, p: ClassifyParams) -> dict[str, float]:
        # A model that parallelises itself (rf: n_jobs=-1) declares `fn.cpus` beside its registration.
        m, f = CLASSIFIERS.get(p.model), FEATURES.get(p.feature)
        cost = m.hook("cost", 60.0)
        if callable(cost):  # it grows with the feature dimension too
            cost = cost(p.subset or 60000, f.hook("dims", lambda _: 784)(p.extract_params().resolved()))
        else:
            cost = scaled(cost, p.subset, 60000)
        return {"num_cpus": m.hook("cpus", 1), "cost": cost * (1.0 if p.tune else 0.4)}  # tune: a grid of fits

    def label(self, p: ClassifyParams) -> str:
        return f"{p.feature}/{p.model}"

    def requires(self, p: ClassifyParams) -> dict[str, tuple[Step, Any]]:
        return {} if p.extract_run else {"features": (EXTRACT, p.extract_params())}

    def run(self, p: ClassifyParams, ds: Dataset, inputs: dict, ctx: RunContext) -> CellResult:
        if p.extract_run:  # inside the run: features refused for this data fail it, with the reason
            fs, reused = load_feature_run(p.extract_run, ds, p.feature), True
        else:
            fs, reused = inputs["features"].result, inputs["features"].cached
        check_features(fs, ds)
        return fit_cell(fs, p, ctx.run_id, feature_cached=reused, test_index=ds.test_index, test_split=ds.test_split,
                        images=(ds.x_train, ds.x_test))

    def log(self, p: ClassifyParams, ds: Dataset, r: CellResult) -> dict[str, str]:
        return log_cell(r, ds, p.extract_params().resolved())


CLASSIFY = Classify()


def fit_cell(fs: FeatureSet, p: ClassifyParams, run_id: str, feature_cached: bool = False,
             test_index: np.ndarray | None = None, test_split: str = "",
             images: tuple[np.ndarray, np.ndarray] | None = None) -> CellResult:
    """Fit one model on one feature set (hyperparameters on a validation split only) and evaluate it once;
    ``test_index``/``test_split``: where the test images sit in the dataset's test split (``Dataset``);
    ``images``: the (train, test) images, for a model that reads their pixels beside the features."""
    spec = build_classifier(p.model, tune=p.tune, seed=p.seed, n_jobs=p.n_jobs, feature=fs.feature)
    if spec.pixels and images is None:
        raise ValueError(f"{p.model} on {fs.feature} reads the pixels beside the features: pass the images")
    train_images, test_images = images or (None, None)
    x_train = model_input(fs.x_train, train_images, spec.pixels)
    x_test = model_input(fs.x_test, test_images, spec.pixels)
    name = f"{p.model} on {fs.label}"
    res = fit_classifier(spec, x_train, fs.y_train, tune=p.tune, val_fraction=p.val_fraction, seed=p.seed,
                         name=name)
    with announce(f"predict {name} on {len(fs.y_test)} test images"):
        t = time.perf_counter()
        y_pred = res.model.predict(x_test)
        predict_seconds = time.perf_counter() - t
    scores = class_probabilities(res.model, x_test)
    sample = stratified_indices(fs.y_train, TRAIN_EVAL_N, p.seed)
    train_acc = float(np.mean(res.model.predict(x_train[sample]) == fs.y_train[sample]))
    rep = classification_report(fs.y_test, y_pred, fs.classes)
    metrics = {**accuracy_metrics(fs.y_test, y_pred), "train_accuracy": train_acc, "macro_f1": rep["macro_f1"],
               "fit_seconds": res.fit_seconds, "predict_seconds": predict_seconds,
               "tune_seconds": res.tune_seconds, "n_train": len(fs.y_train), "n_test": len(fs.y_test),
               "dim": fs.dim}
    if res.val_accuracy is not None:
        metrics["val_accuracy"] = res.val_accuracy
    metrics.update({f"test_accuracy_{slug(c)}": a for c, a in rep["per_class_accuracy"].items()})
    log.info("%s: test_accuracy %.4f, macro_f1 %.4f, fit %.1fs, predict %.1fs (run %s)", name, rep["accuracy"],
             rep["macro_f1"], res.fit_seconds, predict_seconds, run_id)
    return CellResult(fs.feature, fs.label, p.model, run_id, fs.run_id, res.chosen, metrics, extra={
        "fit": res, "report": rep, "feature_cached": feature_cached, "features": fs, "pixels": spec.pixels,
        "predictions": predictions_arrays(fs.y_test, y_pred, scores, test_index, test_split)})


def log_cell(r: CellResult, ds: Dataset, feature_params: dict[str, Any]) -> dict[str, str]:
    """The features as the run's inputs, metrics (the test ones with the test images, linked to the image model),
    per-class table, confusion matrix, tuning trials and the image model (the fitted pipeline inside) onto the
    active run."""
    import pandas as pd

    res, rep, fs = r.extra["fit"], r.extra["report"], r.extra["features"]
    tracking.log_params({"tune_train_n": res.n_tune_train, "n_val": res.n_val,
                         **{HP_PARAM_PREFIX + k: v for k, v in res.chosen.items()}})
    tracking.set_tags({FEATURE_LABEL_TAG: r.label, EXTRACT_RUN_TAG: r.extract_run_id or "",
                       FEATURE_CACHED_TAG: str(r.extra["feature_cached"]).lower(), MODEL_TAG: r.model,
                       CI_METHOD_TAG: CI_METHOD})
    source = f"runs:/{r.extract_run_id}/{ARTIFACT}" if r.extract_run_id else ds.source
    inputs = {split: tracking.numpy_dataset(x, y, name=f"{ds.name}-{r.feature}-{split}", digest=data_digest(x, y),
                                            source=source)
              for split, x, y in (("train", fs.x_train, fs.y_train), ("test", fs.x_test, fs.y_test))}
    for split, d in inputs.items():
        tracking.log_dataset(d, context="training" if split == "train" else "testing")
    # The image model's metrics are on the test images (the features are its inside): one dataset for every
    # classify and finetune model of a dataset, so the models page has one accuracy column across them.
    images = tracking.numpy_dataset(ds.x_test, ds.y_test, name=f"{ds.name}-test", digest=ds.digest, source=ds.source)
    tracking.log_dataset(images, context="evaluation")
    evaluation, other = split_evaluation(r.metrics)
    tracking.log_metrics(other)
    classes, cm = list(ds.classes), rep["confusion"]
    tracking.log_table(pd.DataFrame({
        "class_index": range(len(classes)), "class": classes,
        "test_accuracy": [rep["per_class_accuracy"][c] for c in classes],
        "support": cm.sum(axis=1), "correct": np.diag(cm),
    }), "per_class_accuracy.csv")
    fig = plots.confusion_matrix_figure(cm, classes, title=f"{r.model} on {r.label}")
    try:
        tracking.log_figure(fig, "confusion_matrix.png")
    finally:
        plots.close(fig)
    if res.trials:
        tracking.log_table(res.tuning_table, "tuning.csv")
    with announce(f"log image model {r.model} on {r.label}"):
        model_id = tracking.log_image_model(for_classifier(r.feature, feature_params, r.model, res.model, ds.classes,
                                                           pixels=r.extra["pixels"]),
                                            name=f"{r.model}-{r.feature}", input_example=ds.x_test[:2])
    tracking.log_evaluation(evaluation, images, model_id)
    return {PREDICTIONS: log_predictions(r.extra["predictions"])}


def check_features(fs: FeatureSet, ds: Dataset) -> None:
    """Refuse feature arrays that cannot belong to this dataset (wrong shape, labels or non-finite values)."""
    where = f"extract run {fs.run_id}" if fs.run_id else "features"
    for split, x, y, n in (("train", fs.x_train, fs.y_train, len(ds.y_train)),
                           ("test", fs.x_test, fs.y_test, len(ds.y_test))):
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


