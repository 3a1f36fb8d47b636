"""Faults: a SIGKILLed run is never reused and is reaped; disk full and a dead server fail cleanly."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from fmnist import tracking
from fmnist.cli import run_cli
from fmnist.cli.extract import extract

FMNIST = str(Path(sys.executable).parent / "fmnist")


def _wait_for(pred, timeout=120.0, every=0.2):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(every)
    return False


def _runs():
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


@pytest.mark.slow
def test_sigkilled_extract_is_not_reused_and_is_reaped(real_data_dir, store, tmp_path):
    args = [FMNIST, "extract", "--feature", "scatnet", "--subset", "2000", "--data-dir", str(real_data_dir),
            "--no-progress"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    p = subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: any(r.info.status == "RUNNING" for r in _runs())), "run never started"
        time.sleep(0.5)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    (killed,) = _runs()
    assert killed.info.status == "RUNNING" and "fmnist.cache_key" not in killed.data.tags

    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "cache hit" not in again.stderr  # the killed run was not reused
    r = mlflow.get_run(killed.info.run_id)
    assert r.info.status == "KILLED" and "died" in r.data.tags["fmnist.error"]
    done = [x for x in _runs() if x.info.status == "FINISHED"]
    assert len(done) == 1 and len(done[0].data.tags["fmnist.cache_key"]) == 64

    third = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and f"reusing FINISHED run {done[0].info.run_id}" in third.stderr


def test_disk_full_fails_the_run_with_one_line(store, tiny, monkeypatch, capsys):
    import fmnist.steps.extract as ex

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ex.cache, "save_arrays", full)
    monkeypatch.setattr(ex.ExtractParams, "load", lambda self: tiny)  # the CLI's params name the tiny data
    with pytest.raises(SystemExit) as e:
        run_cli(extract, ["--feature", "raw", "--no-progress"])
    assert e.value.code == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("fmnist: error:")]
    assert len(err) == 1 and "No space left on device" in err[0]
    (r,) = _runs()
    assert r.info.status == "FAILED" and "No space left" in r.data.tags["fmnist.error"]
    assert "fmnist.cache_key" not in r.data.tags
    monkeypatch.undo()
    fs = ex.get_features(feature="raw", ds=tiny, progress=False)  # space is back: a re-run completes
    assert not fs.cached and mlflow.get_run(fs.run_id).info.status == "FINISHED"


def test_tracking_server_down_is_one_line_and_nothing_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    mlflow.set_tracking_uri("http://127.0.0.1:9")
    try:
        with pytest.raises(SystemExit) as e:
            run_cli(extract, ["--feature", "raw", "--subset", "100", "--no-progress"])
    finally:
        mlflow.set_tracking_uri(None)
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and "tracking server http://127.0.0.1:9 is not reachable" in err[0]
    assert not list(tmp_path.iterdir())  # no local store, no artifacts written


def test_reaper_leaves_live_runs_alone(store):
    with tracking.run("alive", step="test") as rid:
        assert rid not in tracking.reap_dead_runs()
        assert mlflow.get_run(rid).info.status == "RUNNING"


@pytest.mark.slow
def test_sigkilled_classify_is_reaped_and_a_rerun_completes(real_data_dir, store, tmp_path):
    args = [FMNIST, "classify", "--feature", "raw", "--model", "rf", "--tune", "false", "--subset", "3000",
            "--data-dir", str(real_data_dir), "--no-progress"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    p = subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)

    def classify_running():
        return [r for r in _runs() if r.data.tags.get("fmnist.step") == "classify" and r.info.status == "RUNNING"]

    try:
        assert _wait_for(lambda: classify_running()), "classify run never started"
        time.sleep(0.5)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    (killed,) = classify_running()
    assert "fmnist.cache_key" not in killed.data.tags and not mlflow.MlflowClient().list_artifacts(
        killed.info.run_id, "model")

    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    r = mlflow.get_run(killed.info.run_id)
    assert r.info.status == "KILLED" and "died" in r.data.tags["fmnist.error"]
    done = [x for x in _runs() if x.data.tags.get("fmnist.step") == "classify" and x.info.status == "FINISHED"]
    assert len(done) == 1 and done[0].info.run_id != killed.info.run_id
    assert done[0].data.metrics["test_accuracy"] > 0.7
