"""Robustness under shift as two steps: ``shift-features``, one feature set's features of the shifted test sample
(shared by every classifier of that feature set), and ``shift``, one scored model's accuracy on every shifted set.

The sample is ``shift_n`` images of the dataset's whole test split, drawn by the seed, whatever sample the scored
run was tested on: models of different runs meet the very same (transformed) images, so paired tests apply.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import click
import numpy as np

from .. import cache, tracking
from ..data import Dataset, load_dataset
from ..errors import FmnistError, ParamError
from ..features import FEATURES, extract_features, feature_label
from ..plots import close
from ..shifts import SHIFTS, accuracy_rows, sets, shift_metrics, shift_sample, shifted_sets
from ..shifts.figures import curve_figure, examples_figure
from .base import DATA_COLUMNS, Outcome, RunContext, Step, data_params, scaled, verify_artifacts
from .classify import CLASSIFY
from .extract import extract_code
from .finetune import FINETUNE
from .params import Common, FeatureOpts, key_values, param, rekeyed
from ..tags import (FEATURE_LABEL_TAG, FEATURE_PARAM, KINDS_PARAM, MODE_PARAM, MODEL_PARAM, PARAMS_TAG,
                    SCORED_RUN_TAG, SCORED_STEP_PARAM, SEED_PARAM, SHIFT_N_PARAM, STEP_TAG, WEIGHTS_PARAM, param_col,
                    tag_col)

log = logging.getLogger("fmnist")

FEATURES_ARTIFACT = "shift_features.npz"
PREDICTIONS_ARTIFACT = "shift_predictions.npz"
TABLE_ARTIFACT = "shift.csv"
EXAMPLES_FIGURE = "shift_examples.png"  # on each shift-features run: a few test images under every kind and level
SCORED = "scored"  # key group: the scored cell's own key (its params, data and code), or the run given
SHIFT_CODE = ("fmnist.shifts.base", "fmnist.shifts.geometric", "fmnist.shifts.photometric", "fmnist.shifts.measure")


@dataclass(frozen=True)
class ShiftOpts:
    shift_n: int = param(2000, "Test images scored under shift, drawn from the dataset's whole test split by the "
                               "seed: every model meets the same ones.", type=click.IntRange(min=10))
    kinds: str = param("all", f"all, or a comma list of: {', '.join(SHIFTS.names())}.")

    def check_sample(self, dataset: str, data_dir: str) -> Dataset:
        """The whole dataset the sample is drawn from, once ``shift_n`` is known to fit in its test split."""
        full = load_dataset(dataset, data_dir=data_dir or None)
        if self.shift_n > len(full.y_test):
            raise ParamError(f"shift_n={self.shift_n} is more than the {len(full.y_test)} images of the test split")
        return full

    def sample(self, dataset: str, data_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images, labels, test index) of the shifted sample, from the whole test split."""
        full = self.check_sample(dataset, data_dir)
        idx = shift_sample(full.y_test, self.shift_n, getattr(self, "seed"))
        return full.x_test[idx], full.y_test[idx], idx


@dataclass(frozen=True)
class ShiftFeaturesParams(ShiftOpts, FeatureOpts, Common):
    feature: str = param("scatnet", f"One of: {', '.join(FEATURES.names())}.")
    subset: int | None = rekeyed(Common, "subset", False)  # the sample comes from the whole test split

    def resolved(self) -> dict[str, Any]:
        """This feature's own params, validated ('auto' weights resolved)."""
        return self.key_group("feature", None)


def shift_features_of(q: Any, p: "ShiftParams") -> ShiftFeaturesParams:
    """The shift-features cell a classify cell's shift reads: its feature and feature params, the shift's sample."""
    names = {f.name for f in fields(ShiftFeaturesParams)} - {"force", "shift_n", "kinds", "seed"}
    return ShiftFeaturesParams(**{k: getattr(q, k) for k in names if hasattr(q, k)}, shift_n=p.shift_n,
                               kinds=p.kinds, seed=p.seed)


class ShiftFeatures(Step):
    name = "shift-features"
    Params = ShiftFeaturesParams
    memoise = True  # the classifiers of one feature set read one extraction

    def key(self, p: ShiftFeaturesParams, ds: Dataset) -> str:
        # the whole test split's digest, not the subset's: the sample is drawn from the split itself
        return cache.cache_key(self.name, key_values(p, ds), ds.test_split,
                               self.code(p))

    def code(self, p: ShiftFeaturesParams) -> str:
        return f"{extract_code(p.feature)}/{cache.step_code_version(__name__, *SHIFT_CODE)}"

    def run_name(self, p: ShiftFeaturesParams) -> str:
        return f"shift-features-{p.feature}"

    def label(self, p: ShiftFeaturesParams) -> str:
        return p.feature

    def run_params(self, p: ShiftFeaturesParams, ds: Dataset) -> dict[str, Any]:
        return {FEATURE_PARAM: p.feature, **data_params(ds), SEED_PARAM: p.seed, SHIFT_N_PARAM: p.shift_n,
                KINDS_PARAM: p.kinds, **p.resolved()}

    def resources(self, p: ShiftFeaturesParams) -> dict[str, float]:
        f = FEATURES.get(p.feature)
        n = p.shift_n * len(sets(p.kinds))
        return {"num_cpus": 1, **f.hook("resources", {}), "cost": scaled(f.hook("cost", 10.0), n, 70000)}

    def run(self, p: ShiftFeaturesParams, ds: Dataset, inputs: dict, ctx: RunContext) -> dict[str, Any]:
        images, labels, idx = p.sample(ds.name, p.data_dir)
        t0 = time.perf_counter()
        shifted = shifted_sets(images, p.seed, p.kinds)
        transform_seconds = time.perf_counter() - t0
        names = list(shifted)
        x = extract_features(p.feature, np.concatenate([shifted[n] for n in names]), p.resolved(),
                             batch_size=p.batch_size, device=p.device, progress=p.progress)
        seconds = time.perf_counter() - t0 - transform_seconds
        log.info("shift-features %s: %d sets x %d images -> %d-d in %.1fs (run %s)", p.feature, len(names),
                 len(images), x.shape[1], seconds, ctx.run_id)
        feats = dict(zip(names, np.split(x, len(names))))
        return {"feature": p.feature, "label": feature_label(p.feature, p.resolved()),
                "features": feats, "labels": labels, "test_index": idx, "test_split": ds.test_split,
                "images": images[:6], "seconds": {"transform_seconds": transform_seconds, "extract_seconds": seconds,
                            "images_per_second": len(x) / max(seconds, 1e-9)}}

    def log(self, p: ShiftFeaturesParams, ds: Dataset, r: dict[str, Any]) -> dict[str, str]:
        tracking.set_tags({FEATURE_LABEL_TAG: r["label"]})
        tracking.log_metrics({**r["seconds"], "n_images": len(r["labels"]), "n_sets": len(r["features"]),
                              "dim": next(iter(r["features"].values())).shape[1]})
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / FEATURES_ARTIFACT
            sha = cache.save_arrays(path, labels=r["labels"], test_index=r["test_index"],
                                    **{f"x_{n}": x for n, x in r["features"].items()})
            tracking.log_artifact(path)
        fig = examples_figure(r["images"], p.seed, p.kinds)  # once per feature set, not per model
        tracking.log_figure(fig, EXAMPLES_FIGURE)
        close(fig)
        return {FEATURES_ARTIFACT: sha}

    def load(self, info: dict[str, Any], p: ShiftFeaturesParams, ds: Dataset) -> dict[str, Any]:
        with np.load(verify_artifacts(info)[FEATURES_ARTIFACT]) as z:
            feats = {k[2:]: z[k] for k in z.files if k.startswith("x_")}
            labels, idx = z["labels"], z["test_index"]
        return {"feature": p.feature, "label": info["tags"].get(FEATURE_LABEL_TAG, p.feature), "features": feats,
                "labels": labels, "test_index": idx, "test_split": ds.test_split, "seconds": {}}


SHIFT_FEATURES = ShiftFeatures()


@dataclass(frozen=True)
class ShiftParams(ShiftOpts, Common):
    run: str = param("", "A scored (FINISHED classify or finetune) run to measure, instead of a grid.", key=SCORED)
    scored: str = param("", "The scored cell, as JSON {step, params} (the commands fill it).", key=SCORED,
                        cli=False)

    def scored_cell(self) -> tuple[Step, Any]:
        """The classify or finetune cell this shift measures (from ``scored``, or the recorded params of ``run``)."""
        return _scored_cell(self.run, self.scored)

    def key_group(self, name: str, ds: Dataset) -> dict[str, Any]:
        if self.run:
            return {"scored_run": self.run}
        step, q = self.scored_cell()
        return {"scored_key": step.key(q, ds)}


SCORED_STEPS: dict[str, Step] = {CLASSIFY.name: CLASSIFY, FINETUNE.name: FINETUNE}


@lru_cache(maxsize=256)
def _scored_cell(run: str, scored: str) -> tuple[Step, Any]:
    # Cached: a cell's name, label, resources, inputs and key all ask, and a given run's record is read once.
    if run:
        info = tracking.get_run_info(run)
        step = info["tags"].get(STEP_TAG)
        recorded = info["tags"].get(PARAMS_TAG)
        if info["status"] != "FINISHED" or step not in SCORED_STEPS or not recorded:
            raise FmnistError(f"run {run} is not a FINISHED classify or finetune run (it is a "
                              f"{info['status']} {step or 'non-fmnist'} run): shift measures a scored model")
        return SCORED_STEPS[step], SCORED_STEPS[step].Params(**json.loads(recorded))
    if not scored:
        raise FmnistError("shift: name the scored model: a classify or finetune run (--run), or a grid")
    spec = json.loads(scored)
    return SCORED_STEPS[spec["step"]], SCORED_STEPS[spec["step"]].Params(**spec["params"])


def shift_of(step: Step, q: Any, opts: ShiftOpts) -> ShiftParams:
    """The shift cell of a scored cell (its data, subset and seed; ``opts``: the sample and the kinds)."""
    common = {f.name: getattr(q, f.name) for f in fields(Common) if f.name != "force"}
    return ShiftParams(scored=json.dumps({"step": step.name, "params": _jsonable(q)}, sort_keys=True),
                       shift_n=opts.shift_n, kinds=opts.kinds, **common)


def _jsonable(q: Any) -> dict[str, Any]:
    return {f.name: getattr(q, f.name) for f in fields(q)}


class Shift(Step):
    name = "shift"
    Params = ShiftParams
    report_cell = (SCORED_STEP_PARAM, FEATURE_PARAM, MODEL_PARAM, MODE_PARAM, WEIGHTS_PARAM)
    report_columns = (*(param_col(k) for k in (*report_cell, SHIFT_N_PARAM, KINDS_PARAM)),
                      tag_col(FEATURE_LABEL_TAG), tag_col(SCORED_RUN_TAG), *DATA_COLUMNS)

    def code(self, p: ShiftParams) -> str:
        return cache.step_code_version(__name__, "fmnist.steps.base", "fmnist.predictor", *SHIFT_CODE)

    def run_name(self, p: ShiftParams) -> str:
        step, q = p.scored_cell()
        return f"shift-{step.run_name(q)}"

    def label(self, p: ShiftParams) -> str:
        step, q = p.scored_cell()
        return p.run[:8] if p.run else f"{step.name}:{step.label(q)}"

    def run_params(self, p: ShiftParams, ds: Dataset) -> dict[str, Any]:
        step, q = p.scored_cell()
        what = ({FEATURE_PARAM: q.feature, MODEL_PARAM: q.model} if step is CLASSIFY
                else {MODE_PARAM: q.mode, WEIGHTS_PARAM: q.weights})
        return {**what, **data_params(ds), SEED_PARAM: p.seed, SHIFT_N_PARAM: p.shift_n, KINDS_PARAM: p.kinds,
                SCORED_STEP_PARAM: step.name}

    def resources(self, p: ShiftParams) -> dict[str, float]:
        step, _ = p.scored_cell()
        n = p.shift_n * len(sets(p.kinds))
        return {"num_cpus": 1, "cost": 1.0 + (scaled(60.0, n, 60000) if step is FINETUNE else 0.0)}

    def requires(self, p: ShiftParams) -> dict[str, tuple[Step, Any]]:
        step, q = p.scored_cell()
        out: dict[str, tuple[Step, Any]] = {} if p.run else {SCORED: (step, q)}
        if step is CLASSIFY:
            out["features"] = (SHIFT_FEATURES, shift_features_of(q, p))
        return out

    def run(self, p: ShiftParams, ds: Dataset, inputs: dict[str, Outcome], ctx: RunContext) -> dict[str, Any]:
        step, q = p.scored_cell()
        run_id = p.run or inputs[SCORED].run_id
        t0 = time.perf_counter()
        predictor = tracking.load_predictor(tracking.run_model_uri(run_id))  # its data files; no code copy runs
        if step is CLASSIFY:  # the fitted pipeline on the shared cell's features
            shifted = inputs["features"].result
            labels, idx = shifted["labels"], shifted["test_index"]
            images = (shifted_sets(p.sample(ds.name, p.data_dir)[0], p.seed, p.kinds) if predictor.pixels
                      else dict.fromkeys(shifted["features"]))  # a model that reads the pixels: the same images'
            predicted = {n: np.asarray(predictor.classifier.predict(predictor.classifier_input(images[n], x)), np.int64)
                         for n, x in shifted["features"].items()}
        else:
            images, labels, idx = p.sample(ds.name, p.data_dir)
            predicted = {n: predictor.predict_arrays(x)[0] for n, x in shifted_sets(images, p.seed, p.kinds).items()}
        rows = accuracy_rows(predicted, labels, p.kinds)
        log.info("shift %s: %.4f as is, %.4f on average under shift (%d images, run %s)", self.run_name(p),
                 rows[0]["accuracy"], shift_metrics(rows)["shift/mean"], len(labels), ctx.run_id)
        label = tracking.get_run_info(run_id)["tags"].get(FEATURE_LABEL_TAG, "")
        return {"scored_run": run_id, "label": label, "rows": rows, "predicted": predicted, "labels": labels,
                "test_index": idx,
                "seconds": time.perf_counter() - t0, "title": self.run_name(p).removeprefix("shift-")}

    def log(self, p: ShiftParams, ds: Dataset, r: dict[str, Any]) -> dict[str, str]:
        import pandas as pd

        tracking.set_tags({SCORED_RUN_TAG: r["scored_run"], **({FEATURE_LABEL_TAG: r["label"]} if r["label"] else {})})
        tracking.log_metrics({**shift_metrics(r["rows"]), "shift_seconds": r["seconds"]})
        shas = {}
        with tempfile.TemporaryDirectory() as d:
            table = Path(d) / TABLE_ARTIFACT
            pd.DataFrame(r["rows"]).to_csv(table, index=False)
            preds = Path(d) / PREDICTIONS_ARTIFACT
            shas[PREDICTIONS_ARTIFACT] = cache.save_arrays(preds, label=r["labels"], test_index=r["test_index"],
                                                           **{f"p_{n}": v for n, v in r["predicted"].items()})
            shas[TABLE_ARTIFACT] = cache.file_sha256(table)
            tracking.log_artifact(table)
            tracking.log_artifact(preds)
        fig = curve_figure(r["rows"], f"{r['title']}: accuracy under shift ({len(r['labels'])} test images)")
        tracking.log_figure(fig, "shift.png")
        close(fig)
        return shas

    def load(self, info: dict[str, Any], p: ShiftParams, ds: Dataset) -> dict[str, Any]:
        import pandas as pd

        paths = verify_artifacts(info)
        return {"scored_run": info["tags"].get(SCORED_RUN_TAG, ""),
                "rows": pd.read_csv(paths[TABLE_ARTIFACT]).to_dict("records"), "metrics": info["metrics"]}


SHIFT = Shift()
