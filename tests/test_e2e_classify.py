"""End to end: `mlflow run . -e classify --env-manager local` on a small real subset, temp store."""

import mlflow
import numpy as np
import pytest

from golden import assert_golden
from test_e2e_extract import assert_bad_input_failed_the_run, mlflow_run, mlflow_run_here

pytestmark = pytest.mark.slow


def test_classify_lda_on_raw_real_subset(real_data_dir, store, tmp_path):
    p = mlflow_run("classify", {"feature": "raw", "model": "lda", "subset": 600, "data_dir": real_data_dir},
                   tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "fit lda on raw on the full training set (600 x 784)" in p.stderr and "done in" in p.stderr
    runs = {r.info.run_id: r for r in mlflow.search_runs(experiment_names=["fmnist"], output_format="list")}
    (cell,) = [r for r in runs.values() if r.data.tags["fmnist.step"] == "classify"]
    (extract,) = [r for r in runs.values() if r.data.tags["fmnist.step"] == "extract"]
    assert cell.info.status == extract.info.status == "FINISHED" and len(runs) == 2
    # one target: the run `mlflow run` made is the cell's; the extract ran first beside it, not inside it
    assert cell.data.tags["mlflow.project.entryPoint"] == "classify"
    assert "mlflow.parentRunId" not in extract.data.tags and "mlflow.project.entryPoint" not in extract.data.tags
    assert cell.data.tags["fmnist.extract_run_id"] == extract.info.run_id
    p_, m = cell.data.params, cell.data.metrics
    assert p_["feature"] == "raw" and p_["model"] == "lda" and p_["subset"] == "600" and p_["tune"] == "True"
    assert p_["hp_shrinkage"] in {"auto", "0.0001", "0.001", "0.01", "0.1"}
    assert 0.6 < m["test_accuracy"] < 0.95 and 0.5 < m["val_accuracy"] <= 1 and m["train_accuracy"] >= m["test_accuracy"]
    assert m["test_accuracy_trouser"] > 0.8 and "test_accuracy_ankle_boot" in m
    arts = {f.path for f in mlflow.MlflowClient().list_artifacts(cell.info.run_id)}
    assert {"confusion_matrix.png", "per_class_accuracy.csv", "tuning.csv"} <= arts
    from fmnist import tracking

    model = tracking.load_predictor(f"runs:/{cell.info.run_id}/lda-raw").classifier
    assert model.predict(np.zeros((2, 784), np.float32)).shape == (2,)
    assert_golden("mlflow-run-classify", store)


def test_unknown_model_fails_the_run(real_data_dir, store, monkeypatch, capsys):
    code = mlflow_run_here("classify", {"feature": "raw", "model": "knn", "subset": 100, "data_dir": real_data_dir},
                           monkeypatch)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("fmnist: error:")]
    assert lines == ["fmnist: error: unknown model 'knn'; choose one of: logreg, lda, svm, rf"]
    assert_bad_input_failed_the_run(code, err, "unknown model 'knn'")
