"""Accounts on the team server: MLflow's basic-auth app on a real server and real PostgreSQL (no mocks).

Users are made and granted through scripts/team_server.sh, as an admin would; each test uses users and an
experiment no other test touches (the server is shared by the session).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fmnist.liveness import http_status
from stores import CREDENTIAL_VARS, SCRIPT, fmnist, fmnist_env, fmnist_here, run_ids_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
COMMON = ["--subset", "200", "--seed", "5", "--no-progress"]  # a key no other test computes


def _script(srv, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args, "--dir", str(srv.state_dir)], capture_output=True, text=True,
                          timeout=120)


def _anonymous(env: dict) -> dict:
    return {k: v for k, v in env.items() if k not in CREDENTIAL_VARS}


def _runs(srv, experiment: str) -> list:
    from mlflow import MlflowClient  # as the admin (conftest's team_server fixture set its credentials)

    client = MlflowClient(srv.uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("fmnist: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def test_secrets_are_generated_owner_only_and_never_the_default(team_server):
    d = team_server.state_dir
    for name in ("admin.password", "flask.secret", "basic_auth.ini", "pg.password", "pgpass"):
        assert (d / name).stat().st_mode & 0o777 == 0o600, name
    admin_pw = (d / "admin.password").read_text().strip()
    assert len(admin_pw) >= 24 and admin_pw != "password1234"
    ini = (d / "basic_auth.ini").read_text()
    # The users live in the same PostgreSQL, not in a basic_auth.db in some working directory.
    assert "database_uri = postgresql+psycopg://fmnist@127.0.0.1:" in ini and "/mlflow_auth" in ini
    assert "default_permission = NO_PERMISSIONS" in ini and admin_pw not in ini
    # Our check, which hashes a password once per server process (MLflow's hashes it on every request);
    # test_read_edit_and_removed_users shows a removed user refused at once all the same.
    assert "authorization_function = fmnist.tracking.server_auth:authenticate" in ini
    assert not list(d.rglob("basic_auth.db")) and not (Path.cwd() / "basic_auth.db").exists()
    pid = json.loads((d / "server.json").read_text())["mlflow_pid"]
    assert admin_pw not in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert http_status(team_server.uri + SEARCH, ("admin", "password1234"), 10) == 401
    assert http_status(team_server.uri + SEARCH, team_server.admin, 10) == 200
    st = _script(team_server, "status")
    assert st.returncode == 0 and "accounts: basic-auth (admin admin" in st.stdout and admin_pw not in st.stdout


def test_anonymous_and_wrong_password_are_refused_before_any_work(team_server, real_data_dir, tmp_path):
    exp = "accounts-refused"
    assert http_status(team_server.uri + SEARCH, None, 10) == 401
    assert http_status(team_server.uri + SEARCH, ("admin", "wrong"), 10) == 401
    assert http_status(team_server.uri + "/health", None, 10) == 200  # liveness needs no account
    env = fmnist_env(team_server.uri, exp, real_data_dir)

    nobody = fmnist(["extract", "--feature", "raw", *COMMON], _anonymous(env), tmp_path)
    assert nobody.returncode == 1
    assert _one_line(nobody.stderr) == (
        f"fmnist: error: tracking server {team_server.uri} asks for an account: set MLFLOW_TRACKING_USERNAME "
        "and MLFLOW_TRACKING_PASSWORD (or put them in ~/.mlflow/credentials); nothing was computed")
    wrong = fmnist(["classify", "--feature", "raw", "--model", "lda", *COMMON],
                   team_server.as_user(env, "admin", "not-the-password"), tmp_path)
    assert wrong.returncode == 1
    assert _one_line(wrong.stderr) == (
        f"fmnist: error: tracking server {team_server.uri} refused user 'admin' (wrong password, or no such "
        "user): check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials); "
        "nothing was computed")
    assert _runs(team_server, exp) == []


def test_read_edit_and_removed_users(team_server, real_data_dir, tmp_path, monkeypatch):
    exp = "accounts-lab"
    # The CLI in-process (a child process adds only start-up): its credentials come from the environment it is
    # given all the same. test_anonymous_and_wrong_password_are_refused_before_any_work runs fresh processes.
    editor = team_server.add_user("edith", (exp, "EDIT"))
    reader = team_server.add_user("ray", (exp, "READ"))
    env = fmnist_env(team_server.uri, exp, real_data_dir)
    as_editor, as_reader = team_server.as_user(env, "edith", editor), team_server.as_user(env, "ray", reader)

    # An EDIT user runs extract + classify + the report.
    ex = fmnist_here(["extract", "--feature", "raw", *COMMON], as_editor, tmp_path)
    assert ex.returncode == 0, ex.stderr[-3000:]
    cls = fmnist_here(["classify", "--feature", "raw", "--model", "lda", "--tune", "false", *COMMON], as_editor,
                      tmp_path)
    assert cls.returncode == 0, cls.stderr[-3000:]
    (classify_id,) = run_ids_in(cls.stderr)
    rep = fmnist_here(["report", "--experiment", exp, "--output", str(tmp_path / "report.html")], as_editor,
                      tmp_path)
    assert rep.returncode == 0, rep.stderr[-3000:]
    runs = _runs(team_server, exp)
    assert sorted(r.data.tags["fmnist.step"] for r in runs) == ["classify", "extract", "report"]
    # The EDIT user registers its model (grant gave it EDIT on the study's registered models too)
    reg = fmnist_here(["register", "--run", classify_id], as_editor, tmp_path)
    assert reg.returncode == 0, reg.stderr[-3000:]
    assert reg.stdout.startswith("fmnist-raw v") and f"run {classify_id}" in reg.stdout
    second = fmnist_here(["classify", "--feature", "raw", "--model", "svm", "--tune", "false", *COMMON],
                         as_editor, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    (second_id,) = run_ids_in(second.stderr)
    assert {r.info.status for r in runs} == {"FINISHED"}
    acc = next(r for r in runs if r.info.run_id == classify_id).data.metrics["test_accuracy"]

    # A READ user queries the report's tables in-process, but cannot create a run: one line, nothing written.
    import mlflow

    from fmnist import report

    with monkeypatch.context() as m:
        m.setenv("MLFLOW_TRACKING_USERNAME", "ray")
        m.setenv("MLFLOW_TRACKING_PASSWORD", reader)
        mlflow.set_tracking_uri(team_server.uri)
        try:
            assert report.comparison_table(experiment=exp, percent=False).loc["lda", "raw"] == acc
        finally:
            mlflow.set_tracking_uri(None)
    denied = fmnist_here(["classify", "--feature", "raw", "--model", "logreg", "--tune", "false", *COMMON], as_reader,
                    tmp_path)
    assert denied.returncode == 1
    assert _one_line(denied.stderr).startswith(
        f"fmnist: error: permission denied on experiment {exp} for user 'ray': it needs EDIT there to write runs; "
        f"an admin can grant it: scripts/team_server.sh grant ray {exp} EDIT")
    refused = fmnist_here(["register", "--run", second_id], as_reader, tmp_path)
    assert refused.returncode == 1
    assert _one_line(refused.stderr).startswith(
        "fmnist: error: permission denied on registered model fmnist-raw for user 'ray': it needs EDIT there")
    assert len(_runs(team_server, exp)) == 4

    # No password is in any run's params or tags (workers and steps get credentials from the environment).
    for r in _runs(team_server, exp):
        for value in [*r.data.params.values(), *r.data.tags.values()]:
            assert editor not in value and reader not in value and team_server.admin[1] not in value

    # The admin removes the reader: it is refused from then on.
    gone = _script(team_server, "user", "remove", "ray")
    assert gone.returncode == 0 and "user 'ray' removed" in gone.stderr, gone.stderr
    assert http_status(team_server.uri + SEARCH, ("ray", reader), 10) == 401
    after = fmnist_here(["classify", "--feature", "raw", "--model", "lda", *COMMON], as_reader, tmp_path)
    assert after.returncode == 1 and "refused user 'ray' (wrong password, or no such user)" in _one_line(after.stderr)


def test_mlflow_run_with_an_account(team_server, real_data_dir, tmp_path):
    """`mlflow run` takes the same variables: an EDIT user's run is recorded as that user; a READ user's is refused."""
    import sys

    exp = "accounts-mlflow-run"
    writer = team_server.add_user("mira", (exp, "EDIT"))
    looker = team_server.add_user("lou", (exp, "READ"))
    root = Path(__file__).resolve().parent.parent
    cmd = [str(Path(sys.executable).parent / "mlflow"), "run", str(root), "-e", "extract", "--env-manager", "local",
           "--experiment-name", exp, "-P", "feature=raw", "-P", "subset=150", "-P", "seed=21"]
    env = fmnist_env(team_server.uri, exp, real_data_dir)
    ok = subprocess.run(cmd, env=team_server.as_user(env, "mira", writer), cwd=tmp_path, capture_output=True,
                        text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr[-3000:]
    (run,) = _runs(team_server, exp)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.user"] == "mira"
    assert run.data.tags["mlflow.project.entryPoint"] == "extract"
    refused = subprocess.run(cmd, env=team_server.as_user(env, "lou", looker), cwd=tmp_path, capture_output=True,
                             text=True, timeout=600)
    assert refused.returncode != 0 and "403" in refused.stderr  # MLflow's launcher itself is refused
    assert len(_runs(team_server, exp)) == 1


def test_admin_commands_fail_in_one_line(team_server):
    team_server.add_user("dup")
    again = _script(team_server, "user", "add", "dup")
    assert again.returncode == 1
    assert again.stderr.strip() == f"fmnist.server: error: user 'dup' already exists on {team_server.uri}"
    nobody = _script(team_server, "grant", "no-such-user", "accounts-lab", "READ")
    assert nobody.returncode == 1 and nobody.stderr.strip().startswith(
        f"fmnist.server: error: no user 'no-such-user' on {team_server.uri}; add it first")
    bad = _script(team_server, "grant", "dup", "accounts-lab", "ADMIN")
    assert bad.returncode == 2 and "'ADMIN' is not one of" in bad.stderr
    assert _script(team_server, "user", "remove", "dup").returncode == 0
    missing = _script(team_server, "user", "remove", "dup")
    assert missing.returncode == 1 and missing.stderr.strip() == f"fmnist.server: error: no user 'dup' on {team_server.uri}"


def test_a_new_user_sees_nothing_until_granted(team_server):
    from mlflow import MlflowClient

    MlflowClient(team_server.uri).create_experiment("accounts-private")  # as the admin
    password = team_server.add_user("newbie")
    url = team_server.uri + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=accounts-private"
    assert http_status(url, ("newbie", password), 10) == 403  # default permission: NO_PERMISSIONS
    g = _script(team_server, "grant", "newbie", "accounts-private", "READ")
    assert g.returncode == 0 and "newbie has READ on experiment accounts-private" in g.stderr, g.stderr
    assert http_status(url, ("newbie", password), 10) == 200


def test_no_auth_keeps_to_loopback(tmp_path):
    p = subprocess.run([str(SCRIPT), "start", "--no-auth", "--host", "0.0.0.0", "--dir", str(tmp_path / "s")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.strip() == (
        "fmnist.server: error: --no-auth serves whoever reaches the port, so it listens on loopback only, not "
        "--host 0.0.0.0; drop --no-auth to open the server with accounts")
    assert not (tmp_path / "s").exists()  # refused before anything was made


def test_beyond_loopback_says_once_that_it_is_plain_http(tmp_path, monkeypatch):
    """The start command's notice (the server itself is not started: tests listen on loopback only)."""
    from click.testing import CliRunner

    from fmnist import server

    def fake_start(**kw):
        return server.ServerState(str(tmp_path), kw["host"], kw["port"], 1, str(tmp_path), str(tmp_path), 1, 0.0,
                                  kw["auth"], "admin")

    monkeypatch.setattr(server, "start", fake_start)
    out = CliRunner().invoke(server.cli, ["start", "--host", "0.0.0.0", "--port", "5050", "--dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    notes = [ln for ln in out.stderr.splitlines() if "plain HTTP" in ln]
    assert len(notes) == 1 and "TLS" in notes[0] and "docs/team-server.md" in notes[0]
    loop = CliRunner().invoke(server.cli, ["start", "--dir", str(tmp_path)])
    assert loop.exit_code == 0 and "plain HTTP" not in loop.stderr


def test_tls_in_front_with_caddy(team_server, real_data_dir, tmp_path):
    """docs/team-server.md's reverse proxy: Caddy terminates TLS (its own CA) and forwards to the loopback server."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy not installed (Debian: apt-get install caddy; .ci/run installs it)")
    from mlflow import MlflowClient

    from fmnist.server import free_port

    port, srv_port = free_port(), team_server.uri.rsplit(":", 1)[1]
    (tmp_path / "Caddyfile").write_text(
        "{\n admin off\n skip_install_trust\n auto_https disable_redirects\n"
        f" http_port {free_port()}\n}}\n"
        f"https://127.0.0.1:{port} {{\n tls internal\n"
        f" reverse_proxy 127.0.0.1:{srv_port} {{\n  header_up Host {{upstream_hostport}}\n }}\n}}\n")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    log = open(tmp_path / "caddy.log", "wb")
    proc = subprocess.Popen([caddy, "run", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    root = tmp_path / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    https = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not (root.exists() and http_status(https + "/health", None, 2, cafile=str(root)) == 200):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "caddy.log").read_text()[-2000:]
            time.sleep(0.3)
        exp = "accounts-tls"
        password = team_server.add_user("tls-user", (exp, "EDIT"))
        client_env = team_server.as_user(fmnist_env(https, exp, real_data_dir), "tls-user", password)
        untrusted = fmnist(["extract", "--feature", "raw", "--subset", "120", "--seed", "13", "--no-progress"],
                           client_env, tmp_path)
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in _one_line(untrusted.stderr)
        client_env["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(root)
        ex = fmnist(["extract", "--feature", "raw", "--subset", "120", "--seed", "13", "--no-progress"], client_env,
                    tmp_path)
        assert ex.returncode == 0, ex.stderr[-3000:]
        (run_id,) = run_ids_in(ex.stderr)
        run = MlflowClient(team_server.uri).get_run(run_id)  # the same run, seen on loopback as the admin
        assert run.info.status == "FINISHED" and run.info.user_id == "tls-user"
        assert "features.npz" in {a.path for a in MlflowClient(team_server.uri).list_artifacts(run_id)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
