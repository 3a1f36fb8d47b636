"""Runs every row of the bad-input table (docs/bad-input.md) as written: one line, the exit code, no stuck run."""

import shlex
import shutil
from pathlib import Path

import mlflow
import pytest

from conftest import reset_store, use_store
from fmnist.cli import cli, run_cli

TABLE = Path(__file__).resolve().parent.parent / "docs" / "bad-input.md"


def _rows():
    text = TABLE.read_text()
    table = text[text.index("<!-- bad-inputs:start -->"):text.index("<!-- bad-inputs:end -->")]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`") and cells[2].isdigit():
            rows.append(pytest.param(cells[1].strip("`"), int(cells[2]), cells[3].strip("`"), id=cells[0]))
    return rows


ROWS = _rows()


def test_table_is_not_empty():
    assert len(ROWS) >= 15


@pytest.fixture(scope="module")
def built(tmp_path_factory, _migrated_store):
    """The files the table's {placeholders} name, and a store holding the other-data run: built once, each
    row gets a copy of the store."""
    from conftest import REAL_DATA, copy_store

    root = tmp_path_factory.mktemp("bad-inputs")
    out = {"empty_dir": root / "empty"}
    out["empty_dir"].mkdir()
    for name in ("truncated_dir", "wrong_md5_dir"):
        d = root / name
        # MD5SUMS comes along: the files are then held to their own sums (the slice is not the official
        # set), so only the damage done below can fail the check.
        shutil.copytree(REAL_DATA, d, ignore=shutil.ignore_patterns("LICENSE"))
        out[name] = d
    f = out["truncated_dir"] / "train-labels-idx1-ubyte.gz"
    f.chmod(0o644)
    data = f.read_bytes()
    f.write_bytes(data[:len(data) // 2])  # half: the slice's labels file is under 1000 bytes
    g = out["wrong_md5_dir"] / "t10k-labels-idx1-ubyte.gz"
    g.chmod(0o644)
    g.write_bytes(g.read_bytes() + b"\0")  # trailing garbage: gzip still reads, MD5 does not match
    (root / "bad.pth").write_text("not a state dict")
    out["not_weights"] = root / "bad.pth"
    from fmnist.data import load_dataset
    from fmnist.steps.extract import get_features

    store_dir = root / "store"
    uri = copy_store(_migrated_store, store_dir)
    with pytest.MonkeyPatch.context() as m:
        m.chdir(store_dir)  # the artifacts land beside the database, where copy_store finds them
        use_store(uri, m)
        try:
            other = get_features(feature="raw", ds=load_dataset(data_dir=REAL_DATA, subset=50), progress=False)
        finally:
            reset_store()
    out["other_data_run"] = other.run_id
    return out, store_dir / "mlflow.db"


@pytest.fixture
def files(built, tmp_path, monkeypatch):
    """The placeholders' values, with this process on a copy of the store that holds the other-data run."""
    from conftest import copy_store

    values, db = built
    monkeypatch.chdir(tmp_path)
    use_store(copy_store(db, tmp_path), monkeypatch)
    yield values
    reset_store()


@pytest.mark.parametrize("command,code,message", ROWS)
def test_bad_input_row(command, code, message, files, real_data_dir, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FMNIST_DATA_DIR", str(real_data_dir))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached ImageNet weights
    words = shlex.split(command.format(**files))
    while "=" in words[0]:
        k, v = words.pop(0).split("=", 1)
        monkeypatch.setenv(k, v)
        if k == "MLFLOW_TRACKING_URI":
            mlflow.set_tracking_uri(v)
    assert words[0] == "fmnist"
    before = {r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")} \
        if not command.startswith("MLFLOW_TRACKING_URI") else set()
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as e:
            run_cli(cli, words[1:] + (["--no-progress"] if "--help" not in words else []))
    finally:
        mlflow.set_tracking_uri(None)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("fmnist: error:")]
    assert e.value.code == code
    assert len(err) == 1 and message in err[0], err
    if not command.startswith("MLFLOW_TRACKING_URI"):
        runs = [r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
                if r.info.run_id not in before]
        assert all(r.info.status == "FAILED" and r.data.tags.get("fmnist.error") for r in runs), \
            [(r.info.status, r.data.tags.get("fmnist.error")) for r in runs]
