"""Feature extraction as a step: ``features.npz`` (x/y train/test) per (feature, params, data)."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, cache, tracking
from ..data import Dataset
from ..errors import CacheError
from ..features import FEATURES, extract_features, feature_label, feature_params, feature_run_params
from .base import ARTIFACTS_TAG, Placement, RunContext, Step, data_params, get_or_run, scaled
from .params import DATA, FEATURE_DEFAULTS, Common, FeatureOpts, param, rekeyed
from ..tags import CACHE_HIT_TAG, DATA_DIGEST_TAG, FEATURE_LABEL_TAG, FEATURE_PARAM, FEATURE_TAG, SEED_PARAM

log = logging.getLogger("fmnist")

ARTIFACT = "features.npz"


@dataclass(frozen=True)
class ExtractParams(FeatureOpts, Common):
    feature: str = param("all", f"all, or a comma list of: {', '.join(FEATURES.names())}.")
    # features do not depend on the seed, only on the images its subset draw picks (the data digest): the seeds of
    # a study on the full data share one extraction
    seed: int = rekeyed(Common, "seed", DATA)

    def resolved(self) -> dict[str, Any]:
        """This feature's own params, validated ('auto' weights resolved)."""
        return feature_params(self.feature, self.given_feature_params())


def extract_params_of(p: Any) -> ExtractParams:
    """The extract cell a classify or visualize cell reads (``force`` stays with the step that asked)."""
    names = {f.name for f in fields(ExtractParams)}
    return ExtractParams(**{k: getattr(p, k) for k in names if k != "force" and hasattr(p, k)})


@dataclass
class FeatureSet:
    feature: str
    params: dict[str, Any]  # the feature's resolved params (cache-key part)
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    dataset: str
    data_digest: str
    run_id: str | None = None  # the extract run holding the artifact
    cached: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def label(self) -> str:
        return feature_label(self.feature, self.params)


def extract_code(feature: str) -> str:
    # The feature's module plus what every feature shares (input scaling in the package, torch batching).
    return cache.step_code_version(FEATURES.get(feature).fn.__module__, "fmnist.features", "fmnist.features._torch")


class Extract(Step):
    name = "extract"
    Params = ExtractParams
    memoise = True  # a grid's classify and visualize cells read one feature set: loaded once per process

    def code(self, p: ExtractParams) -> str:
        return extract_code(p.feature)

    def run_name(self, p: ExtractParams) -> str:
        return f"extract-{p.feature}"

    def label(self, p: ExtractParams) -> str:
        return p.feature

    def run_params(self, p: ExtractParams, ds: Dataset) -> dict[str, Any]:
        res = p.resolved()
        return {FEATURE_PARAM: p.feature, **data_params(ds), SEED_PARAM: ds.seed,
                "batch_size": p.batch_size, "device": p.device, "data_digest": ds.digest,
                "fmnist_version": __version__, **res, **feature_run_params(p.feature, res)}

    def resources(self, p: ExtractParams) -> dict[str, float]:
        f = FEATURES.get(p.feature)  # declared beside the feature
        return {"num_cpus": 1, **f.hook("resources", {}), "cost": scaled(f.hook("cost", 10.0), p.subset, 60000)}

    def run(self, p: ExtractParams, ds: Dataset, inputs: dict, ctx: RunContext) -> FeatureSet:
        res = p.resolved()
        t0 = time.perf_counter()
        kw = dict(batch_size=p.batch_size, device=p.device, progress=p.progress)
        x_train = extract_features(p.feature, ds.x_train, res, **kw)
        x_test = extract_features(p.feature, ds.x_test, res, **kw)
        seconds = time.perf_counter() - t0
        n = len(ds.x_train) + len(ds.x_test)
        log.info("extract %s: %d images -> %d-d in %.1fs (run %s)", p.feature, n, x_train.shape[1], seconds,
                 ctx.run_id)
        return FeatureSet(p.feature, res, x_train, ds.y_train, x_test, ds.y_test, ds.classes, ds.name, ds.digest,
                          ctx.run_id, info={"seconds": seconds})

    def log(self, p: ExtractParams, ds: Dataset, fs: FeatureSet) -> dict[str, str]:
        tracking.set_tags({FEATURE_TAG: p.feature, FEATURE_LABEL_TAG: fs.label,
                           CACHE_HIT_TAG: "false"})
        for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
            tracking.log_numpy_input(x, y, name=f"{ds.name}-{split}", digest=ds.digest, source=ds.source,
                                     context="training" if split == "train" else "testing")
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / ARTIFACT
            sha = cache.save_arrays(path, x_train=fs.x_train, y_train=ds.y_train, x_test=fs.x_test,
                                    y_test=ds.y_test)
            tracking.log_artifact(path)
        n, seconds = len(fs.x_train) + len(fs.x_test), fs.info["seconds"]
        tracking.log_metrics({"n_train": len(fs.x_train), "n_test": len(fs.x_test), "dim": fs.dim,
                              "extract_seconds": seconds, "images_per_second": n / max(seconds, 1e-9)})
        tracking.set_tags({tracking.ARTIFACT_SHA_TAG: sha})
        return {ARTIFACT: sha}

    def load(self, info: dict[str, Any], p: ExtractParams, ds: Dataset) -> FeatureSet:
        return load_feature_run(info, ds, p.feature)


EXTRACT = Extract()


def load_feature_run(run: str | dict[str, Any], ds: Dataset, feature: str | None = None) -> FeatureSet:
    """Load a FINISHED extract run's artifact (``run``: its id, or its info as already read), refusing it unless it
    matches ``ds`` exactly."""
    info = tracking.get_run_info(run) if isinstance(run, str) else run
    run_id, tags, params = info["run_id"], info["tags"], info["params"]
    if info["status"] != "FINISHED":
        raise CacheError(f"extract run {run_id} is {info['status']}, not FINISHED; refusing to read its artifact")
    if feature is not None and params.get(FEATURE_PARAM) != feature:
        raise CacheError(f"extract run {run_id} holds feature {params.get(FEATURE_PARAM)!r}, not {feature!r}")
    if tags.get(DATA_DIGEST_TAG) != ds.digest:
        raise CacheError(
            f"extract run {run_id} was computed on other data (digest {tags.get(DATA_DIGEST_TAG, '?')[:12]}, "
            f"this dataset {ds.digest[:12]}); refusing it"
        )
    path = tracking.artifact_local_path(run_id, ARTIFACT, artifact_uri=info["artifact_uri"])
    arrays = cache.load_arrays(path, sha256=tags.get(tracking.ARTIFACT_SHA_TAG) or None)
    _check_arrays(arrays, ds, run_id)
    name = params.get(FEATURE_PARAM, feature or "?")
    p = {k: _parse(v) for k, v in params.items() if k in FEATURES.get(name).params or k == "weights_sha256"}
    return FeatureSet(name, p, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                      ds.classes, ds.name, ds.digest, run_id, cached=True, info=info)


def _check_arrays(arrays: dict[str, np.ndarray], ds: Dataset, run_id: str) -> None:
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        fx, fy = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
        if fx is None or fy is None or fx.ndim != 2 or len(fx) != len(x) or not np.array_equal(fy, y):
            shape = None if fx is None else fx.shape
            raise CacheError(
                f"extract run {run_id}: {split} features {shape} do not match the dataset "
                f"({len(x)} images with these labels); refusing it"
            )


def _parse(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        return v


def get_features(*, feature: str, ds: Dataset | None = None, params: dict[str, Any] | None = None,
                 parent_run_id: str | None = None, **common: Any) -> FeatureSet:
    """Features from the matching FINISHED extract run, else computed and logged as an extract run.

    ``params``: feature params (J, L, weights ...); ``common``: other ``ExtractParams`` fields.
    """
    FEATURES.get(feature)
    given = {k: v for k, v in (params or {}).items() if k in FEATURE_DEFAULTS}
    p = replace(ExtractParams(**common), feature=feature, **given)
    return get_or_run(EXTRACT, p, ds, placement=Placement(parent=parent_run_id)).result


__all__ = ["ARTIFACT", "ARTIFACTS_TAG", "EXTRACT", "ExtractParams", "FeatureSet", "extract_params_of",
           "get_features", "load_feature_run"]
