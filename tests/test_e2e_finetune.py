"""End to end: `mlflow run . -e finetune --env-manager local` on a tiny real subset, temp store."""

import mlflow
import pytest
from test_e2e_extract import assert_bad_input_failed_the_run, mlflow_run, mlflow_run_here

pytestmark = pytest.mark.slow


def test_finetune_last_layer_real_subset(real_data_dir, store, tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_CHECKPOINT_DIR", str(tmp_path / "ck"))
    p = mlflow_run("finetune", {"mode": "last_layer", "weights": "none", "subset": 100, "epochs": 1, "image_size": 16,
                                "batch_size": 32, "device": "cpu", "data_dir": real_data_dir}, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    (r,) = mlflow.search_runs(experiment_names=["fmnist"], output_format="list")
    assert r.info.status == "FINISHED" and r.data.tags["fmnist.step"] == "finetune"
    assert r.data.tags["mlflow.project.entryPoint"] == "finetune"
    assert r.data.params["mode"] == "last_layer" and r.data.params["weights_used"] == "none (random init)"
    assert r.data.params["subset"] == "100" and r.data.params["epochs"] == "1"
    m = r.data.metrics
    assert 0 <= m["test_accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1 and m["best_epoch"] == 1
    assert m["images_per_second"] > 0 and m["epoch_seconds"] > 0 and m["n_test"] == 100
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(r.info.run_id)}
    assert {"learning_curve.png", "confusion_matrix.png"} <= names
    assert mlflow.models.get_model_info(f"runs:/{r.info.run_id}/finetune-last_layer-network").signature is not None
    assert not (tmp_path / "ck" / r.info.run_id).exists()


@pytest.mark.parametrize("params,message", [
    ({"mode": "head"}, "unknown mode 'head'; choose one of: last_layer, full"),
    ({"epochs": "0"}, "0 is not in the range x>=1"),
])
def test_bad_input_fails_the_run(real_data_dir, store, monkeypatch, capsys, params, message):
    code = mlflow_run_here("finetune", {"subset": 100, "weights": "none", "data_dir": real_data_dir, **params},
                           monkeypatch)
    assert_bad_input_failed_the_run(code, capsys.readouterr().err, message)
