"""The visualize step against a temporary store: runs, params, metrics, artifacts, grid, bad input."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from fmnist import tracking
from fmnist.errors import ChoiceError, ParamError
from fmnist.commands import visualize
from fmnist.steps.visualize import sample_indices

SCAT = {"J": 1, "L": 2, "max_order": 1}  # a small scattering so the test stays fast


def _runs(step=None):
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return [r for r in runs if step is None or r.data.tags.get("fmnist.step") == step]


def _artifacts(run_id):
    return sorted(f.path for f in mlflow.MlflowClient().list_artifacts(run_id))


def test_one_feature_one_method(store, tiny):
    (cell,) = visualize(features=["raw"], methods=["tsne"], n_samples=60, seed=3, ds=tiny, progress=False,
                        method_given={"perplexity": 10.0, "pca_dims": 20})
    (r,) = _runs("visualize")
    assert r.info.status == "FINISHED" and r.info.run_id == cell["run_id"]
    p = r.data.params
    assert (p["feature"], p["method"], p["n_samples"], p["seed"]) == ("raw", "tsne", "60", "3")
    assert (p["perplexity"], p["pca_dims"], p["dataset"], p["knn_k"]) == ("10.0", "20", "synthetic", "5")
    m = r.data.metrics
    assert 0 <= m["knn_accuracy"] <= 1 and 0 <= m["trustworthiness"] <= 1 and -1 <= m["silhouette"] <= 1
    assert m["embed_seconds"] > 0
    (ex,) = _runs("extract")  # computed on the miss, first, beside this run (one target: no parent), not in it
    assert r.data.tags["fmnist.extract_run_id"] == ex.info.run_id
    assert "mlflow.parentRunId" not in ex.data.tags and "mlflow.parentRunId" not in r.data.tags
    assert _runs("visualize-group") == []
    assert r.data.tags["fmnist.feature_label"] == "raw"
    assert _artifacts(r.info.run_id) == ["embedding.csv", "embedding.png", "view.html"]
    df = pd.read_csv(tracking.artifact_local_path(r.info.run_id, "embedding.csv"))
    assert list(df.columns[:4]) == ["x", "y", "label", "class"] and len(df) == 60
    assert np.bincount(df["label"]).tolist() == [6] * 10
    assert (df["class"] == [tiny.classes[k] for k in df["label"]]).all()
    np.testing.assert_array_equal(df["label"], tiny.y_test[df["test_index"]])
    np.testing.assert_allclose(df[["x", "y"]].to_numpy(), cell["coords"], rtol=1e-6)
    png = tracking.artifact_local_path(r.info.run_id, "embedding.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 10_000
    # the page: every class in the legend, the images in one sheet, each point's index in the test split
    page = tracking.artifact_local_path(r.info.run_id, "view.html").read_text()
    assert all(f"{k} {name}" in page for k, name in enumerate(tiny.classes)) and page.count("data:image/webp") == 1
    assert "raw / tsne: 60 test images" in page


def test_grid_parent_and_children_reuse_cache(store, tiny):
    first = visualize(features=["raw"], methods=["pca"], n_samples=50, ds=tiny, progress=False)
    cells = visualize(features=["raw", "scatnet"], methods=["pca", "umap"], n_samples=50, ds=tiny,
                      progress=False, feature_given=SCAT)
    assert len(cells) == 4
    (parent,) = _runs("visualize-group")
    assert parent.info.status == "FINISHED"
    assert _artifacts(parent.info.run_id) == ["embedding_grid.png", "separation.csv", "steps.csv"]
    assert parent.data.params["feature"] == "raw,scatnet" and parent.data.params["n_samples"] == "50"
    children = [r for r in _runs("visualize") if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    # raw/pca is the first call's run, reused from the cache; the three others ran under the parent
    assert cells[0]["run_id"] == first[0]["run_id"], (cells[0]["method"], cells[0]["feature"], [c["run_id"] for c in cells])
    children.append(mlflow.get_run(first[0]["run_id"]))
    assert sorted((r.data.params["feature"], r.data.params["method"]) for r in children) == [
        ("raw", "pca"), ("raw", "umap"), ("scatnet", "pca"), ("scatnet", "umap")]
    assert all(r.info.status == "FINISHED" and "knn_accuracy" in r.data.metrics for r in children)
    by = {(r.data.params["feature"], r.data.params["method"]): r for r in children}
    assert by[("raw", "pca")].data.params["pca_dims"] == "none"
    assert by[("scatnet", "umap")].data.params["J"] == "1"
    # raw came from the first call's extract run (cache hit); scatnet was extracted once, as a sibling of the
    # views that read it, under the grid's parent.
    raw_extract = mlflow.get_run(first[0]["run_id"]).data.tags["fmnist.extract_run_id"]
    assert by[("raw", "umap")].data.tags["fmnist.extract_run_id"] == raw_extract
    extracts = _runs("extract")
    assert len(extracts) == 2
    scat = next(r for r in extracts if r.data.params["feature"] == "scatnet")
    assert scat.data.tags["mlflow.parentRunId"] == parent.info.run_id == by[("scatnet", "pca")].data.tags[
        "mlflow.parentRunId"]
    summary = pd.read_csv(tracking.artifact_local_path(parent.info.run_id, "separation.csv"))
    assert len(summary) == 4 and summary["knn_accuracy"].between(0, 1).all()
    # Same seed, same sample, same pictures: PCA of raw is identical across the two calls.
    np.testing.assert_array_equal(first[0]["coords"], cells[0]["coords"])


BAD = [
    ({"n_samples": 101}, ParamError, "n_samples=101 is more than the 100 images in the test split"),
    ({"n_samples": 15}, ParamError, "n_samples=15 is too small: need at least 20"),
    ({"methods": ["mds"]}, ChoiceError, "unknown method 'mds'; choose one of: pca, tsne, lle, umap"),
    ({"features": ["hog"]}, ChoiceError, "unknown feature 'hog'; choose one of: raw"),
    ({"method_given": {"perplexity": -1.0}}, ParamError, "perplexity must be > 0"),
]


def test_bad_input_opens_no_run(store, tiny):
    for kw, err, message in BAD:  # one store for all cases: creating one costs seconds
        args = {"features": ["raw"], "methods": ["tsne"], "n_samples": 50, "ds": tiny, "progress": False, **kw}
        with pytest.raises(err, match=message):
            visualize(**args)
    assert _runs() == []


def test_sample_indices_stratified_and_seeded():
    y = np.repeat(np.arange(10), 100)
    a = sample_indices(y, 200, 10, seed=0)
    assert np.bincount(y[a]).tolist() == [20] * 10
    np.testing.assert_array_equal(a, sample_indices(y, 200, 10, seed=0))
    assert not np.array_equal(a, sample_indices(y, 200, 10, seed=1))
    assert len(sample_indices(y, None, 10, seed=0)) == 1000
