"""Several ``fmnist`` processes started at once against one store (a fresh sqlite file, and the team server).

4 classify processes: every run recorded once, all FINISHED. 2 identical extracts: both finish, every
feature artifact verifies against its recorded sha256, and a later extract is a cache hit.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from fmnist import cache
from stores import fmnist, fmnist_at_once, fmnist_env, run_ids_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MODELS = ["lda", "logreg", "rf", "svm"]


@pytest.fixture(params=["sqlite", "server"])
def store_uri(request, tmp_path):
    """A tracking URI: a sqlite file nobody created yet (processes race to create its schema), or the server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mlflow.db'}"
    return request.getfixturevalue("team_server").uri


def _runs(uri: str, experiment: str):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} was never created"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return client, runs


def test_four_classify_processes_at_once(store_uri, real_data_dir, tmp_path, request):
    experiment = f"concurrent-classify-{request.node.callspec.id}"
    env = fmnist_env(store_uri, experiment, real_data_dir)
    envs = [env] * len(MODELS)
    if request.node.callspec.id == "server":  # 4 writers, 4 accounts, each with EDIT on the experiment
        srv = request.getfixturevalue("team_server")
        envs = [srv.as_user(env, f"writer-{m}", srv.add_user(f"writer-{m}", (experiment, "EDIT"))) for m in MODELS]
    results = fmnist_at_once([["classify", "--feature", "raw", "--model", m, "--subset", "300", "--tune", "false",
                               "--n-jobs", "1", "--no-progress"] for m in MODELS], envs, tmp_path)
    for m, r in zip(MODELS, results):
        assert r["rc"] == 0, f"{m}: {r['stderr'][-3000:]}"
    print("seconds until each process finished:", [round(r["seconds"], 1) for r in results])

    client, runs = _runs(store_uri, experiment)
    assert Counter(r.info.status for r in runs) == {"FINISHED": len(runs)}
    classify = [r for r in runs if r.data.tags.get("fmnist.step") == "classify"]
    # No lost and no duplicated runs: exactly one per process, and each is the run that process reported.
    assert sorted(r.data.params["model"] for r in classify) == sorted(MODELS)
    if request.node.callspec.id == "server":  # each run was written by its own account
        assert {r.data.params["model"]: r.info.user_id for r in classify} == {m: f"writer-{m}" for m in MODELS}
    reported = {m: run_ids_in(r["stderr"])[-1] for m, r in zip(MODELS, results)}
    assert {r.data.params["model"]: r.info.run_id for r in classify} == reported
    logged = client.search_logged_models([classify[0].info.experiment_id])
    # one model per run, named after what it is (the fitted pipeline inside the servable model)
    assert sorted((m.source_run_id, m.name) for m in logged) == sorted(
        (r.info.run_id, f"{r.data.params['model']}-raw") for r in classify)
    models = {(m.source_run_id, m.name): m for m in logged}
    for r in classify:
        assert 0.3 < r.data.metrics["test_accuracy"] <= 1.0 and r.data.params["feature"] == "raw"
        assert "confusion_matrix.png" in {a.path for a in client.list_artifacts(r.info.run_id)}
        assert str(models[(r.info.run_id, f"{r.data.params['model']}-raw")].status) == "READY"  # complete
    # The processes share the features: each used a FINISHED extract run (one, or a few if they raced).
    used = {r.data.tags["fmnist.extract_run_id"] for r in classify}
    for run_id in used:
        e = client.get_run(run_id)
        assert e.info.status == "FINISHED" and e.data.tags["fmnist.step"] == "extract"
    n_extract = sum(r.data.tags.get("fmnist.step") == "extract" for r in runs)
    print(f"extract runs computed in this experiment: {n_extract}; extract runs the 4 used: {len(used)}")


def test_two_identical_extracts_at_once(store_uri, real_data_dir, tmp_path, request):
    from mlflow import MlflowClient

    experiment = f"concurrent-extract-{request.node.callspec.id}"
    env = fmnist_env(store_uri, experiment, real_data_dir)
    # scatnet takes seconds, so both processes are still computing when the other looks the key up.
    args = ["extract", "--feature", "scatnet", "--subset", "100", "--seed", "7", "--no-progress"]
    results = fmnist_at_once([args, args], env, tmp_path)
    for r in results:
        assert r["rc"] == 0, r["stderr"][-3000:]

    client, runs = _runs(store_uri, experiment)
    assert Counter(r.info.status for r in runs) == {"FINISHED": len(runs)}
    computed = [r for r in runs if r.data.tags.get("fmnist.cache_hit") == "false"]
    assert 1 <= len(computed) <= 2 and len({r.data.tags["fmnist.cache_key"] for r in computed}) == 1
    print(f"identical extracts started at once: {len(computed)} computed, {len(runs) - len(computed)} cache hits")
    arrays = []
    for r in computed:  # each run's artifact is whole: its bytes hash to the sha256 recorded with it
        path = MlflowClient(store_uri).download_artifacts(r.info.run_id, "features.npz", str(tmp_path / r.info.run_id))
        assert cache.file_sha256(path) == r.data.tags["fmnist.artifact_sha256"]
        arrays.append(cache.load_arrays(path, sha256=r.data.tags["fmnist.artifact_sha256"]))
    for a in arrays[1:]:  # the same computation: labels identical, float features equal up to rounding
        assert all(np.array_equal(a[k], arrays[0][k]) for k in ("y_train", "y_test"))
        # Bit equality is not promised for floats computed by two busy processes at once (a clean-clone CI run
        # once saw the two artifacts differ while the sha256 of each matched what its run recorded).
        for k in ("x_train", "x_test"):
            np.testing.assert_allclose(a[k], arrays[0][k], rtol=1e-4, atol=1e-6)

    later = fmnist(args, env, tmp_path)
    assert later.returncode == 0, later.stderr[-3000:]
    hits = [ln for ln in later.stderr.splitlines() if "cache hit, reusing FINISHED run" in ln]
    import re

    assert len(hits) == 1
    assert re.search(r"reusing FINISHED run ([0-9a-f]{32})", hits[0]).group(1) in {r.info.run_id for r in computed}
    assert "ignoring cached extract run" not in later.stderr  # the artifact it read verified
