import mlflow
import numpy as np
import pytest

from fmnist import tracking
from fmnist.data import synthetic_dataset
from fmnist.errors import CacheError
from fmnist.steps.extract import ARTIFACT, get_features, load_feature_run


def _runs():
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def test_miss_then_hit(store, tiny):
    a = get_features(feature="raw", ds=tiny, progress=False)
    assert not a.cached and a.x_train.shape == (200, 784)
    r = mlflow.get_run(a.run_id)
    assert r.info.status == "FINISHED"
    assert r.data.params["feature"] == "raw" and r.data.params["dataset"] == "synthetic"
    assert r.data.metrics["dim"] == 784 and r.data.metrics["n_train"] == 200 and r.data.metrics["n_test"] == 100
    assert r.data.metrics["images_per_second"] > 0
    assert r.data.tags["fmnist.data_digest"] == tiny.digest
    assert [f.path for f in mlflow.MlflowClient().list_artifacts(a.run_id)] == [ARTIFACT]
    assert len(r.inputs.dataset_inputs) == 2

    b = get_features(feature="raw", ds=tiny, progress=False)
    assert b.cached and b.run_id == a.run_id
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert len(_runs()) == 1  # the hit created no run


def test_param_or_data_change_misses(store, tiny):
    a = get_features(feature="scatnet", ds=tiny, params={"J": 1, "L": 2, "max_order": 1}, progress=False)
    b = get_features(feature="scatnet", ds=tiny, params={"J": 1, "L": 3, "max_order": 1}, progress=False)
    other = synthetic_dataset(n_train=200, n_test=100, seed=1)
    c = get_features(feature="scatnet", ds=other, params={"J": 1, "L": 2, "max_order": 1}, progress=False)
    assert not (a.cached or b.cached or c.cached) and len({a.run_id, b.run_id, c.run_id}) == 3
    assert a.x_train.shape[1] != b.x_train.shape[1]


def test_unfinished_runs_are_never_reused(store, tiny):
    a = get_features(feature="raw", ds=tiny, progress=False)
    for status in ("FAILED", "KILLED", "RUNNING"):
        mlflow.MlflowClient().update_run(a.run_id, status=status)
        b = get_features(feature="raw", ds=tiny, progress=False)
        assert not b.cached and b.run_id != a.run_id
        mlflow.MlflowClient().set_terminated(b.run_id, "FAILED")  # so the next round misses again


def test_tampered_artifact_is_refused_and_recomputed(store, tiny):
    a = get_features(feature="raw", ds=tiny, progress=False)
    path = tracking.artifact_local_path(a.run_id, ARTIFACT)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CacheError, match="checksum mismatch"):
        load_feature_run(a.run_id, tiny)
    b = get_features(feature="raw", ds=tiny, progress=False)
    assert not b.cached and b.run_id != a.run_id


def test_other_dataset_is_refused(store, tiny):
    a = get_features(feature="raw", ds=tiny, progress=False)
    with pytest.raises(CacheError, match="other data"):
        load_feature_run(a.run_id, synthetic_dataset(n_train=200, n_test=100, seed=5))


def test_nested_under_active_run(store, tiny):
    with tracking.run("parent", step="test") as parent:
        fs = get_features(feature="raw", ds=tiny, progress=False)
    assert mlflow.get_run(fs.run_id).data.tags["mlflow.parentRunId"] == parent


def test_error_ends_run_failed_with_message(store):
    with pytest.raises(ValueError):
        with tracking.run("boom", step="test") as rid:
            raise ValueError("bad thing\nsecond line")
    r = mlflow.get_run(rid)
    assert r.info.status == "FAILED" and r.data.tags["fmnist.error"] == "ValueError: bad thing"
