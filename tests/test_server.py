"""The study against the team server: real PostgreSQL + ``mlflow server`` with proxied artifacts (no mocks).

Started through scripts/team_server.sh on free loopback ports, stopped (and purged) at the end of the session.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fmnist import cache
from stores import SCRIPT, fmnist_env, fmnist_here, run_ids_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EXPERIMENT = "server-study"


@pytest.fixture
def on_server(team_server, monkeypatch):
    """This process's MLflow client pointed at the team server (the report's queries run in-process)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_server.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    mlflow.set_tracking_uri(team_server.uri)
    yield team_server
    mlflow.set_tracking_uri(None)
    import mlflow.tracking.fluent as fl

    fl._active_experiment_id = None


def test_script_reports_state(team_server):
    # the start line links the UI's runs table (the experiments list while no experiment exists yet)
    assert f"[fmnist] MLflow UI: open {team_server.uri}/#/experiments" in team_server.start_output
    st = subprocess.run([str(SCRIPT), "status", "--dir", str(team_server.state_dir)], capture_output=True,
                        text=True, timeout=60)
    assert st.returncode == 0, st.stderr
    assert f"tracking_uri: {team_server.uri}" in st.stdout and "healthy: True" in st.stdout
    assert "postgres_running: True" in st.stdout
    pid = json.loads((team_server.state_dir / "server.json").read_text())["mlflow_pid"]
    again = subprocess.run([str(SCRIPT), "start", "--dir", str(team_server.state_dir)], capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 1
    assert again.stderr.strip() == (f"fmnist.server: error: already running at {team_server.uri} (pid {pid}); "
                                    "stop it first")
    # The database password is in no command line (`ps` shows those): libpq reads it from an owner-only file.
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    password = (team_server.state_dir / "pg.password").read_text().strip()
    assert "postgresql+psycopg://fmnist@127.0.0.1:" in cmdline and password not in cmdline
    assert (team_server.state_dir / "pgpass").stat().st_mode & 0o777 == 0o600


def test_study_over_http(on_server, real_data_dir, tmp_path):
    """extract (twice: the second is a cache hit), classify, then the report, all through the server (the CLI
    in-process: a child process adds only its start-up; tests/test_accounts.py runs it as processes)."""
    from mlflow import MlflowClient

    from fmnist import report

    env = fmnist_env(on_server.uri, EXPERIMENT, real_data_dir)
    common = ["--subset", "300", "--seed", "3", "--no-progress"]  # a key no other test computes
    first = fmnist_here(["extract", "--feature", "raw", *common], env, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "cache hit" not in first.stderr
    (extract_id,) = run_ids_in(first.stderr)

    second = fmnist_here(["extract", "--feature", "raw", *common], env, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"cache hit, reusing FINISHED run {extract_id}" in second.stderr

    cls = fmnist_here(["classify", "--feature", "raw", "--model", "lda", *common], env, tmp_path)
    assert cls.returncode == 0, cls.stderr[-3000:]
    assert f"cache hit, reusing FINISHED run {extract_id}" in cls.stderr
    (classify_id,) = run_ids_in(cls.stderr)

    client = MlflowClient(on_server.uri)
    from fmnist.tracking import runs_table_url

    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    assert runs_table_url(on_server.uri, EXPERIMENT) == f"{on_server.uri}/#/experiments/{exp_id}/runs"
    ex = client.get_run(extract_id)
    assert ex.info.status == "FINISHED" and ex.info.artifact_uri.startswith("mlflow-artifacts:")
    # Proxied artifacts: the client uploaded through HTTP; the file sits in the server's folder, intact.
    (stored,) = list(on_server.artifacts.rglob(f"{extract_id}/artifacts/features.npz"))
    assert cache.file_sha256(stored) == ex.data.tags["fmnist.artifact_sha256"]
    run = client.get_run(classify_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["fmnist.extract_run_id"] == extract_id
    assert run.data.params["feature"] == "raw" and run.data.params["model"] == "lda"
    acc = run.data.metrics["test_accuracy"]
    assert 0.5 < acc <= 1.0
    assert {"confusion_matrix.png", "per_class_accuracy.csv"} <= {a.path for a in client.list_artifacts(classify_id)}
    logged = {m.name: m for m in client.search_logged_models([run.info.experiment_id]) if m.source_run_id == classify_id}
    assert sorted(logged) == ["lda-raw"]  # the servable model taking images, named after what it is
    assert all(str(m.status) == "READY" for m in logged.values())

    # The report's queries over HTTP: the table is exactly the runs' metrics.
    table = report.comparison_table(experiment=EXPERIMENT)
    assert list(table.index) == ["lda", "Average"] and list(table.columns) == ["raw", "Average"]
    assert table.loc["lda", "raw"] == pytest.approx(100 * acc)
    assert report.comparison_table(experiment=EXPERIMENT, percent=False).loc["lda", "raw"] == acc

    rep = fmnist_here(["report", "--output", str(tmp_path / "out" / "report.html"), "--experiment", EXPERIMENT],
                      env, tmp_path)
    assert rep.returncode == 0, rep.stderr[-3000:]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Traceback" not in html and f"{100 * acc:.2f}" in html
    (report_run,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id],
                                       "tags.`fmnist.step` = 'report'")
    assert report_run.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(report_run.info.run_id, "report")} == {
        "report/report.html", "report/report.ipynb"}
