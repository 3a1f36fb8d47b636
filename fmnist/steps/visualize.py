"""2-D views as a step: one ``visualize`` run per (feature, method); a grid is a graph (extract cells and the
views, siblings under one parent holding the grid figure)."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import cache, tracking
from ..data import Dataset, stratified_indices
from ..embeddings import EMBEDDINGS, embed, method_params
from ..embeddings.figures import embedding_figure, metrics_line
from ..embeddings.page import VIEW_PAGE, view_page
from ..errors import ParamError
from ..features import FEATURES
from ..plots import close
from ..separation import SETTINGS, separation_metrics
from .base import DATA_COLUMNS, RunContext, Step, data_params, scaled, verify_artifacts
from .extract import EXTRACT, ExtractParams, extract_params_of
from .params import COUNT, Common, FeatureOpts, param, registry_defaults
from ..tags import (EXTRACT_RUN_TAG, FEATURE_LABEL_TAG, FEATURE_PARAM, METHOD_PARAM, METHOD_TAG, N_SAMPLES_PARAM,
                    SEED_PARAM, param_col, tag_col)

log = logging.getLogger("fmnist")

DEFAULT_N_SAMPLES = 5000


METHOD_DEFAULTS = registry_defaults(EMBEDDINGS)  # the defaults live in the embedding registry
METHOD = "method"  # key group: the sample size and the chosen method's own params


@dataclass(frozen=True)
class VisualizeParams(FeatureOpts, Common):
    feature: str = param("all", f"all, or a comma list of: {', '.join(FEATURES.names())}.")
    method: str = param("all", f"all, or a comma list of: {', '.join(EMBEDDINGS.names())}.")
    n_samples: int | None = param(DEFAULT_N_SAMPLES, "Stratified sample of the test split to embed (seeded by "
                                                     "--seed); 'all' for the whole split.", type=COUNT, key=METHOD)
    perplexity: float = param(METHOD_DEFAULTS["perplexity"], "t-SNE perplexity.", key=METHOD)
    n_neighbors: int = param(METHOD_DEFAULTS["n_neighbors"], "UMAP n_neighbors.", key=METHOD)
    min_dist: float = param(METHOD_DEFAULTS["min_dist"], "UMAP min_dist.", key=METHOD)
    lle_neighbors: int = param(METHOD_DEFAULTS["lle_neighbors"], "LLE n_neighbors.", key=METHOD)
    pca_dims: int = param(METHOD_DEFAULTS["pca_dims"], "PCA to this many dimensions before t-SNE/UMAP/LLE (0 = off).",
                          key=METHOD)

    def extract_params(self) -> ExtractParams:
        return extract_params_of(self)

    def method_params(self, n: int) -> dict[str, Any]:
        return method_params(self.method, {k: getattr(self, k) for k in METHOD_DEFAULTS}, n_samples=n)

    def key_group(self, name: str, ds: Dataset) -> dict[str, Any]:
        """The method group: the sample size drawn and the chosen method's own params for it."""
        if name != METHOD:
            return super().key_group(name, ds)
        n = len(_sample(self, ds))
        return {**self.method_params(n), N_SAMPLES_PARAM: n}


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


def _sample(p: VisualizeParams, ds: Dataset) -> np.ndarray:
    where = "test split" + (f" of subset={ds.subset}" if ds.subset else "")
    return sample_indices(ds.y_test, p.n_samples, len(ds.classes), p.seed, where)


def embed_and_measure(x: np.ndarray, y: np.ndarray, method: str, *, seed: int,
                      params: dict[str, Any]) -> tuple[np.ndarray, dict[str, float]]:
    """Coordinates and metrics (knn_accuracy, trustworthiness, silhouette, embed_seconds, metrics_seconds)."""
    t0 = time.perf_counter()
    coords = embed(method, x, seed=seed, params=params)
    t1 = time.perf_counter()
    metrics = separation_metrics(x, coords, y, seed=seed)
    metrics.update(embed_seconds=t1 - t0, metrics_seconds=time.perf_counter() - t1)
    return coords, metrics


class Visualize(Step):
    name = "visualize"
    Params = VisualizeParams
    report_cell = (FEATURE_PARAM, METHOD_PARAM)  # a feature is shown by its label (FEATURE_LABEL_TAG)
    report_columns = (*(param_col(k) for k in (FEATURE_PARAM, METHOD_PARAM, N_SAMPLES_PARAM)),
                      tag_col(FEATURE_LABEL_TAG), *DATA_COLUMNS)

    def code(self, p: VisualizeParams) -> str:
        return cache.step_code_version(__name__, "fmnist.steps.base", "fmnist.embeddings", "fmnist.separation",
                                       EMBEDDINGS.get(p.method).fn.__module__, FEATURES.get(p.feature).fn.__module__)

    def run_name(self, p: VisualizeParams) -> str:
        return f"visualize-{p.feature}-{p.method}"

    def resources(self, p: VisualizeParams) -> dict[str, float]:
        return {"num_cpus": 1, "cost": scaled(EMBEDDINGS.get(p.method).hook("cost", 20.0), p.n_samples, 5000)}

    def run_params(self, p: VisualizeParams, ds: Dataset) -> dict[str, Any]:
        n = len(_sample(p, ds))
        return {FEATURE_PARAM: p.feature, METHOD_PARAM: p.method, N_SAMPLES_PARAM: n, SEED_PARAM: p.seed,
                **data_params(ds), **p.extract_params().resolved(), "pca_dims": "none",
                **p.method_params(n), **SETTINGS}

    def label(self, p: VisualizeParams) -> str:
        return f"{p.feature}/{p.method}"

    def requires(self, p: VisualizeParams) -> dict[str, tuple[Step, Any]]:
        return {"features": (EXTRACT, p.extract_params())}

    def run(self, p: VisualizeParams, ds: Dataset, inputs: dict, ctx: RunContext) -> dict:
        fs, idx = inputs["features"].result, _sample(p, ds)
        x, y = fs.x_test[idx], fs.y_test[idx]
        log.info("visualize %s/%s: %d points x %d-d ...", fs.feature, p.method, len(x), x.shape[1])
        coords, metrics = embed_and_measure(x, y, p.method, seed=p.seed, params=p.method_params(len(idx)))
        log.info("visualize %s/%s: embedded in %.1fs; %s", fs.feature, p.method, metrics["embed_seconds"],
                 metrics_line(metrics))
        return {"feature": fs.feature, "feature_label": fs.label, "method": p.method, "coords": coords,
                "labels": y, "test_index": idx, "metrics": metrics, "run_id": ctx.run_id,
                "extract_run_id": fs.run_id, "classes": list(fs.classes),
                "images": ds.x_test[idx], "split_index": ds.test_index[idx]}

    def log(self, p: VisualizeParams, ds: Dataset, c: dict) -> dict[str, str]:
        import pandas as pd

        tracking.set_tags({FEATURE_LABEL_TAG: c["feature_label"], EXTRACT_RUN_TAG: c["extract_run_id"] or "",
                           METHOD_TAG: p.method})
        tracking.log_metrics(c["metrics"])
        classes, y = c["classes"], c["labels"]
        table = pd.DataFrame({"x": c["coords"][:, 0], "y": c["coords"][:, 1], "label": y,
                              "class": [classes[k] for k in y], "test_index": c["test_index"]})
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "embedding.csv"
            table.to_csv(path, index=False)
            sha = cache.file_sha256(path)
            tracking.log_artifact(path)
        fig = embedding_figure(c["coords"], y, classes, feature_label=c["feature_label"], method=p.method,
                               metrics=c["metrics"])
        tracking.log_figure(fig, "embedding.png")
        close(fig)
        # The page shows what embedding.csv holds; its HTML carries Bokeh's generated ids, so it has no checksum
        # for reruns to compare, and its module is not in the key: a new look never recomputes a view.
        title = f"{c['feature_label']} / {p.method}: {len(y):,} test images (hover a point)"
        with tempfile.TemporaryDirectory() as d:
            page = Path(d) / VIEW_PAGE
            page.write_text(view_page(c["coords"], y, classes, c["split_index"], c["images"], title),
                            encoding="utf-8")
            tracking.log_artifact(page)
        return {"embedding.csv": sha}

    def load(self, info: dict[str, Any], p: VisualizeParams, ds: Dataset) -> dict:
        import pandas as pd

        df = pd.read_csv(verify_artifacts(info)["embedding.csv"])
        return {"feature": p.feature, "feature_label": info["tags"].get(FEATURE_LABEL_TAG, p.feature),
                "method": p.method, "coords": df[["x", "y"]].to_numpy(np.float32), "labels": df["label"].to_numpy(),
                "test_index": df["test_index"].to_numpy(), "metrics": info["metrics"], "run_id": info["run_id"],
                "extract_run_id": info["tags"].get(EXTRACT_RUN_TAG), "classes": list(ds.classes)}


VISUALIZE = Visualize()


