"""Feature extraction as a tracked, cached step. ``get_features`` is the lookup every step uses."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, cache, tracking
from ..data import Dataset, load_dataset
from ..errors import CacheError
from ..features import FEATURES, RUNTIME_DEFAULTS, extract_features, feature_params

log = logging.getLogger("fmnist")

ARTIFACT = "features.npz"


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
        """Feature name, marked when ResNet features come from a random (not ImageNet) network."""
        if self.feature == "resnet18" and self.params.get("weights") == "none":
            return "resnet18 (random init)"
        return self.feature


def extract_key(feature: str, params: dict[str, Any], data_digest: str) -> str:
    # The feature's module plus what every feature shares (input scaling in the package, torch batching).
    code = cache.step_code_version(FEATURES.get(feature).fn.__module__, "fmnist.features", "fmnist.features._torch")
    return cache.cache_key("extract", {"feature": feature, **params}, data_digest, code)


def load_feature_run(run_id: str, ds: Dataset, feature: str | None = None) -> FeatureSet:
    """Load a FINISHED extract run's artifact, refusing it unless it matches ``ds`` exactly."""
    info = tracking.get_run_info(run_id)
    tags, params = info["tags"], info["params"]
    if info["status"] != "FINISHED":
        raise CacheError(f"extract run {run_id} is {info['status']}, not FINISHED; refusing to read its artifact")
    if feature is not None and params.get("feature") != feature:
        raise CacheError(f"extract run {run_id} holds feature {params.get('feature')!r}, not {feature!r}")
    if tags.get("fmnist.data_digest") != ds.digest:
        raise CacheError(
            f"extract run {run_id} was computed on other data (digest {tags.get('fmnist.data_digest', '?')[:12]}, "
            f"this dataset {ds.digest[:12]}); refusing it"
        )
    path = tracking.artifact_local_path(run_id, ARTIFACT)
    arrays = cache.load_arrays(path, sha256=tags.get(tracking.ARTIFACT_SHA_TAG) or None)
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        fx, fy = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
        if fx is None or fy is None or fx.ndim != 2 or len(fx) != len(x) or not np.array_equal(fy, y):
            shape = None if fx is None else fx.shape
            raise CacheError(
                f"extract run {run_id}: {split} features {shape} do not match the dataset "
                f"({len(x)} images with these labels); refusing it"
            )
    name = params.get("feature", feature or "?")
    p = {k: _parse(v) for k, v in params.items() if k in FEATURES.get(name).params or k == "weights_sha256"}
    return FeatureSet(name, p, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                      ds.classes, ds.name, ds.digest, run_id, cached=True, info=info)


def _parse(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        return v


def get_features(
    *,
    feature: str,
    dataset: str = "fashion-mnist",
    data_dir: str | None = None,
    subset: int | None = None,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    batch_size: int = RUNTIME_DEFAULTS["batch_size"],
    device: str = RUNTIME_DEFAULTS["device"],
    progress: bool = True,
    into_active_run: bool = False,
    ds: Dataset | None = None,
) -> FeatureSet:
    """Features from the matching FINISHED extract run, else computed and logged as an extract run.

    ``into_active_run``: the active run *is* the extract run (the ``extract`` entry point); otherwise
    a new extract run is opened (a child of the active run, if any).
    """
    FEATURES.get(feature)
    ds = ds or load_dataset(dataset, data_dir=data_dir, subset=subset, seed=seed)
    p = feature_params(feature, params)
    key = extract_key(feature, p, ds.digest)
    hit = tracking.find_cached_run(key)
    if hit:
        try:
            fs = load_feature_run(hit, ds, feature)
        except CacheError as e:
            log.warning("ignoring cached extract run: %s; recomputing", e)
        else:
            log.info("extract %s: cache hit, reusing FINISHED run %s", feature, hit)
            if into_active_run:
                tracking.log_params(_run_params(feature, fs.params, ds, batch_size, device))
                tracking.set_tags({"fmnist.reused_run_id": hit, "fmnist.cache_hit": "true"})
                tracking.log_metrics({"n_train": len(fs.x_train), "n_test": len(fs.x_test), "dim": fs.dim})
            return fs
    if into_active_run:
        return _compute_and_log(feature, p, ds, key, batch_size, device, progress)
    with tracking.run(f"extract-{feature}", step="extract"):
        return _compute_and_log(feature, p, ds, key, batch_size, device, progress)


def _run_params(feature: str, p: dict[str, Any], ds: Dataset, batch_size: int, device: str) -> dict[str, Any]:
    out = {"feature": feature, "dataset": ds.name, "subset": ds.subset or "all", "seed": ds.seed,
           "batch_size": batch_size, "device": device, "data_digest": ds.digest, "fmnist_version": __version__,
           **p}
    if feature == "resnet18":
        from ..features.resnet18 import weights_label

        out["weights_used"] = weights_label(p)
    return out


def _compute_and_log(feature: str, p: dict[str, Any], ds: Dataset, key: str, batch_size: int,
                     device: str, progress: bool) -> FeatureSet:
    run_id = tracking.active_run_id()
    tracking.log_params(_run_params(feature, p, ds, batch_size, device))
    tracking.set_tags({"fmnist.data_digest": ds.digest, "fmnist.feature": feature, "fmnist.cache_hit": "false",
                       "fmnist.data_source": ds.source})
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        tracking.log_numpy_input(x, y, name=f"{ds.name}-{split}", digest=ds.digest, source=ds.source,
                                 context="training" if split == "train" else "testing")
    t0 = time.perf_counter()
    kw = dict(batch_size=batch_size, device=device, progress=progress)
    x_train = extract_features(feature, ds.x_train, p, **kw)
    x_test = extract_features(feature, ds.x_test, p, **kw)
    seconds = time.perf_counter() - t0
    n = len(ds.x_train) + len(ds.x_test)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ARTIFACT
        sha = cache.save_arrays(path, x_train=x_train, y_train=ds.y_train, x_test=x_test, y_test=ds.y_test)
        tracking.log_artifact(path)
    tracking.log_metrics({"n_train": len(x_train), "n_test": len(x_test), "dim": x_train.shape[1],
                          "extract_seconds": seconds, "images_per_second": n / max(seconds, 1e-9)})
    # The key goes on last: a run killed before this point can never be found by the cache.
    tracking.set_tags({tracking.ARTIFACT_SHA_TAG: sha, tracking.CACHE_KEY_TAG: key})
    log.info("extract %s: %d images -> %d-d in %.1fs (run %s)", feature, n, x_train.shape[1], seconds, run_id)
    return FeatureSet(feature, p, x_train, ds.y_train, x_test, ds.y_test, ds.classes, ds.name, ds.digest,
                      run_id, cached=False)
