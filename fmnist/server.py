"""A team tracking server: a private PostgreSQL cluster on loopback plus ``mlflow server`` with proxied artifacts,
with MLflow's ``basic-auth`` app (accounts, per-experiment permissions) unless ``--no-auth``.

    python -m fmnist.server start     # prints `export MLFLOW_TRACKING_URI=http://127.0.0.1:5050`
    python -m fmnist.server user add NAME | user remove NAME | grant NAME EXPERIMENT READ|EDIT|MANAGE
    python -m fmnist.server status
    python -m fmnist.server stop [--purge]

State (ports, pids, the generated database and admin passwords) lives in ``--dir`` (default ``.fmnist/server``);
the cluster in ``<dir>/pg`` and artifacts in ``<dir>/artifacts`` unless told otherwise. MLflow runs as
the ``mlflow`` CLI in a subprocess; accounts go through ``fmnist.tracking.accounts`` (only ``fmnist.tracking``
imports mlflow).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from .data import dataset_names
from .errors import FmnistError
from .liveness import health_problem, pid_alive

DEFAULT_DIR = ".fmnist/server"
DEFAULT_PORT = 5050
DEFAULT_PG_PORT = 55432
DB_USER = "fmnist"
DB_NAME = "mlflow"
AUTH_DB_NAME = "mlflow_auth"  # basic-auth's users and permissions, in the same PostgreSQL cluster
ADMIN_USER = "admin"
STATE_FILE = "server.json"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# What a user gets on an experiment nobody granted them anything on: nothing, so access is per experiment.
DEFAULT_PERMISSION = "NO_PERMISSIONS"
PERMISSIONS = ("NO_PERMISSIONS", "READ", "USE", "EDIT", "MANAGE")  # MLflow's levels, weakest first


class ServerError(FmnistError):
    """The team server could not be started, reached or stopped."""


@dataclass
class ServerState:
    dir: str
    host: str
    port: int
    pg_port: int
    pg_dir: str
    artifacts: str
    mlflow_pid: int
    started: float
    auth: bool = False  # state files written before accounts existed had none
    admin_user: str = ""

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pgdata(self) -> Path:
        return Path(self.pg_dir) / "data"


# ------------------------------------------------------------------------------------------ helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def pg_bindir() -> Path:
    """PostgreSQL's server binaries: ``$FMNIST_PG_BINDIR``, else Debian's newest ``/usr/lib/postgresql/N/bin``."""
    env = os.environ.get("FMNIST_PG_BINDIR")
    candidates = [Path(env)] if env else []
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name), reverse=True)
    candidates += debian
    which = shutil.which("initdb")
    if which:
        candidates.append(Path(which).resolve().parent)
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists():
            return c
    raise ServerError("PostgreSQL not found (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH); "
                      "install it (Debian: apt-get install postgresql) or set FMNIST_PG_BINDIR")


def _version(name: str) -> tuple:
    return tuple(int(x) for x in name.split(".") if x.isdigit())


def _mlflow_exe() -> str:
    exe = Path(sys.executable).parent / "mlflow"
    return str(exe) if exe.exists() else (shutil.which("mlflow") or "mlflow")


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` system user."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerError("running as root but there is no 'postgres' user to run PostgreSQL as") from None
    return ["runuser", "-u", "postgres", "--", *cmd]


def _run(cmd: list[str], *, env: dict | None = None, timeout: float = 120, log: Path | None = None) -> str:
    """Run a command; a failure is one line naming the program, with its last words (and its log's)."""
    name = Path(cmd[4] if cmd[0] == "runuser" else cmd[0]).name
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ServerError(f"{name} timed out after {timeout:.0f}s" + (f": {_tail(log, 2)}" if log else "")) from None
    if p.returncode != 0:
        last = (p.stderr.strip() or p.stdout.strip()).splitlines()[-1:] or [""]
        raise ServerError(f"{name} failed: {last[0]}" + (f" ({log.name}: {_tail(log, 2)})" if log else ""))
    return p.stdout


def _tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return ""


def _pg_env(password: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = password
    return env


# --------------------------------------------------------------------------------------- postgres


def _secret(state_dir: Path, name: str) -> str:
    """A secret generated once and kept owner-only in the state folder (created 0600, never widened)."""
    f = state_dir / name
    if not f.exists():
        f.touch(mode=0o600)
        f.write_text(secrets.token_urlsafe(24))
    return f.read_text().strip()


def _password(state_dir: Path) -> str:
    """The database password."""
    return _secret(state_dir, "pg.password")


def admin_password(state_dir: str | os.PathLike = DEFAULT_DIR) -> str:
    """The basic-auth admin's password (``<dir>/admin.password``), generated on the first start with accounts."""
    f = Path(state_dir).resolve() / "admin.password"
    if not f.exists():
        raise ServerError(f"no admin password in {f.parent} (the server was never started with accounts there)")
    return f.read_text().strip()


def backend_uri(pg_port: int, db: str = DB_NAME) -> str:
    """The store URI, without the password: libpq reads it from ``PGPASSFILE`` (a URI shows in ``ps``)."""
    # psycopg 3 (the `server` extra's psycopg[binary]), named: plain postgresql:// means psycopg2 before SQLAlchemy 2.1.
    return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{pg_port}/{db}"


def _pgpass(state_dir: Path, pg_port: int) -> Path:
    """A libpq password file (owner-only, or libpq ignores it) for the server's database connections."""
    f = state_dir / "pgpass"
    f.unlink(missing_ok=True)
    f.touch(mode=0o600)
    f.write_text("".join(f"127.0.0.1:{pg_port}:{db}:{DB_USER}:{_password(state_dir)}\n"
                         for db in (DB_NAME, AUTH_DB_NAME)))
    return f


def start_postgres(state_dir: Path, pg_dir: Path, pg_port: int) -> None:
    """initdb on first use, then start the cluster on 127.0.0.1:``pg_port`` and create the database."""
    bindir = pg_bindir()
    password = _password(state_dir)
    pg_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(pg_dir, pw.pw_uid, pw.pw_gid)
        pg_dir.chmod(0o700)
        if subprocess.run(_as_postgres(["test", "-w", str(pg_dir)])).returncode != 0:
            raise ServerError(f"the postgres user cannot write {pg_dir} (a parent folder is private?); "
                              f"pass --pg-dir somewhere it can reach, e.g. /var/tmp/fmnist-pg")
    pgdata = pg_dir / "data"
    if not (pgdata / "PG_VERSION").exists():
        # initdb reads the superuser's password from a file: a private one in the cluster folder, removed after.
        pwfile = pg_dir / ".initdb-pw"
        pwfile.touch(mode=0o600)
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        try:
            _run(_as_postgres([str(bindir / "initdb"), "-D", str(pgdata), "-U", DB_USER, f"--pwfile={pwfile}",
                               "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8",
                               "--no-locale"]))
        finally:
            pwfile.unlink(missing_ok=True)
    if _port_in_use("127.0.0.1", pg_port):
        raise ServerError(f"port {pg_port} on 127.0.0.1 is already in use; choose another with --pg-port")
    # TCP on loopback only; no Unix socket (its path length and folder permissions vary by machine).
    opts = f"-c listen_addresses=127.0.0.1 -c port={pg_port} -c unix_socket_directories='' -c max_connections=100"
    log = pg_dir / "postgres.log"
    _run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-w", "-t", "60", "-o", opts,
                       "start"]), timeout=90, log=log)
    psql = [str(bindir / "psql") if (bindir / "psql").exists() else "psql",
            "-h", "127.0.0.1", "-p", str(pg_port), "-U", DB_USER, "-d", "postgres", "-tA", "-v", "ON_ERROR_STOP=1"]
    env = _pg_env(password)
    for db in (DB_NAME, AUTH_DB_NAME):
        if _run([*psql, "-c", f"select 1 from pg_database where datname = '{db}'"], env=env).strip() != "1":
            _run([*psql, "-c", f"create database {db}"], env=env)


def stop_postgres(pg_dir: Path) -> None:
    pgdata = pg_dir / "data"
    if not (pgdata / "postmaster.pid").exists():
        return
    _run(_as_postgres([str(pg_bindir() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "-t", "60", "stop"]),
         timeout=90)


# ----------------------------------------------------------------------------------------- mlflow


def _healthy(uri: str, timeout: float = 2.0) -> bool:
    return health_problem(uri, timeout) is None


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def _auth_config(d: Path, pg_port: int, default_permission: str) -> Path:
    """basic-auth's ini, written on every start (owner-only): its users live in PostgreSQL, not the cwd."""
    f = d / "basic_auth.ini"
    f.unlink(missing_ok=True)
    f.touch(mode=0o600)
    # The admin's password is not in here: it reaches the server in its environment (MLFLOW_AUTH_ADMIN_PASSWORD),
    # from the one file that holds it. MLflow reads it only to create the admin on an empty user store.
    f.write_text("[mlflow]\n"
                 f"default_permission = {default_permission}\n"
                 f"database_uri = {backend_uri(pg_port, AUTH_DB_NAME)}\n"
                 f"admin_username = {ADMIN_USER}\n"
                 # fmnist.tracking.server_auth: hashes each password once per process, not on every request
                 "authorization_function = fmnist.tracking.server_auth:authenticate\n")
    return f


def _auth_env(d: Path, pg_port: int, default_permission: str) -> dict[str, str]:
    return {"MLFLOW_AUTH_CONFIG_PATH": str(_auth_config(d, pg_port, default_permission)),
            "MLFLOW_AUTH_ADMIN_PASSWORD": _secret(d, "admin.password"),
            # Flask's CSRF key: one value for every worker process, kept across restarts.
            "MLFLOW_FLASK_SERVER_SECRET_KEY": _secret(d, "flask.secret")}


def start(*, state_dir: str | os.PathLike = DEFAULT_DIR, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          pg_port: int = DEFAULT_PG_PORT, pg_dir: str | os.PathLike | None = None,
          artifacts: str | os.PathLike | None = None, workers: int = 2, auth: bool = True,
          default_permission: str = DEFAULT_PERMISSION, allowed_hosts: str = "",
          timeout: float = 180) -> ServerState:
    """Start PostgreSQL and ``mlflow server`` (proxied artifacts; basic-auth unless ``auth=False``), wait for
    ``/health``; return the state."""
    if not auth and not is_loopback(host):
        raise ServerError(f"--no-auth serves whoever reaches the port, so it listens on loopback only, not "
                          f"--host {host}; drop --no-auth to open the server with accounts")
    if default_permission not in PERMISSIONS:
        raise ServerError(f"unknown default permission {default_permission!r}; choose one of {', '.join(PERMISSIONS)}")
    d = Path(state_dir).resolve()
    d.mkdir(parents=True, exist_ok=True)
    if (d / STATE_FILE).exists():
        old = load_state(d)
        if pid_alive(old.mlflow_pid) and _healthy(old.tracking_uri):
            raise ServerError(f"already running at {old.tracking_uri} (pid {old.mlflow_pid}); stop it first")
        stop(state_dir=d)  # stale state from a crash: clean up before starting again
    pg = Path(pg_dir).resolve() if pg_dir else d / "pg"
    art = Path(artifacts).resolve() if artifacts else d / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    if _port_in_use(host, port):
        raise ServerError(f"port {port} on {host} is already in use; choose another with --port")
    try:
        start_postgres(d, pg, pg_port)
    except BaseException:
        stop_postgres(pg)  # started but the database could not be created: leave nothing running
        raise
    cmd = [_mlflow_exe(), "server", "--backend-store-uri", backend_uri(pg_port),
           "--artifacts-destination", str(art), "--serve-artifacts", "--host", host, "--port", str(port),
           "--workers", str(workers)]
    if auth:
        cmd += ["--app-name", "basic-auth"]
    if allowed_hosts:  # MLflow's own default: localhost and private IP addresses; loopback stays allowed
        cmd += ["--allowed-hosts", ",".join([allowed_hosts, "localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"])]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_AUTH_")}
    env["PGPASSFILE"] = str(_pgpass(d, pg_port))
    if auth:
        env.update(_auth_env(d, pg_port, default_permission))
    # The job runner (8 worker processes) serves GenAI features this study does not use.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    log = open(d / "mlflow.log", "ab")
    try:
        # Its own session: stop() ends the server and its workers as one process group.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=d, env=env)
    except BaseException:
        stop_postgres(pg)
        raise
    finally:
        log.close()
    state = ServerState(str(d), host, port, pg_port, str(pg), str(art), proc.pid, time.time(), auth,
                        ADMIN_USER if auth else "")
    (d / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
    deadline = time.monotonic() + timeout
    while not _healthy(state.tracking_uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"exited with {proc.returncode}" if proc.poll() is not None else f"not healthy after {timeout:.0f}s"
            stop(state_dir=d)
            raise ServerError(f"mlflow server {why}: {_tail(d / 'mlflow.log', 3)}")
        time.sleep(0.5)
    return state


def load_state(state_dir: str | os.PathLike = DEFAULT_DIR) -> ServerState:
    f = Path(state_dir).resolve() / STATE_FILE
    if not f.exists():
        raise ServerError(f"no server state in {f.parent} (not started, or already stopped)")
    return ServerState(**json.loads(f.read_text()))


def stop(*, state_dir: str | os.PathLike = DEFAULT_DIR, purge: bool = False, timeout: float = 30) -> bool:
    """Stop ``mlflow server`` (its process group) and PostgreSQL; ``purge`` also deletes the data and artifacts.

    Returns False when nothing was running.
    """
    d = Path(state_dir).resolve()
    try:
        st = load_state(d)
    except ServerError:
        return False
    if pid_alive(st.mlflow_pid):
        try:
            os.killpg(st.mlflow_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while pid_alive(st.mlflow_pid) and time.monotonic() < deadline:
            _reap(st.mlflow_pid)
            time.sleep(0.2)
        if pid_alive(st.mlflow_pid):
            try:
                os.killpg(st.mlflow_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(st.mlflow_pid)
    stop_postgres(Path(st.pg_dir))
    (d / STATE_FILE).unlink(missing_ok=True)
    if purge:
        shutil.rmtree(st.pg_dir, ignore_errors=True)
        shutil.rmtree(st.artifacts, ignore_errors=True)
        for name in ("pg.password", "pgpass", "admin.password", "flask.secret", "basic_auth.ini"):
            (d / name).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (started by another process): nothing to reap


def status(state_dir: str | os.PathLike = DEFAULT_DIR) -> dict:
    st = load_state(state_dir)
    return {"tracking_uri": st.tracking_uri, "mlflow_pid": st.mlflow_pid, "mlflow_alive": pid_alive(st.mlflow_pid),
            "healthy": _healthy(st.tracking_uri), "pg_port": st.pg_port,
            "postgres_running": (st.pgdata / "postmaster.pid").exists(), "artifacts": st.artifacts,
            "accounts": f"basic-auth (admin {st.admin_user}, password in {Path(st.dir) / 'admin.password'})"
            if st.auth else "none (--no-auth: loopback only)"}


# -------------------------------------------------------------------------------------------- CLI

_dir_option = click.option("--dir", "state_dir", default=lambda: os.environ.get("FMNIST_SERVER_DIR", DEFAULT_DIR),
                           show_default=f"$FMNIST_SERVER_DIR or {DEFAULT_DIR}", help="State folder.")


@click.group()
def cli() -> None:
    """The team tracking server (PostgreSQL + mlflow server, with accounts unless --no-auth)."""


@cli.command("start")
@_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address mlflow server listens on.")
@click.option("--port", type=int, default=lambda: int(os.environ.get("FMNIST_SERVER_PORT", DEFAULT_PORT)),
              show_default=f"$FMNIST_SERVER_PORT or {DEFAULT_PORT}", help="mlflow server port.")
@click.option("--pg-port", type=int, default=lambda: int(os.environ.get("FMNIST_PG_PORT", DEFAULT_PG_PORT)),
              show_default=f"$FMNIST_PG_PORT or {DEFAULT_PG_PORT}", help="PostgreSQL port (127.0.0.1 only).")
@click.option("--pg-dir", default="", help="PostgreSQL cluster folder [default: <dir>/pg].")
@click.option("--artifacts", default="", help="Artifact store folder the server proxies [default: <dir>/artifacts].")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="mlflow server workers.")
@click.option("--no-auth", is_flag=True, help="No accounts: anyone who reaches the port reads and writes "
              "everything, so only with a loopback --host.")
@click.option("--default-permission", type=click.Choice(PERMISSIONS), default=DEFAULT_PERMISSION, show_default=True,
              help="What a user may do on an experiment nobody granted them anything on.")
@click.option("--allowed-hosts", default="", help="Host headers the server answers, comma-separated (MLflow's "
              "default: localhost and private IPs); add the name colleagues use, e.g. lab-box,lab-box:5050.")
def _start(state_dir, host, port, pg_port, pg_dir, artifacts, workers, no_auth, default_permission,
           allowed_hosts) -> None:
    """Start PostgreSQL and mlflow server; print the MLFLOW_TRACKING_URI export line."""
    t0 = time.perf_counter()
    st = start(state_dir=state_dir, host=host, port=port, pg_port=pg_port, pg_dir=pg_dir or None,
               artifacts=artifacts or None, workers=workers, auth=not no_auth,
               default_permission=default_permission, allowed_hosts=allowed_hosts)
    click.echo(f"[fmnist] tracking server healthy at {st.tracking_uri} (PostgreSQL on 127.0.0.1:{st.pg_port}, "
               f"artifacts in {st.artifacts}) in {time.perf_counter() - t0:.1f}s", err=True)
    if st.auth:
        click.echo(f"[fmnist] accounts on (basic-auth): admin user '{st.admin_user}', its password in "
                   f"{Path(st.dir) / 'admin.password'} (owner-only); add users with "
                   f"`scripts/team_server.sh user add NAME`", err=True)
    click.echo(f"[fmnist] MLflow UI: open {_runs_link(st)}", err=True)
    if not is_loopback(host):
        click.echo(f"[fmnist] note: the server speaks plain HTTP on {host}:{port}: passwords and results cross "
                   "the network readable by anyone on the path; put TLS in front (a reverse proxy such as Caddy, "
                   "or an SSH tunnel: docs/team-server.md, \"TLS in front\")", err=True)
    click.echo(f"export MLFLOW_TRACKING_URI={st.tracking_uri}")


def _runs_link(st) -> str:
    """The UI's link to the experiment's runs table (its experiments list until the experiment exists)."""
    from .envvars import environ
    from .tracking import runs_table_url
    from .tracking.accounts import PASSWORD_VAR, USER_VAR

    # One quick try: MLflow's client would otherwise retry with backoff for minutes.
    env = {"MLFLOW_TRACKING_URI": st.tracking_uri, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    try:
        if st.auth:
            env |= {USER_VAR: st.admin_user, PASSWORD_VAR: admin_password(st.dir)}
        with environ(env):
            return runs_table_url(st.tracking_uri)
    except Exception:  # a link is a courtesy: never fail a healthy start over it
        return f"{st.tracking_uri}/#/experiments"


def _admin(state_dir) -> tuple[str, object]:
    """The running server's URI and its admin's credentials, from the state folder."""
    from .tracking.accounts import Credentials

    st = load_state(state_dir)
    if not st.auth:
        raise ServerError(f"the server at {st.tracking_uri} runs without accounts (--no-auth); restart it "
                          "without --no-auth to manage users")
    return st.tracking_uri, Credentials(st.admin_user, admin_password(st.dir))


@cli.group("user")
def _user() -> None:
    """Accounts on the server (as its admin, through MLflow's auth REST API)."""


@_user.command("add")
@_dir_option
@click.argument("name")
def _user_add(state_dir, name) -> None:
    """Create user NAME with a generated password, shown once (as export lines for that user's shell)."""
    from .tracking import accounts

    uri, admin = _admin(state_dir)
    password = secrets.token_urlsafe(18)
    accounts.add_user(uri, admin, name, password)
    click.echo(f"[fmnist] user '{name}' created; this is the only time its password is shown: pass it on "
               f"privately. It can read and write nothing until granted: "
               f"scripts/team_server.sh grant {name} EXPERIMENT READ|EDIT|MANAGE", err=True)
    click.echo(f"export MLFLOW_TRACKING_URI={uri}\nexport MLFLOW_TRACKING_USERNAME={name}\n"
               f"export MLFLOW_TRACKING_PASSWORD={password}")


@_user.command("remove")
@_dir_option
@click.argument("name")
def _user_remove(state_dir, name) -> None:
    """Delete user NAME (its runs stay; it can no longer log in)."""
    from .tracking import accounts

    uri, admin = _admin(state_dir)
    accounts.remove_user(uri, admin, name)
    click.echo(f"[fmnist] user '{name}' removed", err=True)


@cli.command("grant")
@_dir_option
@click.argument("name")
@click.argument("experiment")
@click.argument("level", type=click.Choice(PERMISSIONS, case_sensitive=False))
@click.option("--dataset", "datasets", multiple=True, default=("fashion-mnist",), show_default=True,
              type=click.Choice(dataset_names()),
              help="Also LEVEL on this dataset's registered models (repeatable): fmnist-<feature> for "
                   "fashion-mnist, <dataset>-<feature> for the others.")
def _grant(state_dir, name, experiment, level, datasets) -> None:
    """Give user NAME LEVEL on EXPERIMENT (created, empty, if it does not exist yet) and on the study's
    registered models of each --dataset (fmnist-<feature>, fmnist-finetune for Fashion-MNIST)."""
    from .tracking import accounts

    from .steps.register import model_names

    uri, admin = _admin(state_dir)
    models = tuple(model_names(datasets))
    exp_id, created = accounts.grant(uri, admin, name, experiment, level.upper(), models=models)
    click.echo(f"[fmnist] {name} has {level.upper()} on experiment {experiment} (id {exp_id}"
               f"{', created now' if created else ''}) and on the registered models {', '.join(models)}", err=True)


@cli.command("stop")
@_dir_option
@click.option("--purge", is_flag=True, help="Also delete the database cluster and the artifacts.")
def _stop(state_dir, purge) -> None:
    """Stop mlflow server and PostgreSQL."""
    click.echo("[fmnist] stopped" if stop(state_dir=state_dir, purge=purge) else "[fmnist] not running", err=True)


@cli.command("status")
@_dir_option
def _status(state_dir) -> None:
    """Print the server's state; exit 1 unless it is healthy."""
    s = status(state_dir)
    for k, v in s.items():
        click.echo(f"{k}: {v}")
    if not s["healthy"]:
        raise SystemExit(1)


def main() -> None:
    # Not fmnist.cli.run_cli: that imports every command (torch...), seconds of start-up for a launcher.
    try:
        cli.main(prog_name="python -m fmnist.server", standalone_mode=False)
    except click.ClickException as e:
        click.echo(f"fmnist.server: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code or 2)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("fmnist.server: error: interrupted", err=True)
        sys.exit(130)
    except FmnistError as e:
        click.echo(f"fmnist.server: error: {' '.join(str(e).split())}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
