"""The registry's champion across subsets and datasets: every prediction keeps its image's index in the dataset's
test split, so runs on different samples are compared on the test images they share."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from fmnist import tracking
from fmnist.significance import correct_on_shared, shared_images

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ROOT = Path(__file__).resolve().parent.parent
MINI = ROOT / "tests" / "data" / "fashion-mnist-mini"


def _full_data() -> Path:
    """The full Fashion-MNIST files: ``$FMNIST_DATA_DIR`` (the Makefile points it at ../shared/data/fashion-mnist
    when that folder exists), else that folder itself."""
    for d in (os.environ.get("FMNIST_DATA_DIR"), ROOT.parent / "shared" / "data" / "fashion-mnist"):
        if d and (Path(d) / "t10k-images-idx3-ubyte.gz").is_file() and (Path(d) / "train-images-idx3-ubyte.gz").is_file():
            return Path(d)
    pytest.skip("the full Fashion-MNIST files are not here (../shared/data/fashion-mnist or $FMNIST_DATA_DIR)")


# --------------------------------------------------------------------------------- matching by test index


def _pred(index, label, predicted, split="split-a", digest="d"):
    return {"test_index": np.asarray(index), "label": np.asarray(label), "predicted": np.asarray(predicted),
            "test_split": split, "data_digest": digest}


def test_a_full_test_set_run_meets_a_subset_run_on_the_subset_s_images():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 10_000)
    sub = np.sort(rng.choice(10_000, 500, replace=False))
    full = _pred(np.arange(10_000), labels, labels)  # right everywhere
    subset = _pred(sub, labels[sub], np.where(np.arange(500) < 100, (labels[sub] + 1) % 10, labels[sub]))
    s = shared_images(subset, full)
    assert len(s.test_index) == 500 and np.array_equal(s.test_index, sub) and np.array_equal(s.b, sub)
    a, b = correct_on_shared(full, subset)
    assert a.sum() == 500 and b.sum() == 400  # the full run's accuracy on the subset's images, not on its own
    # another test split (another dataset or folder): nothing shared
    assert len(shared_images(subset, {**full, "test_split": "split-b"}).test_index) == 0
    # the same indices with other labels are not the same images
    with pytest.raises(ValueError, match="different labels"):
        shared_images(subset, _pred(np.arange(10_000), (labels + 1) % 10, labels))


def test_runs_logged_before_the_index_are_matched_by_position_on_the_same_data_only():
    legacy = _pred(np.arange(4), [1, 2, 3, 4], [1, 2, 0, 4], split="", digest="d1")
    assert np.array_equal(shared_images(legacy, _pred(np.arange(4), [1, 2, 3, 4], [1, 0, 3, 4], split="",
                                                       digest="d1")).a, np.arange(4))
    new_same_data = _pred(np.arange(4), [1, 2, 3, 4], [1, 2, 3, 4], split="s", digest="d1")
    assert len(shared_images(legacy, new_same_data).a) == 4  # a new run on the same data still pairs with it
    assert len(shared_images(legacy, {**legacy, "data_digest": "d2"}).a) == 0  # another sample: positions differ


# ----------------------------------------------------------------------------- one store, real data


@pytest.fixture(scope="module")
def subset_runs(tmp_path_factory, _migrated_store):
    """On the real data, seed 0: LDA on a 500-image sample, then logistic regression and LDA on 2,000 images;
    raw pixels, fixed hyperparameters; in a store of their own. (store URI, {name: run id}, {n: Dataset})."""
    from conftest import copy_store, reset_store, use_store

    from fmnist.data import load_dataset
    from fmnist.commands import classify

    data = _full_data()
    d = tmp_path_factory.mktemp("registry")
    uri = copy_store(_migrated_store, d)
    ds = {n: load_dataset("fashion-mnist", data_dir=str(data), subset=n, seed=0) for n in (500, 2000)}
    runs = {}
    with pytest.MonkeyPatch.context() as m:
        use_store(uri, m)
        m.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        for name, n, model in (("small", 500, "lda"), ("better", 2000, "logreg"), ("worse", 2000, "lda")):
            (cell,) = classify(feature="raw", model=model, ds=ds[n], tune=False, progress=False)
            runs[name] = cell.run_id
        reset_store()
    return uri, runs, ds


@pytest.fixture
def in_subset_runs(subset_runs, monkeypatch):
    from conftest import use_store

    use_store(subset_runs[0], monkeypatch)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return subset_runs


def test_a_subset_run_s_predictions_line_up_with_the_full_test_split(in_subset_runs):
    from fmnist.data import load_dataset
    from fmnist.steps.base import load_predictions

    _, runs, ds = in_subset_runs
    full = load_dataset("fashion-mnist", data_dir=str(_full_data()))
    assert set(ds[500].test_index) < set(ds[2000].test_index)  # one seed's samples nest
    for name, n in (("small", 500), ("better", 2000)):
        pred = load_predictions(runs[name])
        assert len(pred["test_index"]) == n and pred["test_split"] == full.test_split
        assert np.array_equal(pred["label"], full.y_test[pred["test_index"]])
        # the images themselves: the run's model predicts the same classes for the full split's images there
        model = mlflow.pyfunc.load_model(tracking.run_model_uri(runs[name]))
        got = model.predict(full.x_test[pred["test_index"][:200]])["class_index"].to_numpy()
        assert np.array_equal(got, pred["predicted"][:200])


def test_the_champion_follows_the_better_model_across_subsets(in_subset_runs, tmp_path):
    from stores import fmnist_env, fmnist_here

    from fmnist import report, tracking
    from fmnist.steps.base import load_predictions
    from fmnist.steps.register import register_best

    uri, runs, _ = in_subset_runs
    (first,) = register_best([runs["small"]])  # the quick profile's model: the first version
    assert (first.name, first.version, first.alias, first.compared_on) == ("fmnist-raw", "1", "champion", None)

    (up,) = register_best([runs["better"]])  # 2,000 images: compared on the 500 both scored
    shared = np.intersect1d(load_predictions(runs["small"])["test_index"], load_predictions(runs["better"])["test_index"])
    assert len(shared) == 500 and up.compared_on == 500 and up.n_test == 2000
    assert up.alias == "champion" and up.p_value < 0.05
    assert up.why.startswith("significantly more accurate") and "on the 500 test images both scored" in up.why
    v2 = tracking.model_by_alias("fmnist-raw", "champion")
    assert v2.version == "2" and v2.tags["fmnist.compared_on"] == "500" and v2.tags["fmnist.compared_with"] == "v1"

    # a worse model stays challenger; `fmnist register` says what it was compared on and why
    env = fmnist_env(uri, "fmnist", _full_data())
    p = fmnist_here(["register", "--run", runs["worse"]], env, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    (line,) = p.stdout.strip().splitlines()
    assert line.startswith("fmnist-raw v3: challenger; run ") and " on 2000 images; compared on 2000 shared " in line
    assert "not significantly more accurate" in line or "for champion v2" in line
    assert tracking.model_by_alias("fmnist-raw", "champion").version == "2"

    # the report's registry section: per version, the images it was compared on and why
    versions = report.registry_versions().set_index("version")
    assert list(versions.index) == [3, 2, 1] and list(versions["alias"]) == ["challenger", "champion", ""]
    assert list(versions["compared on"]) == ["2000 shared with v2", "500 shared with v1", ""]
    assert list(versions["test images"]) == [2000, 2000, 500]
    assert versions.loc[1, "why"] == "the first version" and versions.loc[2, "why"] == up.why


def test_too_few_shared_images_keep_a_version_challenger(in_subset_runs, tmp_path):
    from fmnist import tracking
    from fmnist.data import load_dataset
    from fmnist.commands import classify
    from fmnist.steps.register import MIN_SHARED, register_run

    _, runs, ds = in_subset_runs
    name = "fmnist-min-shared-check"

    def reg(run_id):
        return register_run(name, run_id, tracking.get_run_info(run_id))

    assert reg(runs["better"]).alias == "champion"
    # The committed slice: real Fashion-MNIST images, but its own test split (600 images), so nothing is shared
    (mini,) = classify(feature="raw", model="logreg", ds=load_dataset("fashion-mnist", data_dir=str(MINI)),
                       tune=False, progress=False)
    r = reg(mini.run_id)
    assert r.alias == "challenger" and r.compared_on == 0 and r.p_value is None
    assert f"share 0 test images, fewer than the {MIN_SHARED} a comparison needs" in r.why
    assert tracking.model_by_alias(name, "challenger").tags["fmnist.compared_on"] == "0"


def test_a_champion_whose_predictions_cannot_be_read_is_not_compared(in_subset_runs):
    from fmnist import tracking
    from fmnist.steps.register import register_run

    _, runs, _ = in_subset_runs
    name = "fmnist-unreadable-check"
    assert register_run(name, runs["small"], tracking.get_run_info(runs["small"])).alias == "champion"
    path = tracking.artifact_local_path(runs["small"], "predictions.npz")
    saved = path.read_bytes()
    try:
        path.write_bytes(saved[:-10])  # an altered artifact fails its checksum
        r = register_run(name, runs["better"], tracking.get_run_info(runs["better"]))
    finally:
        path.write_bytes(saved)
    assert r.alias == "challenger" and r.compared_on is None
    assert r.why.startswith("not compared with champion v1: its predictions could not be read (CacheError: ")


# --------------------------------------------------------------------------------------- another dataset


def _as_mnist(dest: Path) -> Path:
    """The committed slice's IDX files under MNIST's layout, with a manifest naming them (so they pass the
    loader's MD5 check as what they are): a stand-in MNIST of ten classes named 0-9."""
    dest.mkdir(parents=True, exist_ok=True)
    lines = []
    for f in sorted(MINI.glob("*-ubyte.gz")):
        shutil.copyfile(f, dest / f.name)
        lines.append(f"{hashlib.md5(f.read_bytes()).hexdigest()}  {f.name}")
    (dest / "MD5SUMS").write_text("\n".join(lines) + "\n")
    return dest


@pytest.fixture(scope="module")
def mnist_model(tmp_path_factory, _migrated_store):
    """A raw-pixel LDA on the stand-in MNIST, registered as the study does: (store URI, data folder, registration)."""
    from conftest import copy_store, reset_store, use_store

    from fmnist.commands import classify
    from fmnist.steps.register import register_best

    d = tmp_path_factory.mktemp("mnist")
    folder = _as_mnist(d / "data")
    uri = copy_store(_migrated_store, d / "store")
    with pytest.MonkeyPatch.context() as m:
        use_store(uri, m)
        m.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        (cell,) = classify(feature="raw", model="lda", dataset="mnist", data_dir=str(folder), tune=False,
                           progress=False)
        (registered,) = register_best([cell.run_id])
        reset_store()
    return uri, folder, registered


def test_another_dataset_registers_under_its_own_names_with_its_own_classes(mnist_model, monkeypatch, tmp_path):
    from conftest import use_store
    from stores import fmnist_env, fmnist_here

    from fmnist import report, tracking

    uri, folder, r = mnist_model
    assert (r.name, r.alias) == ("mnist-raw", "champion")
    use_store(uri, monkeypatch)
    assert report.registry_table().empty  # Fashion-MNIST's table: fmnist-<feature> only
    assert list(report.registry_table(dataset="mnist")["model"]) == ["mnist-raw"]
    model = tracking.load_image_model("models:/mnist-raw@champion")
    assert set(model.predict(np.zeros((3, 28, 28), np.uint8))["class_name"]) <= {str(i) for i in range(10)}
    p = fmnist_here(["predict", "--model", "mnist-raw@champion", "--images", str(folder / "t10k-images-idx3-ubyte.gz"),
                     "--output", str(tmp_path / "out.csv")], fmnist_env(uri, "fmnist", folder), tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    got = pd.read_csv(tmp_path / "out.csv", dtype={"class_name": str})
    assert len(got) == 600 and list(got["class_name"]) == [str(i) for i in got["class_index"]]


@pytest.mark.slow
def test_a_served_mnist_model_answers_with_digits(mnist_model, tmp_path):
    from stores import fmnist_env, post_json, serving

    from fmnist.data import load_dataset

    uri, folder, _ = mnist_model
    x = load_dataset("mnist", data_dir=str(folder)).x_test[:16]
    with serving(fmnist_env(uri, "fmnist", folder), "mnist-raw@champion", tmp_path) as url:
        status, out = post_json(url, {"inputs": x.tolist()})
    assert status == 200 and len(out["predictions"]) == 16
    assert all(p["class_name"] == str(p["class_index"]) for p in out["predictions"])
