"""End to end: `mlflow run . -e extract --env-manager local` on a small real subset, temp store."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def mlflow_run(entry, params, store_dir, timeout=600):
    cmd = [str(Path(sys.executable).parent / "mlflow"), "run", str(ROOT), "-e", entry, "--env-manager", "local",
           "--experiment-name", "fmnist"]
    for k, v in params.items():
        cmd += ["-P", f"{k}={v}"]
    # `--env-manager local` runs the entry point's `python` from PATH: this venv's, as when activated.
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store_dir / 'mlflow.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_RUN_ID", None)
    return subprocess.run(cmd, cwd=store_dir, env=env, capture_output=True, text=True, timeout=timeout)


def mlflow_run_here(entry, params, monkeypatch) -> int:
    """What ``mlflow_run`` does, in this process: the run `mlflow run` creates (its tags and logged params,
    through MLflow's own project code), the variables it hands the entry point, then the entry point's
    command from MLproject as a script. Returns the exit code; its stderr is the test's (capsys).

    For the bad-input rows: a subprocess adds only start-up there; test_bad_input_through_mlflow_run keeps
    one row through the real launcher."""
    import runpy
    import shlex

    from mlflow.projects import _resolve_experiment_id
    from mlflow.projects import utils as project

    params = {k: str(v) for k, v in params.items()}
    experiment_id = _resolve_experiment_id(experiment_name="fmnist")
    run = project.get_or_create_run(None, str(ROOT), experiment_id, str(ROOT), None, entry, params)
    for k, v in project.get_run_env_vars(run.info.run_id, experiment_id).items():
        monkeypatch.setenv(k, v)
    (command,) = project.get_entry_point_command(project.load_project(str(ROOT)), entry, params, None)
    argv = shlex.split(command)
    assert argv[0] == "python", command
    monkeypatch.setattr(sys, "argv", argv[1:])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / argv[1]), run_name="__main__")
    return e.value.code


def assert_bad_input_failed_the_run(code: int, stderr: str, message: str) -> None:
    """One ``fmnist: error:`` line naming ``message``, a non-zero exit, and the one run FAILED with it."""
    assert code != 0
    line = [ln for ln in stderr.splitlines() if ln.startswith("fmnist: error:")]
    assert len(line) == 1 and message in line[0], stderr[-2000:]
    (r,) = mlflow.search_runs(experiment_names=["fmnist"], output_format="list")
    assert r.info.status == "FAILED" and message in r.data.tags["fmnist.error"]


def test_extract_scatnet_real_subset(real_data_dir, store, tmp_path, monkeypatch, capsys):
    p = mlflow_run("extract", {"feature": "scatnet", "subset": 300, "data_dir": real_data_dir}, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["fmnist"], output_format="list")
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED"
    assert r.data.params["feature"] == "scatnet" and r.data.params["J"] == "2" and r.data.params["subset"] == "300"
    assert r.data.metrics["n_train"] == 300 and r.data.metrics["n_test"] == 300
    assert r.data.metrics["dim"] == 81 * 7 * 7
    assert len(r.data.tags["fmnist.cache_key"]) == 64 and r.data.tags["mlflow.project.entryPoint"] == "extract"
    local = mlflow.artifacts.download_artifacts(run_id=r.info.run_id, artifact_path="features.npz",
                                                dst_path=str(tmp_path / "dl"))
    with np.load(local) as z:
        assert z["x_train"].shape == (300, 3969) and z["x_train"].dtype == np.float32
        assert np.bincount(z["y_train"]).tolist() == [30] * 10

    # Again, launched in-process as `mlflow run` launches it (the launcher itself ran above): a cache hit.
    code = mlflow_run_here("extract", {"feature": "scatnet", "subset": 300, "data_dir": real_data_dir}, monkeypatch)
    assert code == 0 and "cache hit" in capsys.readouterr().err
    hit = mlflow.search_runs(experiment_names=["fmnist"], output_format="list")[0]
    assert hit.data.tags["fmnist.reused_run_id"] == r.info.run_id


BAD = [
    ({"feature": "hog"}, "unknown feature 'hog'; choose one of: raw"),
    ({"J": "abc"}, "'abc' is not a valid integer"),
    ({"subset": "0"}, "must be 'all' or a positive number"),
]


@pytest.mark.parametrize("params,message", BAD)
def test_bad_input_fails_the_run(real_data_dir, store, monkeypatch, capsys, params, message):
    code = mlflow_run_here("extract", {"subset": 100, "data_dir": real_data_dir, **params}, monkeypatch)
    assert_bad_input_failed_the_run(code, capsys.readouterr().err, message)


def test_bad_input_through_mlflow_run(real_data_dir, store, tmp_path):
    """The first row through the real launcher: MLflow's process, then the entry point's."""
    params, message = BAD[0]
    p = mlflow_run("extract", {"subset": 100, "data_dir": real_data_dir, **params}, tmp_path)
    assert_bad_input_failed_the_run(p.returncode, p.stderr, message)
