"""Shared fixtures: a temporary tracking store per test, the real data folder, tiny synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fmnist.data import synthetic_dataset

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


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh sqlite tracking store in a temp folder (artifacts land beside it)."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    import mlflow.tracking.fluent as fl

    fl._active_experiment_id = None


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
