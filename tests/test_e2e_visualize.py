"""End to end: `mlflow run . -e visualize --env-manager local` on a small real subset, temp store."""

import mlflow
import pandas as pd
import pytest

from fmnist import tracking

from test_e2e_extract import assert_bad_input_failed_the_run, mlflow_run, mlflow_run_here  # tests/ is on sys.path (no package)

pytestmark = pytest.mark.slow


def test_visualize_grid_real_subset(real_data_dir, store, tmp_path):
    p = mlflow_run("visualize", {"feature": "raw", "method": "pca,umap", "subset": 200, "n_samples": 150,
                                 "seed": 1, "data_dir": real_data_dir}, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["fmnist"], output_format="list")
    steps = sorted(r.data.tags["fmnist.step"] for r in runs)
    assert steps == ["extract", "visualize", "visualize", "visualize-group"]
    assert all(r.info.status == "FINISHED" for r in runs)
    parent = next(r for r in runs if r.data.tags["fmnist.step"] == "visualize-group")
    assert parent.data.tags["mlflow.project.entryPoint"] == "visualize"
    grid = tracking.artifact_local_path(parent.info.run_id, "embedding_grid.png").read_bytes()
    assert grid[:4] == b"\x89PNG" and len(grid) > 20_000
    for r in runs:
        if r.data.tags["fmnist.step"] != "visualize":
            continue
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert r.data.params["n_samples"] == "150" and r.data.params["seed"] == "1"
        assert r.data.params["subset"] == "200" and r.data.tags["fmnist.feature_label"] == "raw"
        # 15 real images per class, far above chance (0.1) for both views of raw pixels.
        assert 0.3 < r.data.metrics["knn_accuracy"] <= 1 and 0.5 < r.data.metrics["trustworthiness"] <= 1
        df = pd.read_csv(tracking.artifact_local_path(r.info.run_id, "embedding.csv"))
        assert len(df) == 150 and df["class"].nunique() == 10 and "Ankle boot" in set(df["class"])
    assert "best k-NN accuracy per feature: raw ->" in p.stderr


def test_single_view_in_the_run_mlflow_created(real_data_dir, store, monkeypatch, capsys):
    # n_samples=all and a perplexity too large for 60 points: mlflow logged the request, we add what was used.
    # Launched in-process as `mlflow run` launches it (test_visualize_grid_real_subset runs the launcher).
    code = mlflow_run_here("visualize", {"feature": "raw", "method": "tsne", "subset": 60, "n_samples": "all",
                                         "perplexity": 30, "data_dir": real_data_dir}, monkeypatch)
    assert code == 0, capsys.readouterr().err[-3000:]
    runs = mlflow.search_runs(experiment_names=["fmnist"], output_format="list")
    (r,) = [r for r in runs if r.data.tags["fmnist.step"] == "visualize"]
    assert r.info.status == "FINISHED" and r.data.tags["mlflow.project.entryPoint"] == "visualize"
    assert r.data.params["n_samples"] == "all" and r.data.params["n_samples_used"] == "60"
    assert r.data.params["perplexity"] == "30" and r.data.params["perplexity_used"] == "19.67"
    assert "pca_dims_used" not in r.data.params and r.data.params["pca_dims"] == "50"
    assert {"knn_accuracy", "trustworthiness", "silhouette", "embed_seconds"} <= set(r.data.metrics)
    assert sorted(f.path for f in mlflow.MlflowClient().list_artifacts(r.info.run_id)) == [
        "embedding.csv", "embedding.png", "view.html"]


@pytest.mark.parametrize("params,message", [
    ({"method": "mds"}, "unknown method 'mds'; choose one of: pca, tsne, lle, umap"),
    ({"n_samples": "500"}, "n_samples=500 is more than the 200 images in the test split of subset=200"),
])
def test_bad_input_fails_the_run(real_data_dir, store, monkeypatch, capsys, params, message):
    code = mlflow_run_here("visualize", {"feature": "raw", "subset": 200, "data_dir": real_data_dir, **params}, monkeypatch)
    assert_bad_input_failed_the_run(code, capsys.readouterr().err, message)
