"""2-D views as tracked runs: one ``visualize`` run per (feature, method), a grid on the parent of several."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from .. import cache, tracking
from ..data import Dataset, load_dataset, stratified_indices
from ..embeddings import EMBEDDINGS, embed, method_params
from ..embeddings.figures import embedding_figure, grid_figure, metrics_line
from ..errors import ParamError
from ..features import FEATURES, RUNTIME_DEFAULTS
from ..plots import close
from ..separation import SETTINGS, separation_metrics
from .extract import FeatureSet, get_features

log = logging.getLogger("fmnist")

DEFAULT_N_SAMPLES = 5000


def sample_indices(y: np.ndarray, n_samples: int | None, n_classes: int, seed: int, where: str = "test split") -> np.ndarray:
    """A stratified sample of ``n_samples`` indices into ``y`` (None = all), with clear errors."""
    available = len(y)
    n = available if n_samples is None else int(n_samples)
    if n > available:
        raise ParamError(f"n_samples={n} is more than the {available} images in the {where}; "
                         f"use n_samples <= {available} (or all)")
    if n < 2 * n_classes:
        raise ParamError(f"n_samples={n} is too small: need at least {2 * n_classes} "
                         f"(two per class, since k-NN accuracy is measured on held-out points)")
    return stratified_indices(y, n, seed)


def visualize_key(*, feature: str, params: dict[str, Any], method: str, method_params: dict[str, Any],
                  n_samples: int, seed: int, ds: Dataset) -> str:
    """Cache key of one FINISHED view: its params, the data and the code that computes it."""
    code = cache.step_code_version(__name__, "fmnist.embeddings", EMBEDDINGS.get(method).fn.__module__,
                                   FEATURES.get(feature).fn.__module__)
    return cache.cache_key("visualize", {"feature": feature, **params, "method": method, **method_params,
                                         "n_samples": n_samples, "seed": seed}, ds.digest, code)


def embed_and_measure(x: np.ndarray, y: np.ndarray, method: str, *, seed: int,
                      params: dict[str, Any]) -> tuple[np.ndarray, dict[str, float]]:
    """Coordinates and metrics (knn_accuracy, trustworthiness, silhouette, embed_seconds, metrics_seconds)."""
    t0 = time.perf_counter()
    coords = embed(method, x, seed=seed, params=params)
    t1 = time.perf_counter()
    metrics = separation_metrics(x, coords, y, seed=seed)
    metrics.update(embed_seconds=t1 - t0, metrics_seconds=time.perf_counter() - t1)
    return coords, metrics


def _cell(fs: FeatureSet, method: str, params: dict[str, Any], idx: np.ndarray, *, seed: int, ds: Dataset) -> dict:
    """Embed one feature set's sample with one method and log it to the active run."""
    import pandas as pd

    x, y = fs.x_test[idx], fs.y_test[idx]
    log.info("visualize %s/%s: %d points x %d-d ...", fs.feature, method, len(x), x.shape[1])
    tracking.log_params({"feature": fs.feature, "method": method, "n_samples": len(idx), "seed": seed,
                         "dataset": ds.name, "subset": ds.subset or "all", **fs.params,
                         "pca_dims": "none", **params, **SETTINGS})
    tracking.set_tags({"fmnist.feature_label": fs.label, "fmnist.extract_run_id": fs.run_id or "",
                       "fmnist.method": method})
    coords, metrics = embed_and_measure(x, y, method, seed=seed, params=params)
    tracking.log_metrics(metrics)
    classes = list(fs.classes)
    table = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "label": y,
                          "class": [classes[k] for k in y], "test_index": idx})
    tracking.log_table(table, "embedding.csv")
    fig = embedding_figure(coords, y, classes, feature_label=fs.label, method=method, metrics=metrics)
    tracking.log_figure(fig, "embedding.png")
    close(fig)
    log.info("visualize %s/%s: embedded in %.1fs; %s", fs.feature, method, metrics["embed_seconds"],
             metrics_line(metrics))
    return {"feature": fs.feature, "feature_label": fs.label, "method": method, "coords": coords, "labels": y,
            "metrics": metrics, "run_id": tracking.active_run_id()}


def visualize(
    *,
    features: list[str],
    methods: list[str],
    n_samples: int | None = DEFAULT_N_SAMPLES,
    seed: int = 0,
    method_given: dict[str, Any] | None = None,
    dataset: str = "fashion-mnist",
    data_dir: str | None = None,
    subset: int | None = None,
    feature_given: dict[str, Any] | None = None,
    batch_size: int = RUNTIME_DEFAULTS["batch_size"],
    device: str = RUNTIME_DEFAULTS["device"],
    progress: bool = True,
    ds: Dataset | None = None,
) -> list[dict]:
    """Embed a stratified test sample of each feature set with each method; one run per pair.

    Several pairs: a parent run (step ``visualize-group``) holds ``embedding_grid.png`` and
    ``separation.csv``; each pair is a child run (step ``visualize``).
    """
    for f in features:
        FEATURES.get(f)
    for m in methods:
        EMBEDDINGS.get(m)
    ds = ds or load_dataset(dataset, data_dir=data_dir, subset=subset, seed=seed)
    where = "test split" + (f" of subset={ds.subset}" if ds.subset else "")
    idx = sample_indices(ds.y_test, n_samples, len(ds.classes), seed, where)
    # Checked (and neighbourhoods capped to the sample) before any run opens.
    params = {m: method_params(m, method_given, n_samples=len(idx)) for m in methods}
    feat_kw = dict(dataset=ds.name, seed=seed, params=feature_given, batch_size=batch_size, device=device,
                   progress=progress, ds=ds)

    if len(features) == 1 and len(methods) == 1:
        f, m = features[0], methods[0]
        with tracking.run(f"visualize-{f}-{m}", step="visualize"):
            fs = get_features(feature=f, **feat_kw)
            return [_cell(fs, m, params[m], idx, seed=seed, ds=ds)]

    t0 = time.perf_counter()
    with tracking.run("visualize-" + "+".join(features) + "-" + "+".join(methods), step="visualize-group"):
        tracking.log_params({"feature": ",".join(features), "method": ",".join(methods), "n_samples": len(idx),
                             "seed": seed, "dataset": ds.name, "subset": ds.subset or "all"})
        cells = []
        for f in features:
            fs = get_features(feature=f, **feat_kw)
            for m in methods:
                with tracking.run(f"visualize-{f}-{m}", step="visualize"):
                    cells.append(_cell(fs, m, params[m], idx, seed=seed, ds=ds))
        import pandas as pd

        summary = pd.DataFrame([{"feature": c["feature"], "feature_label": c["feature_label"], "method": c["method"],
                                 **c["metrics"], "run_id": c["run_id"]} for c in cells])
        tracking.log_table(summary, "separation.csv")
        fig = grid_figure(cells, features, methods, list(ds.classes),
                          title=f"{ds.name}: test sample n={len(idx)}, seed={seed} (bold: best k-NN accuracy of the row)")
        tracking.log_figure(fig, "embedding_grid.png")
        close(fig)
        log.info("visualize: %d views in %.1fs; best k-NN accuracy per feature: %s", len(cells),
                 time.perf_counter() - t0, "; ".join(_best(cells, f) for f in features))
    return cells


def _best(cells: list[dict], feature: str) -> str:
    row = [c for c in cells if c["feature"] == feature]
    b = max(row, key=lambda c: c["metrics"]["knn_accuracy"])
    return f"{b['feature_label']} -> {b['method']} ({b['metrics']['knn_accuracy']:.3f})"
