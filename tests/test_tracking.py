"""fmnist.tracking against a temporary sqlite store: the store guard, child runs of a parent opened
elsewhere (a worker of a distributed executor), and reading/ending a parent's children."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fmnist import tracking
from fmnist.errors import FmnistError, ParamError


def _in_thread(fn):
    """Run ``fn`` in a fresh thread (MLflow's active run is per thread: none is active there); its result."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # handed back to the test
            out["error"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join(120)
    if "error" in out:
        raise out["error"]
    return out["value"]


def _bare_run(parent: str | None = None, status: str | None = None) -> str:
    """A run made without this process owning it (as ``mlflow run`` or a lost worker leaves one)."""
    c = MlflowClient()
    exp = c.get_experiment_by_name("fmnist") or c.get_experiment(c.create_experiment("fmnist"))
    r = c.create_run(exp.experiment_id, tags={tracking.PARENT_TAG: parent} if parent else None)
    if status:
        c.update_run(r.info.run_id, status=status)
    return r.info.run_id


# ------------------------------------------------------------------------------------------- store


def test_prepare_store_sets_a_busy_timeout_once_and_builds_the_schema(unbuilt_store):
    import sqlalchemy

    uri = tracking.prepare_store()
    assert uri == f"{unbuilt_store}?timeout={tracking.SQLITE_BUSY_TIMEOUT}" == mlflow.get_tracking_uri()
    assert os.environ["MLFLOW_TRACKING_URI"] == uri  # what child processes inherit
    assert tracking.prepare_store() == uri  # idempotent: no second query string
    # The URL reaches sqlite through SQLAlchemy's pysqlite dialect, as MLflow's engine is made.
    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000
            assert "experiments" in sqlalchemy.inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_prepare_store_leaves_a_chosen_timeout_and_other_stores_alone(store):
    mlflow.set_tracking_uri(f"{store}?timeout=5")
    assert tracking.prepare_store() == f"{store}?timeout=5"
    mlflow.set_tracking_uri("http://127.0.0.1:9")  # nothing listens: prepare_store must not contact it
    assert tracking.prepare_store() == "http://127.0.0.1:9"


def test_tracking_uri_makes_a_relative_store_absolute_and_usable(store, tmp_path, monkeypatch):
    mlflow.set_tracking_uri("sqlite:///mlflow.db")  # relative to the cwd, tmp_path
    with tracking.run("r", step="test") as rid:
        pass
    uri = tracking.tracking_uri()
    assert uri == f"sqlite:///{tmp_path / 'mlflow.db'}?timeout=60"
    monkeypatch.chdir(tmp_path.parent)  # as a notebook kernel or child process elsewhere would see it
    assert MlflowClient(uri).get_run(rid).info.status == "FINISHED"


@pytest.mark.slow
def test_processes_starting_at_once_on_a_new_store_all_record_their_run(tmp_path):
    """Each creates the schema of a fresh mlflow.db unless prepare_store's lock serialises them."""
    code = ("from fmnist import tracking\n"
            "with tracking.run('p', step='test'):\n"
            "    tracking.log_metrics({'x': 1.0})\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        env.pop(var, None)
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e[-2000:] for e in errs]
    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("fmnist").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"] * 3


# ------------------------------------------------------------------------------------ run lifecycle


def test_run_ends_failed_on_error_and_killed_on_ctrl_c(store):
    with pytest.raises(ValueError), tracking.run("bad", step="test") as failed:
        raise ValueError("no good\nsecond line")
    with pytest.raises(KeyboardInterrupt), tracking.run("stop", step="test") as killed:
        raise KeyboardInterrupt
    assert tracking.get_run_info(failed)["status"] == "FAILED"
    assert tracking.get_run_info(failed)["tags"]["fmnist.error"] == "ValueError: no good"
    assert tracking.get_run_info(killed)["status"] == "KILLED"
    assert mlflow.active_run() is None


def test_run_resumes_the_run_mlflow_run_created(store, monkeypatch):
    made = _bare_run()
    monkeypatch.setenv("MLFLOW_RUN_ID", made)
    assert tracking.launcher_run_id() == made
    with tracking.run("step", step="test", tags={"k": 1}, launcher=tracking.launcher_run_id()) as rid:
        assert rid == made
        with tracking.run("inner", step="test") as inner:
            pass
    with tracking.run("another", step="test") as other:  # a run not placed on it never takes it
        assert other != made
    monkeypatch.setenv("FMNIST_EXECUTOR", "ray")  # an executor's worker inherited the variable: not its run
    assert tracking.launcher_run_id() is None
    info = tracking.get_run_info(made)
    assert info["status"] == "FINISHED" and info["tags"]["k"] == "1" and info["tags"]["mlflow.runName"] == "step"
    assert tracking.get_run_info(inner)["tags"][tracking.PARENT_TAG] == made


# --------------------------------------------------------------------------------------- child runs


def test_a_worker_opens_a_child_of_a_parent_running_elsewhere(store, monkeypatch):
    with tracking.run("driver", step="study") as parent:
        monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "elsewhere")  # the child still goes with its parent

        def worker():
            assert mlflow.active_run() is None  # nothing to nest under: parent_run_id does it
            with tracking.run("cell", step="classify", tags={"cell": 3}, parent_run_id=parent) as rid:
                tracking.log_metrics({"acc": 0.5})
            return rid

        child = _in_thread(worker)
        assert tracking.get_run_info(parent)["status"] == "RUNNING"
        assert mlflow.active_run().info.run_id == parent
    info = tracking.get_run_info(child)
    assert info["status"] == "FINISHED" and info["tags"][tracking.PARENT_TAG] == parent
    assert info["experiment_id"] == tracking.get_run_info(parent)["experiment_id"]
    assert info["tags"]["fmnist.step"] == "classify" and info["tags"]["cell"] == "3"
    assert mlflow.get_experiment_by_name("elsewhere") is None


def test_a_failing_child_fails_alone(store):
    parent = _bare_run(status="RUNNING")
    with pytest.raises(RuntimeError), tracking.run("cell", step="test", parent_run_id=parent) as child:
        raise RuntimeError("worker lost its data")
    assert tracking.get_run_info(child)["status"] == "FAILED"
    assert tracking.get_run_info(child)["tags"]["fmnist.error"] == "RuntimeError: worker lost its data"
    assert tracking.get_run_info(parent)["status"] == "RUNNING"


def test_parent_run_id_of_the_active_run_nests_under_it(store):
    with tracking.run("driver", step="study") as parent:
        with tracking.run("cell", step="test", parent_run_id=parent) as child:
            assert mlflow.active_run().info.run_id == child
        assert mlflow.active_run().info.run_id == parent
    assert tracking.get_run_info(child)["tags"][tracking.PARENT_TAG] == parent


def test_a_child_needs_a_running_parent(store):
    with tracking.run("done", step="study") as parent:
        pass
    with pytest.raises(FmnistError, match="is FINISHED, not RUNNING"):
        with tracking.run("late", step="test", parent_run_id=parent):
            pytest.fail("the block must not run")
    other = _bare_run(status="RUNNING")
    with tracking.run("active", step="study"):  # MLflow refuses a parent other than the active run
        with pytest.raises(MlflowException, match="does not match"):
            with tracking.run("cell", step="test", parent_run_id=other):
                pytest.fail("the block must not run")
    assert tracking.child_runs(parent) == [] and tracking.child_runs(other) == []


def test_parent_run_id_wins_over_MLFLOW_RUN_ID(store, monkeypatch):
    theirs = _bare_run()  # e.g. the run `mlflow run` made for this process
    parent = _bare_run(status="RUNNING")
    monkeypatch.setenv("MLFLOW_RUN_ID", theirs)
    with tracking.run("cell", step="test", parent_run_id=parent) as child:
        assert child != theirs and os.environ["MLFLOW_RUN_ID"] == theirs  # ignored, not consumed
    assert tracking.get_run_info(theirs)["status"] == "RUNNING"
    assert [c["run_id"] for c in tracking.child_runs(parent)] == [child]


def test_child_runs_lists_children_with_their_records(store):
    parent, stranger = _bare_run(status="RUNNING"), _bare_run(status="RUNNING")
    with tracking.run("a", step="test", parent_run_id=parent) as a:
        tracking.log_params({"model": "svm"})
        tracking.log_metrics({"acc": 0.9})
    b = _bare_run(parent=parent)  # still RUNNING
    _bare_run(parent=stranger)
    kids = tracking.child_runs(parent)
    assert [k["run_id"] for k in kids] == [a, b]  # oldest first
    assert kids[0]["params"] == {"model": "svm"} and kids[0]["metrics"] == {"acc": 0.9}
    assert kids[0]["tags"]["fmnist.step"] == "test" and kids[0]["status"] == "FINISHED"
    assert [k["run_id"] for k in tracking.child_runs(parent, status="RUNNING")] == [b]
    assert tracking.child_runs(a) == []


def test_end_unfinished_children_ends_only_the_unfinished(store):
    parent = _bare_run(status="RUNNING")
    with tracking.run("done", step="test", parent_run_id=parent) as done:
        pass
    running, scheduled = _bare_run(parent=parent), _bare_run(parent=parent, status="SCHEDULED")
    ended = tracking.end_unfinished_children(parent, message="worker node lost")
    assert sorted(ended) == sorted([running, scheduled])
    for rid in ended:
        info = tracking.get_run_info(rid)
        assert info["status"] == "KILLED" and info["tags"]["fmnist.error"] == "worker node lost"
    assert tracking.get_run_info(done)["status"] == "FINISHED" and "fmnist.error" not in \
        tracking.get_run_info(done)["tags"]
    assert tracking.get_run_info(parent)["status"] == "RUNNING"
    assert tracking.end_unfinished_children(parent) == []


def test_end_unfinished_children_takes_an_end_status(store):
    parent = _bare_run(status="RUNNING")
    child = _bare_run(parent=parent)
    with pytest.raises(ParamError, match="RUNNING"):
        tracking.end_unfinished_children(parent, status="RUNNING")
    assert tracking.end_unfinished_children(parent, status="FAILED") == [child]
    info = tracking.get_run_info(child)
    assert info["status"] == "FAILED" and info["tags"]["fmnist.error"] == "its parent run ended before it did"


@pytest.mark.slow
def test_downloaded_artifacts_live_in_one_folder_removed_at_exit(monkeypatch):
    from types import SimpleNamespace

    from fmnist.tracking import queries

    run = SimpleNamespace(info=SimpleNamespace(artifact_uri="mlflow-artifacts:/1/abc/artifacts"))
    monkeypatch.setattr(queries, "_client", lambda: SimpleNamespace(get_run=lambda run_id: run))

    def download(run_id, artifact_path, dst_path):
        path = os.path.join(dst_path, artifact_path)
        with open(path, "w") as f:
            f.write(run_id)
        return path

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", download)
    a, b = (tracking.artifact_local_path("r1", "x.csv"), tracking.artifact_local_path("r2", "x.csv"))
    assert a != b and a.read_text() == "r1" and b.read_text() == "r2"  # each call its own folder
    assert a.parent.parent == b.parent.parent == type(a)(queries._download_root())
    code = ("from fmnist.tracking.queries import _download_root; import os; r = _download_root(); "
            "open(os.path.join(r, 'f'), 'w').write('x'); print(r)")
    root = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert root and not os.path.exists(root)  # the exiting process took its downloads with it


def test_every_run_logs_the_machines_use(store, monkeypatch):
    import time

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")  # MLflow's default: every 10 s
    with tracking.run("busy", step="classify") as run_id:
        time.sleep(1.0)
        with tracking.run("nested", step="extract") as child_id:
            time.sleep(1.0)
    for r in (run_id, child_id):
        metrics = MlflowClient().get_run(r).data.metrics
        assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(metrics), r


def test_a_rerun_compares_results_not_timings_or_the_machines_use():
    from fmnist.commands.rerun import DIFFERS, IDENTICAL, compare_metrics

    rows = compare_metrics({"test_accuracy": 0.9, "fit_seconds": 3.0, "system/cpu_utilization_percentage": 50.0},
                           {"test_accuracy": 0.9, "fit_seconds": 9.0, "system/cpu_utilization_percentage": 99.0}, {})
    assert [(r.what, r.verdict) for r in rows] == [("test_accuracy", IDENTICAL)]
    (row,) = compare_metrics({"macro_f1": 0.5}, {"macro_f1": 0.51}, {"macro_f*": 0.02, "macro": 1})
    assert row.verdict != DIFFERS and "tolerance 0.02" in row.note
