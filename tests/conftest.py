"""Shared fixtures: a temporary tracking store per test, the real data folder, tiny synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fmnist.data import synthetic_dataset

pytest_plugins = ["timing"]  # tests/timing.py: where the suite's time went, printed after every run

ROOT = Path(__file__).resolve().parent.parent
# The committed slice of the real data (scripts/make_fixture.py); the full files are for benchmarks.
MINI_DATA = ROOT / "tests" / "data" / "fashion-mnist-mini"
MINI_SIZES = (1000, 600)  # train, test images: make_fixture.py's defaults, as its README.md says
FULL_SIZES = (60000, 10000)
REAL_DATA = Path(os.environ.get("FMNIST_TEST_DATA_DIR") or MINI_DATA)
REAL_SIZES = MINI_SIZES if REAL_DATA.resolve() == MINI_DATA else FULL_SIZES


@pytest.fixture
def real_data_dir() -> Path:
    """Real Fashion-MNIST IDX files: the committed slice, or ``$FMNIST_TEST_DATA_DIR`` (e.g. the full set)."""
    if not all((REAL_DATA / f).exists() for f in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")):
        # Fail, not skip: the slice is committed, so a miss is a wrong $FMNIST_TEST_DATA_DIR (and a
        # loader given the folder would try to download into it).
        pytest.fail(f"Fashion-MNIST IDX files not found in {REAL_DATA} (check FMNIST_TEST_DATA_DIR)")
    return REAL_DATA


@pytest.fixture(scope="session")
def _migrated_store(tmp_path_factory) -> Path:
    """An empty sqlite store with MLflow's schema built, once per session: building it costs each test ~1 s."""
    from mlflow.tracking import MlflowClient

    d = tmp_path_factory.mktemp("store-template")
    MlflowClient(f"sqlite:///{d / 'mlflow.db'}").search_experiments(max_results=1)
    return d / "mlflow.db"


def copy_store(db: Path, dest: Path) -> str:
    """Copy a sqlite store (and the artifact folder beside it) into ``dest``; its URI. The copy's experiments
    and runs point at the copied artifacts, so writes never reach the original."""
    import shutil
    import sqlite3
    from contextlib import closing

    src = db.parent
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(db, dest / "mlflow.db")
    if (src / "mlruns").is_dir():
        shutil.copytree(src / "mlruns", dest / "mlruns", dirs_exist_ok=True)
    with closing(sqlite3.connect(dest / "mlflow.db")) as c, c:
        for table, col in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
            c.execute(f"UPDATE {table} SET {col} = replace({col}, ?, ?)", (str(src), str(dest)))
    return f"sqlite:///{dest / 'mlflow.db'}"


def use_store(uri: str, monkeypatch) -> None:
    """Point this process (and the processes it starts) at ``uri``, with no run or experiment chosen; a sqlite
    store's folder becomes the working directory, where MLflow puts the artifacts of experiments made later
    (``./mlruns``: not the checkout's)."""
    import mlflow

    if uri.startswith("sqlite:///"):
        monkeypatch.chdir(Path(uri.removeprefix("sqlite:///")).parent)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(uri)


def reset_store() -> None:
    import mlflow
    import mlflow.tracking.fluent as fl

    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    fl._active_experiment_id = None


@pytest.fixture
def store(tmp_path, monkeypatch, _migrated_store):
    """A fresh sqlite tracking store in a temp folder (artifacts land beside it), copied from a migrated one."""
    monkeypatch.chdir(tmp_path)
    uri = copy_store(_migrated_store, tmp_path)
    use_store(uri, monkeypatch)
    yield uri
    reset_store()


@pytest.fixture
def unbuilt_store(tmp_path, monkeypatch):
    """A sqlite store URI whose file does not exist yet: for tests of building the schema itself."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    use_store(uri, monkeypatch)
    yield uri
    reset_store()


@pytest.fixture(scope="session")
def tiny():
    """200 train / 100 test synthetic images, 10 learnable classes."""
    return synthetic_dataset(n_train=200, n_test=100)


@pytest.fixture(scope="session")
def team_server(tmp_path_factory):
    """PostgreSQL + ``mlflow server`` with accounts on loopback, started once for every module that asks
    (see stores.py). While it runs, this process and the ``fmnist`` processes tests start act as its admin
    (MLflow's credential variables); tests/test_accounts.py sets other users' credentials explicitly."""
    from stores import CREDENTIAL_VARS, start_team_server, stop_team_server

    srv = start_team_server(tmp_path_factory.mktemp("server"))
    saved = {k: os.environ.get(k) for k in CREDENTIAL_VARS}
    os.environ.update(dict(zip(CREDENTIAL_VARS, srv.admin)))
    yield srv
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    stop_team_server(srv)
