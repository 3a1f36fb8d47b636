"""The study on an executor: serial and Ray (a local instance and a real two-node cluster), faults included.

Ray tests run the real ``fmnist`` CLI in a subprocess against real stores (sqlite, the PostgreSQL team server)
on the committed Fashion-MNIST slice. A test stops exactly the Ray processes it started.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fmnist.engine import Cell, Record, SerialExecutor
from golden import assert_golden
from stores import BIN, fmnist, fmnist_env

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.timeout(900)]

# A seed no other module uses: the team server is shared by the session and the cache spans experiments, so
# the cluster's cells must be computed here, not found in another test's runs.
STUDY = ["study", "--features", "raw", "--models", "lda,logreg", "--methods", "pca", "--finetune", "false",
         "--subset", "300", "--seeds", "11", "--weights", "none", "--device", "cpu", "--no-progress"]
DETERMINISTIC = {("classify", "raw/lda"), ("classify", "raw/logreg"), ("visualize", "raw/pca"),
                 ("shift", "classify:raw/lda"), ("shift", "classify:raw/logreg")}


# ----------------------------------------------------------------------------------- serial, unit


def test_serial_executor_skips_only_the_dependants_of_a_failed_cell():
    cells = [Cell("a", "a"), Cell("b", "b", after=("a",)), Cell("c", "c"), Cell("d", "d", after=("c",))]

    def work(cell, upstream):
        assert set(upstream) == set(cell.after)  # the records of what it waits for
        return Record("s", cell.payload, status="failed" if cell.id == "a" else "ran", error="boom")

    recs = SerialExecutor(progress=False).run(cells, work, lambda c, why: Record("s", c.payload, "skipped", error=why))
    assert [(r.cell, r.status) for r in recs] == [("a", "failed"), ("b", "skipped"), ("c", "ran"), ("d", "ran")]
    assert recs[1].error == "a failed"


def test_a_sigterm_python_swallowed_still_stops_the_plan_before_the_next_cell(monkeypatch):
    """A signal landing in a weakref callback (Bokeh's objects have them) has its exception printed and
    dropped: the flag the handler sets stops the plan at the next cell."""
    import gc
    import weakref

    from fmnist import signals

    monkeypatch.setattr(signals, "signalled", [])
    ran = []

    class Owner:
        pass

    def work(cell, upstream):
        ran.append(cell.id)
        ref = weakref.ref(owner := Owner(), lambda _: signals.on_sigterm(signal.SIGTERM, None))
        del owner  # its callback raises Terminated; Python prints "Exception ignored" and goes on
        gc.collect()
        assert ref() is None
        return Record("s", cell.payload, status="ran")

    cells = [Cell("a", "a"), Cell("b", "b")]
    with pytest.raises(signals.Terminated):
        SerialExecutor(progress=False).run(cells, work, lambda c, why: Record("s", c.payload, "skipped"))
    assert ran == ["a"] and signals.signalled == [signal.SIGTERM]


# ------------------------------------------------------------------------------------- helpers


def _store_runs(uri: str, experiment: str = "fmnist"):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def _cells(uri: str, experiment: str = "fmnist") -> dict:
    """(step, cell) -> (status, test_accuracy, knn_accuracy or shift/mean) from the newest study's steps.csv."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    (parent, *_) = [r for r in _store_runs(uri, experiment) if r.data.tags.get("fmnist.step") == "study"]
    path = client.download_artifacts(parent.info.run_id, "steps.csv")
    out = {}
    for row in pd.read_csv(path).itertuples():
        if row.step in ("report", "register"):
            continue
        m = client.get_run(row.run_id).data.metrics
        out[(row.step, row.cell)] = (row.status, m.get("test_accuracy", m.get("knn_accuracy", m.get("shift/mean"))),
                                     row.run_id)
    return out


def _env(uri: str, data_dir: Path, **extra) -> dict:
    env = fmnist_env(uri, "fmnist", data_dir)
    env.update({"FMNIST_OFFLINE": "1", "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "token", **extra})
    env.pop("RAY_ADDRESS", None)
    return env


RUNNING_WITH_PID = (
    "SELECT r.run_uuid, pid.value FROM runs r "
    "JOIN tags s ON s.run_uuid = r.run_uuid AND s.key = 'fmnist.step' "
    "JOIN tags pid ON pid.run_uuid = r.run_uuid AND pid.key = 'fmnist.pid' "
    "WHERE r.status = 'RUNNING' AND s.value = ?")


def _wait_for_running(uri: str, step: str, timeout: float = 240) -> tuple[str, int]:
    """(run id, pid) of the first RUNNING run of ``step`` in a sqlite store that a study is writing.

    Read-only sqlite queries, not an MLflow client: a client meeting a store still being created builds (or
    migrates) its schema itself, racing the study's own writer into "database is locked".
    """
    from contextlib import closing

    db = Path(uri.removeprefix("sqlite:///"))
    t0 = time.time()
    while time.time() - t0 < timeout:
        if db.exists():
            try:
                with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
                    row = c.execute(RUNNING_WITH_PID, (step,)).fetchone()
            except sqlite3.OperationalError:  # the schema is not there yet
                row = None
            if row:
                return row[0], int(row[1])
        time.sleep(0.5)
    raise AssertionError(f"no {step} run became RUNNING within {timeout}s")


# ----------------------------------------------------------------------------------- bad input


@pytest.mark.slow
def test_bad_executor_address_or_missing_ray_is_one_line_before_any_run(tmp_path, real_data_dir):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = _env(uri, real_data_dir)
    p = fmnist([*STUDY, "--executor", "dask"], env, tmp_path)
    assert p.returncode == 2 and "'dask' is not one of 'serial', 'ray'" in p.stderr
    p = fmnist([*STUDY, "--executor", "ray", "--ray-address", "127.0.0.1:9"], env, tmp_path)
    assert p.returncode == 1 and "Ray cluster at 127.0.0.1:9 does not answer" in p.stderr
    assert len([ln for ln in p.stderr.splitlines() if ln.startswith("fmnist: error:")]) == 1
    fake = tmp_path / "no-ray"
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")  # as if not installed
    p = fmnist([*STUDY, "--executor", "ray"], {**env, "PYTHONPATH": str(fake)}, tmp_path)
    assert p.returncode == 1 and "pip install -e '.[ray]'" in p.stderr
    assert _store_runs(uri) == []  # nothing opened


# ------------------------------------------------------------------------------- local Ray instance


@pytest.fixture(scope="module")
def serial_store(tmp_path_factory):
    """``STUDY`` run serially on sqlite, once: its store's URI."""
    from conftest import REAL_DATA

    d = tmp_path_factory.mktemp("serial-reference")
    uri = f"sqlite:///{d / 'serial.db'}"
    s = fmnist([*STUDY, "--report", "false"], _env(uri, REAL_DATA), d)
    assert s.returncode == 0, s.stderr[-3000:]
    assert_golden("study-serial-cli", uri)
    return uri


@pytest.fixture(scope="module")
def serial_reference(serial_store):
    """The cells every Ray run of ``STUDY`` must equal."""
    return _cells(serial_store)


def _study_parent(uri: str) -> str:
    from mlflow import MlflowClient

    (parent,) = MlflowClient(uri).search_runs(
        [e.experiment_id for e in MlflowClient(uri).search_experiments()], "tags.`fmnist.step` = 'study'",
        order_by=["attributes.start_time DESC"], max_results=1)
    return parent.info.run_id


@pytest.mark.slow
def test_ray_study_equals_serial_and_a_cached_rerun_takes_seconds(tmp_path, real_data_dir, serial_reference):
    ray_uri = f"sqlite:///{tmp_path / 'ray.db'}"
    r = fmnist([*STUDY, "--executor", "ray", "--report-output", str(tmp_path / "r.html")],
               _env(ray_uri, real_data_dir), tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_golden("study-ray", ray_uri)
    serial, ray_cells = serial_reference, _cells(ray_uri)
    assert serial.keys() == ray_cells.keys()
    for k in DETERMINISTIC:
        assert ray_cells[k][1] == pytest.approx(serial[k][1]), k
    runs = {x.info.run_id: x for x in _store_runs(ray_uri)}
    for k, (status, _, run_id) in ray_cells.items():
        assert status == "ran" and runs[run_id].data.tags.get("fmnist.executor") == "ray", k
        assert runs[run_id].data.tags.get("fmnist.node_id"), k
    assert "Test accuracy" in (tmp_path / "r.html").read_text()
    t0 = time.perf_counter()
    again = fmnist([*STUDY, "--executor", "ray", "--report-output", str(tmp_path / "r.html")],
                   _env(ray_uri, real_data_dir), tmp_path)
    assert again.returncode == 0 and {v[0] for v in _cells(ray_uri).values()} == {"cached"}
    assert "all 6 cells cached; no ray executor started" in again.stderr  # the driver found every hit itself
    assert time.perf_counter() - t0 < 120  # the lookups and the reused report, nothing recomputed


@pytest.mark.slow
def test_a_grid_command_on_ray_equals_the_serial_study_s_cells(tmp_path, real_data_dir, serial_reference):
    """Any grid command takes --executor ray: the same cells as the serial study, the same run tree."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'grid.db'}"
    r = fmnist(["classify", "--feature", "raw", "--model", "lda,logreg", "--tune", "false", "--subset", "300",
                "--seed", "11", "--no-progress", "--executor", "ray"], _env(uri, real_data_dir), tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = {x.info.run_id: x for x in _store_runs(uri)}
    (parent,) = [x for x in runs.values() if x.data.tags["fmnist.step"] == "classify-group"]
    assert parent.data.tags["fmnist.executor"] == "ray"
    kids = [x for x in runs.values() if x.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(x.data.tags["mlflow.runName"] for x in kids) == ["classify-raw-lda", "classify-raw-logreg",
                                                                   "extract-raw"]
    assert len(runs) == 4 and all(x.data.tags.get("fmnist.executor") == "ray" for x in kids)
    results = pd.read_csv(MlflowClient(uri).download_artifacts(parent.info.run_id, "results.csv"))
    for model, acc in zip(results["model"], results["test_accuracy"]):
        assert acc == pytest.approx(serial_reference[("classify", f"raw/{model}")][1]), model


@pytest.mark.slow
def test_a_serial_study_reruns_on_ray_exactly(tmp_path, real_data_dir, serial_store):
    # Each cell is pinned to the thread counts its run recorded (they change a BLAS sum's last bits): a Ray
    # worker holding one CPU would otherwise fit logreg and PCA to other bits than the serial run did.
    r = fmnist(["rerun", _study_parent(serial_store), "--executor", "ray", "--no-progress"],
               _env(serial_store, real_data_dir), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[-1] == "7 of 7 cells reproduce" and all(": reproduces (new run " in ln for ln in lines[:-1])


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _gone(procs, timeout: float = 30) -> list:
    import psutil

    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
def test_a_sigkilled_ray_worker_is_retried_and_its_run_never_reused(tmp_path, real_data_dir):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["study", "--features", "raw", "--models", "lda", "--methods", "pca", "--finetune", "true", "--shift", "false",
            "--epochs", "3", "--weights", "none", "--device", "cpu", "--no-progress", "--executor", "ray",
            "--subset", "600", "--report", "false"]
    proc = subprocess.Popen([str(BIN / "fmnist"), *args], env=_env(uri, real_data_dir), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim, pid = _wait_for_running(uri, "finetune")
        os.kill(pid, signal.SIGKILL)  # the Ray worker training it
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    from mlflow import MlflowClient

    killed = MlflowClient(uri).get_run(victim)
    assert killed.info.status in ("KILLED", "FAILED")
    cells = _cells(uri)
    mode = killed.data.tags["mlflow.runName"].removeprefix("finetune-")
    status, acc, run_id = cells[("finetune", mode)]
    assert status == "ran" and run_id != victim and acc > 0
    assert "fmnist.cache_key" not in killed.data.tags


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["serial", "ray"])
def test_sigterm_of_the_driver_kills_every_run_and_leaves_no_process(tmp_path, real_data_dir, executor):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["study", "--features", "raw", "--models", "lda", "--methods", "pca", "--finetune", "true", "--shift", "false",
            "--epochs", "5", "--weights", "none", "--device", "cpu", "--no-progress", "--executor", executor,
            "--report-output", str(tmp_path / "r.html")]
    proc = subprocess.Popen([str(BIN / "fmnist"), *args], env=_env(uri, real_data_dir), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_running(uri, "finetune")
        procs = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-3000:]
    assert "terminated (SIGTERM)" in err
    runs = _store_runs(uri)
    assert runs and not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    (parent,) = [r for r in runs if r.data.tags["fmnist.step"] == "study"]
    assert parent.info.status == "KILLED"
    assert [r for r in runs if r.data.tags["fmnist.step"] == "finetune" and r.info.status == "KILLED"]
    assert _gone(procs) == []  # the local Ray instance and its workers went with the driver


# ------------------------------------------------------------------------------- a two-node cluster


@pytest.fixture
def two_node_cluster(tmp_path):
    """A real Ray cluster on this machine: a head and a second node, one CPU each, on loopback."""
    import psutil

    from fmnist.server import free_port

    temp = Path(f"/tmp/fmnist-ray-{os.getpid()}-{time.time_ns() % 10**6}")  # short: Ray's socket paths
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    ray = str(BIN / "ray")
    head = [ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "1",
            "--temp-dir", str(temp), "--include-dashboard", "false", "--disable-usage-stats"]
    node = [ray, "start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
            "--disable-usage-stats"]

    def ours():
        """This cluster's processes: those naming its temp dir or its port (Ray's client server, started by the
        head and then orphaned, names only the port), and all their children (Ray's agents name neither)."""
        found = {}
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if str(temp) in cmd or ("ray" in cmd and f":{port} " in f"{cmd} "):
                for q in [p, *p.children(recursive=True)]:
                    found[q.pid] = q
        return list(found.values())

    try:
        for cmd in (head, node):
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
            assert p.returncode == 0, p.stderr[-2000:]
        yield f"127.0.0.1:{port}", env
    finally:  # exactly the processes of this cluster (their command lines name its temp dir), never others
        procs = ours()
        for p in procs:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        # raylet and the GCS server outlast SIGTERM by far more than 20 s: what is left after a short grace
        # period is killed, and waited for, so no process of this cluster outlives the test.
        _, alive = psutil.wait_procs(procs, timeout=3)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)


def _cluster_nodes(address: str, env: dict) -> set[str]:
    code = ("import ray; ray.init(address=%r, log_to_driver=False); "
            "print(','.join(n['NodeID'] for n in ray.nodes() if n['Alive']))" % address)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return set(p.stdout.strip().splitlines()[-1].split(","))


@pytest.mark.slow
def test_study_on_a_two_node_cluster_with_the_team_server(tmp_path, real_data_dir, two_node_cluster, team_server,
                                                         serial_reference):
    address, ray_env = two_node_cluster
    nodes = _cluster_nodes(address, ray_env)
    assert len(nodes) == 2
    local = f"sqlite:///{tmp_path / 'local.db'}"
    refused = fmnist([*STUDY, "--executor", "ray", "--ray-address", address], _env(local, real_data_dir), tmp_path)
    assert refused.returncode == 1 and "needs an HTTP tracking server" in refused.stderr
    assert _store_runs(local) == []
    exp = f"cluster-{time.time_ns()}"
    # As an account with EDIT on the experiment only: the workers write as that user, with the credentials the
    # driver's environment gave them through Ray's runtime environment.
    password = team_server.add_user("cluster-user", (exp, "EDIT"))
    env = team_server.as_user({**_env(team_server.uri, real_data_dir), "MLFLOW_EXPERIMENT_NAME": exp},
                              "cluster-user", password)
    p = fmnist([*STUDY, "--executor", "ray", "--ray-address", address, "--report-output",
                str(tmp_path / "r.html")], env, tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    cells = _cells(team_server.uri, exp)
    assert {status for status, _, _ in cells.values()} == {"ran"}
    from mlflow import MlflowClient

    client = MlflowClient(team_server.uri)
    children = [client.get_run(run_id) for _, _, run_id in cells.values()]
    used = {r.data.tags["fmnist.node_id"] for r in children}
    assert used <= nodes  # every cell ran on the cluster's nodes
    assert {r.info.user_id for r in children} == {"cluster-user"}
    everything = client.search_runs([client.get_experiment_by_name(exp).experiment_id], max_results=1000)
    for r in everything:  # the password is in no param or tag
        assert not any(password in v for v in [*r.data.params.values(), *r.data.tags.values()]), r.info.run_id
    for k in DETERMINISTIC:
        assert cells[k][1] == pytest.approx(serial_reference[k][1]), k
    assert "Test accuracy" in (tmp_path / "r.html").read_text()


def test_admission_starts_the_longest_chain_first_and_fills_free_cores():
    """The Ray driver's own admission: a ready cell starts only when its CPUs are free, cells others wait on
    first, then the longest chain (its cost plus its dependants'), narrower cells filling what a wider one leaves."""
    from fmnist.engine.schedule import admit, ranks

    e, c1 = Cell("e", 0, cost=10), Cell("c1", 0, after=("e",), cost=50)
    f, v = Cell("f", 0, num_cpus=2, cost=40), Cell("v", 0, cost=5)
    rank = ranks([e, c1, f, v])
    assert rank == {"e": (True, 60), "c1": (False, 50), "f": (False, 40), "v": (False, 5)}
    need = {c.id: c.num_cpus for c in (e, c1, f, v)}
    assert admit([v, f, e], 2, need, rank) == [e, v]  # f does not fit beside e: v fills the second core
    wide = Cell("wide", 0, num_cpus=2, cost=1)  # an extract: cheap, but c2 waits on it
    c2, long = Cell("c2", 0, after=("wide",), cost=1), Cell("long", 0, cost=100)
    assert admit([long, wide], 2, {"wide": 2, "c2": 1, "long": 1}, ranks([wide, c2, long])) == [wide]  # opens the graph up
    assert admit([v, f], 2, need, rank) == [f]  # f takes both; v waits
    assert admit([v, f], 1, need, rank) == [v]
    assert admit([f], 1, need, rank) == []


def test_the_plan_both_executors_share():
    """Ready / skip the dependants / admit / finish, without I/O: the serial executor is the plan at capacity 1 in
    the given order; Ray's admits by rank while CPUs are free."""
    from fmnist.engine.schedule import Plan

    e, c1, c2 = Cell("e", 0, num_cpus=2, cost=10), Cell("c1", 0, after=("e",)), Cell("c2", 0, after=("c1",))
    v = Cell("v", 0, cost=1)
    serial = Plan([v, e, c1, c2], ordered=True)
    assert serial.skips() == [] and serial.admit() == [v] and serial.admit() == []  # one at a time
    serial.finish(v, Record("s", "v", "ran"))
    assert serial.admit() == [e]
    serial.finish(e, Record("s", "e", "failed"))
    assert serial.skips() == [(c1, "e failed")] and serial.admit() == []
    serial.finish(c1, Record("s", "c1", "skipped"))
    assert serial.skips() == [(c2, "c1 skipped")]
    serial.finish(c2, Record("s", "c2", "skipped"))
    assert serial.over and [r.cell for r in serial.records()] == ["v", "e", "c1", "c2"]

    ray = Plan([v, e, c1, c2], capacity=2, need={"v": 1, "e": 2, "c1": 1, "c2": 1})
    assert ray.admit() == [e] and ray.free == 0  # waited on: first, and it takes both CPUs
    ray.finish(e, Record("s", "e", "ran"))
    assert ray.admit() == [c1, v] and not ray.over
    stuck = Plan([Cell("x", 0, after=("nowhere",))])
    with pytest.raises(RuntimeError, match="cells wait on cells not in the graph"):
        stuck.check()


def test_schedule_simulator_on_a_known_graph():
    from fmnist.engine.schedule import critical_path, list_schedule

    seconds = {"e": 10.0, "a": 5.0, "b": 5.0, "c": 20.0, "f": 30.0}
    after = {"a": ("e",), "b": ("e",), "c": ("e",)}
    assert list_schedule(seconds, after, 1) == pytest.approx(70.0)  # one worker: the sum
    assert list_schedule(seconds, after, 2) == pytest.approx(35.0)  # e+c on one, f+a on the other, b after
    assert list_schedule(seconds, after, 8) == pytest.approx(30.0)  # bounded by the longest chain
    length, path = critical_path(seconds, after)
    assert length == pytest.approx(30.0) and path in (["e", "c"], ["f"])


def _registrations():
    from fmnist.classifiers import CLASSIFIERS
    from fmnist.embeddings import EMBEDDINGS
    from fmnist.features import FEATURES
    from fmnist.finetune import MODES

    return [(reg.kind, name) for reg in (FEATURES, CLASSIFIERS, EMBEDDINGS, MODES) for name in reg.names()]


@pytest.mark.parametrize("kind,name", _registrations())
def test_every_registration_declares_its_cost_for_the_scheduler(kind, name):
    from fmnist.classifiers import CLASSIFIERS
    from fmnist.embeddings import EMBEDDINGS
    from fmnist.features import FEATURES
    from fmnist.finetune import MODES

    reg = {r.kind: r for r in (FEATURES, CLASSIFIERS, EMBEDDINGS, MODES)}[kind]
    cost = reg.get(name).hook("cost", 0)  # rough seconds, beside the registration (README: Ray)
    assert (cost(60000, 784) if callable(cost) else cost) > 0
    if kind == "feature":  # what a classifier's cost grows with: the features per image, as extracted
        from fmnist.data import synthetic_dataset
        from fmnist.features import extract_features, feature_params

        params = feature_params(name, {"weights": "none", "image_size": 32} if name == "resnet18" else {})
        x = synthetic_dataset(n_train=2, n_test=1).x_test
        assert reg.get(name).hook("dims")(params) == extract_features(name, x, params, device="cpu",
                                                                       progress=False).shape[1]
