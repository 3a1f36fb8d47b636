"""Helpers for tests that run the ``fmnist`` CLI against real tracking stores: sqlite and the team server.

The team server (PostgreSQL + ``mlflow server``) is started once per session by the ``team_server`` fixture
in conftest.py, so every module that asks for it pays its start-up once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCRIPT = ROOT / "scripts" / "team_server.sh"
RUN_ID = re.compile(r"\(run ([0-9a-f]{32})\)")


def fmnist_env(tracking_uri: str, experiment: str, data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_EXPERIMENT_NAME": experiment,
           "FMNIST_DATA_DIR": str(data_dir), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONUNBUFFERED": "1"}
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        env.pop(var, None)
    return env


def fmnist(args: list[str], env: dict, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the ``fmnist`` CLI to completion."""
    return subprocess.run([str(BIN / "fmnist"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def fmnist_here(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """``fmnist(args, env, cwd)`` in this process: the CLI's entry function with ``env`` as the environment,
    for checks where a child process would add only its start-up (seconds of imports). Its stderr is what
    the child's would be; MLflow's global client state is reset afterwards."""
    import contextlib
    import io
    import signal

    import mlflow
    import mlflow.tracking._tracking_service.utils as tracking_utils
    import mlflow.tracking.fluent as fluent

    from fmnist.cli import cli, run_cli

    out, err = io.StringIO(), io.StringIO()
    sigterm = signal.getsignal(signal.SIGTERM)
    with pytest.MonkeyPatch.context() as m:
        for k in set(os.environ) - set(env):
            m.delenv(k)
        for k, v in env.items():
            m.setenv(k, v)
        m.chdir(cwd)
        # As a new process: the URI from the environment. (mlflow.set_tracking_uri(None) would also unset
        # MLFLOW_TRACKING_URI, sending the CLI to ./mlflow.db.) Restored with the environment on exit.
        m.setattr(tracking_utils, "_tracking_uri", None)
        m.setattr(fluent, "_active_experiment_id", None)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    run_cli(cli, args, prog_name="fmnist")
                    code = 0
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            while mlflow.active_run():
                mlflow.end_run()
            signal.signal(signal.SIGTERM, sigterm)
    return subprocess.CompletedProcess(["fmnist", *args], code, out.getvalue(), err.getvalue())


def fmnist_at_once(commands: list[list[str]], env: dict | list[dict], cwd: Path, timeout: float = 300) -> list[dict]:
    """Start every command (each with its own ``env`` when given a list) before waiting for any; return
    rc/stdout/stderr/seconds for each."""
    t0 = time.perf_counter()
    envs = env if isinstance(env, list) else [env] * len(commands)
    procs = [subprocess.Popen([str(BIN / "fmnist"), *args], env=e, cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args, e in zip(commands, envs)]
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
            out.append({"rc": p.returncode, "stdout": stdout, "stderr": stderr,
                        "seconds": time.perf_counter() - t0})
    finally:
        for p in procs:  # a timeout above: no orphan keeps writing to the store
            if p.poll() is None:
                p.kill()
                p.wait(10)
    return out


def run_ids_in(stderr: str) -> list[str]:
    """The run ids a step reported in its log lines (``... (run <id>)``)."""
    return RUN_ID.findall(stderr)


# ------------------------------------------------------------------------------------- team server


def postgres_missing() -> str | None:
    """Why the team server cannot start here, or None."""
    from fmnist.errors import FmnistError
    from fmnist.server import pg_bindir

    try:
        pg_bindir()
    except FmnistError as e:
        return str(e)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    return None


CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@dataclass
class TeamServer:
    uri: str
    state_dir: Path
    artifacts: Path
    start_seconds: float
    start_output: str
    admin: tuple[str, str]  # (username, password) of basic-auth's admin, from the state folder

    def as_user(self, env: dict, username: str, password: str) -> dict:
        """``env`` with this user's credentials instead of whatever it had."""
        return {**env, "MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}

    def add_user(self, name: str, *grants: tuple[str, str]) -> str:
        """Create ``name``, grant it (experiment, level) pairs; return its password. The admin commands run
        in-process (``python -m fmnist.server``'s click group): the script's own start-up is tested once, in
        tests/test_accounts.py, and costs seconds a call."""
        out = self.admin_command("user", "add", name)
        exports = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines())
        assert exports["MLFLOW_TRACKING_USERNAME"] == name and exports["MLFLOW_TRACKING_URI"] == self.uri
        for experiment, level in grants:
            self.admin_command("grant", name, experiment, level)
        return exports["MLFLOW_TRACKING_PASSWORD"]

    def admin_command(self, *args: str):
        """``scripts/team_server.sh ARGS --dir <state>``, run in this process; fails the test unless it succeeds."""
        from click.testing import CliRunner

        from fmnist import server

        out = CliRunner().invoke(server.cli, [*args, "--dir", str(self.state_dir)], catch_exceptions=False)
        assert out.exit_code == 0, out.stderr
        return out


def start_team_server(tmp_root: Path) -> TeamServer:
    """Start PostgreSQL + mlflow server through scripts/team_server.sh on free loopback ports."""
    why = postgres_missing()
    if why:
        pytest.skip(f"team server tests need PostgreSQL: {why}")
    from fmnist.server import free_port

    state = tmp_root / "team-server"
    # As root the cluster belongs to the postgres user: it needs a folder it can reach, and pytest's
    # tmp folders are private (0700), so the cluster goes in its own /tmp folder.
    pg_dir = Path(tempfile.mkdtemp(prefix="fmnist-test-pg-"))
    port, pg_port = free_port(), free_port()
    t0 = time.perf_counter()
    p = subprocess.run([str(SCRIPT), "start", "--dir", str(state), "--port", str(port), "--pg-port",
                        str(pg_port), "--pg-dir", str(pg_dir), "--workers", "2"],
                       capture_output=True, text=True, timeout=240)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        subprocess.run([str(SCRIPT), "stop", "--dir", str(state), "--purge"], capture_output=True, timeout=120)
        raise RuntimeError(f"team server did not start: {p.stderr[-2000:]}")
    uri = p.stdout.strip().removeprefix("export MLFLOW_TRACKING_URI=")
    admin = ("admin", (state / "admin.password").read_text().strip())
    return TeamServer(uri, state, state / "artifacts", seconds, p.stdout + p.stderr, admin)


def stop_team_server(srv: TeamServer) -> None:
    p = subprocess.run([str(SCRIPT), "stop", "--dir", str(srv.state_dir), "--purge"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_json(url: str, body) -> tuple[int, dict]:
    """POST ``body`` (JSON, or bytes as they are) to ``url``: (status, the JSON answer)."""
    import json
    import urllib.error
    import urllib.request

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as f:
            return f.status, json.loads(f.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@contextmanager
def serving(env: dict, spec: str, cwd: Path, timeout: float = 120) -> Iterator[str]:
    """``fmnist serve --model SPEC`` on a free loopback port until the block ends; yields its invocations URL."""
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([str(BIN / "fmnist"), "serve", "--model", spec, "--port", str(port)], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    proc.kill()
                    pytest.fail(f"fmnist serve did not come up:\n{proc.stdout.read()[-3000:]}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/invocations"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()

