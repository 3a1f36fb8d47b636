"""``fmnist rerun``: a logged result run again, metric by metric, on a real store and the real data slice."""

import json
from pathlib import Path

import mlflow
import pytest

from fmnist.classifiers import CLASSIFIERS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MINI = Path(__file__).parent / "data" / "fashion-mnist-mini"


@pytest.fixture(scope="module")
def logged(tmp_path_factory, _migrated_store):
    """An extract, a classify run per model (with its seed) and a 1-epoch CPU fine-tune on the real slice, plus
    two spare classify runs the tests alter; in a store of their own. (URI, {name: run id})."""
    from conftest import copy_store, reset_store, use_store

    from fmnist.data import load_dataset
    from fmnist.commands import classify
    from fmnist.steps.finetune import finetune

    d = tmp_path_factory.mktemp("rerun")
    uri = copy_store(_migrated_store, d)
    ds = load_dataset("fashion-mnist", data_dir=str(MINI), subset=400)
    runs = {}
    with pytest.MonkeyPatch.context() as m:
        use_store(uri, m)
        m.setenv("FMNIST_DATA_DIR", str(MINI))
        for model in CLASSIFIERS.names():
            (cell,) = classify(feature="raw", model=model, tune=False, subset=400, seed=3, progress=False,
                               data_dir=str(MINI))
            runs[model] = cell.run_id
        runs["extract"] = cell.extract_run_id
        for name, seed in (("code-altered", 4), ("metric-altered", 5)):
            (cell,) = classify(feature="raw", model="lda", tune=False, subset=400, seed=seed, progress=False,
                               data_dir=str(MINI))
            runs[name] = cell.run_id
        runs["finetune"] = finetune(mode="last_layer", epochs=1, image_size=32, weights="none", device="cpu",
                                    subset=400, data_dir=str(MINI), progress=False)["run_id"]
        assert ds.n_classes == 10
        reset_store()
    return uri, runs


@pytest.fixture
def in_logged(logged, monkeypatch):
    from conftest import use_store

    use_store(logged[0], monkeypatch)
    monkeypatch.setenv("FMNIST_DATA_DIR", str(MINI))
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return logged


def test_every_run_records_what_reproducing_it_needs(in_logged):
    from fmnist.steps.base import CODE_TAG, ENV_TAG, PARAMS_TAG

    _, runs = in_logged
    for name in ("extract", "svm", "finetune"):
        tags = mlflow.get_run(runs[name]).data.tags
        env = json.loads(tags[ENV_TAG])
        assert {"python", "numpy", "scikit-learn", "torch", "kymatio", "mlflow", "device", "device_name",
                "cpu", "threads", "blas_threads"} <= set(env)
        assert env["device"] == "cpu" and tags[CODE_TAG].startswith("0.") and json.loads(tags[PARAMS_TAG])


@pytest.mark.parametrize("name", ["extract", *CLASSIFIERS.names(), "finetune"])
def test_a_cpu_rerun_reproduces_exactly(in_logged, name):
    from fmnist.commands.rerun import IDENTICAL, rerun_run

    _, runs = in_logged
    r = rerun_run(runs[name])
    assert r.ok and r.drift == [] and r.new_run_id != runs[name]
    assert {row.verdict for row in r.rows} == {IDENTICAL}, [row for row in r.rows if row.verdict != IDENTICAL]
    what = {row.what for row in r.rows}
    if name != "extract":
        assert {"test_accuracy", "artifact predictions.npz"} <= what
    else:
        assert "artifact features.npz" in what
    new = mlflow.get_run(r.new_run_id)
    assert new.data.tags["fmnist.rerun_of"] == runs[name] and new.info.status == "FINISHED"


def test_the_cli_prints_the_table_and_exits_0(in_logged, tmp_path):
    from stores import fmnist_env, fmnist_here

    uri, runs = in_logged
    p = fmnist_here(["rerun", runs["logreg"]], fmnist_env(uri, "fmnist", MINI), tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"classify-raw-logreg: run {runs['logreg']} rerun as ")
    assert lines[1].split() == ["metric", "logged", "new", "verdict"]
    row = next(ln for ln in lines if ln.startswith("test_accuracy "))
    assert row.split()[-1] == "identical" and "fit_seconds" not in p.stdout  # timings are not results
    # Only our own lines on stderr: no MLflow notes, warnings or redrawn bars while it logs the models.
    assert [ln for ln in p.stderr.splitlines() if not ln.startswith("[fmnist] ")] == []


def test_an_altered_code_version_is_refused_then_rerun_with_the_drift_shown(in_logged, tmp_path):
    from stores import fmnist_env, fmnist_here

    from fmnist.steps.base import CODE_TAG

    uri, runs = in_logged
    run_id = runs["code-altered"]
    mlflow.MlflowClient().set_tag(run_id, CODE_TAG, "0.0.1+000000000000")
    env = fmnist_env(uri, "fmnist", MINI)
    refused = fmnist_here(["rerun", run_id], env, tmp_path)
    assert refused.returncode == 1
    (line,) = [ln for ln in refused.stderr.splitlines() if ln.startswith("fmnist: error:")]
    assert f"run {run_id} was computed with other code (code: 0.0.1+000000000000 -> " in line
    assert "--allow-drift" in line
    assert not mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.`fmnist.rerun_of` = '{run_id}'",
                                  output_format="list")
    allowed = fmnist_here(["rerun", run_id, "--allow-drift", "true"], env, tmp_path)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert allowed.stdout.startswith("drift: code: 0.0.1+000000000000 -> ")


def test_an_altered_metric_is_reported_as_differing(in_logged, tmp_path):
    from stores import fmnist_env, fmnist_here

    uri, runs = in_logged
    run_id = runs["metric-altered"]
    true_acc = mlflow.get_run(run_id).data.metrics["test_accuracy"]
    mlflow.MlflowClient().log_metric(run_id, "test_accuracy", 0.5)  # the store now says 50%
    p = fmnist_here(["rerun", run_id], fmnist_env(uri, "fmnist", MINI), tmp_path)
    assert p.returncode == 1
    row = next(ln for ln in p.stdout.splitlines() if ln.startswith("test_accuracy "))
    assert row.split()[1:] == ["0.5", f"{true_acc:.6g}", "differs"]
    assert next(ln for ln in p.stdout.splitlines() if ln.startswith("macro_f1 ")).split()[-1] == "identical"


def test_a_study_rerun_lists_every_cell(store, tmp_path):
    from golden import assert_golden
    from stores import fmnist_env, fmnist_here

    import fmnist.commands.study as st

    records = st.run_study(profile="quick", subset=300, features="raw", models="lda,logreg", methods="pca",
                           finetune=False, shift=False, report=False, weights="none", device="cpu", progress=False,
                           data_dir=str(MINI))
    (parent,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                   filter_string="tags.`fmnist.step` = 'study'")
    cells = [f"{r.step} {r.cell}" for r in records if r.step != "register"]
    p = fmnist_here(["rerun", parent.info.run_id, "--no-progress"], fmnist_env(store, "fmnist", MINI), tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines[:-1]] == cells
    assert all(": reproduces (new run " in ln for ln in lines[:-1])
    assert lines[-1] == f"{len(cells)} of {len(cells)} cells reproduce"
    assert_golden("rerun-study", store)  # the study and its rerun
    narrowed = fmnist_here(["rerun", parent.info.run_id, "--cells", "raw/lda", "--no-progress"],
                           fmnist_env(store, "fmnist", MINI), tmp_path)
    assert narrowed.returncode == 0 and narrowed.stdout.splitlines()[-1] == "1 of 1 cells reproduce"
    bad = fmnist_here(["rerun", parent.info.run_id, "--cells", "raw/svm"], fmnist_env(store, "fmnist", MINI), tmp_path)
    assert bad.returncode == 1 and "has no cell 'raw/svm'; its cells: extract raw, classify raw/lda" in bad.stderr
