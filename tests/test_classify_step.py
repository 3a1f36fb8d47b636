"""The classify step against a temporary tracking store: what each run logs, grids, honest tuning, refusals."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline

from fmnist import report, tracking
from fmnist.classifiers import CLASSIFIERS, ClassifierSpec
from fmnist.data import Dataset, data_digest, synthetic_dataset
from fmnist.errors import CacheError, ChoiceError, ParamError
from fmnist.evaluation import slug, wilson_interval
from fmnist.registry import Entry
from fmnist.commands import classify
from fmnist.steps.classify import check_features
from fmnist.steps.extract import get_features


def _runs():
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def _artifacts(run_id, path=None):
    return sorted(f.path for f in mlflow.MlflowClient().list_artifacts(run_id, path))


def test_one_cell_logs_the_contract(store, tiny):
    (cell,) = classify(feature="raw", model="lda", ds=tiny, tune=False, progress=False)
    r = mlflow.get_run(cell.run_id)
    assert r.info.status == "FINISHED" and r.data.tags["fmnist.step"] == "classify"
    p, m, t = r.data.params, r.data.metrics, r.data.tags
    assert {k: p[k] for k in ("feature", "model", "dataset", "subset", "seed", "tune")} == {
        "feature": "raw", "model": "lda", "dataset": "synthetic", "subset": "all", "seed": "0", "tune": "False"}
    assert p["hp_shrinkage"] == "0.01"
    for k in ("test_accuracy", "train_accuracy", "val_accuracy", "macro_f1"):
        assert 0 <= m[k] <= 1
    assert m["fit_seconds"] > 0 and m["predict_seconds"] > 0
    assert m["test_accuracy"] == pytest.approx(cell.metrics["test_accuracy"])
    assert {f"test_accuracy_{slug(c)}" for c in tiny.classes} <= set(m)
    assert "test_accuracy_t_shirt_top" in m
    assert t["fmnist.feature_label"] == "raw"
    extract = mlflow.get_run(t["fmnist.extract_run_id"])
    assert extract.info.status == "FINISHED" and extract.data.tags["fmnist.step"] == "extract"
    # the store was empty: the extract ran first, beside the cell (one target: no parent), never inside it
    assert "mlflow.parentRunId" not in extract.data.tags and "mlflow.parentRunId" not in t

    # The accuracy's 95% Wilson interval over the test images, and every test prediction with its class scores.
    n = len(tiny.y_test)
    assert (m["test_accuracy_ci_low"], m["test_accuracy_ci_high"]) == pytest.approx(
        wilson_interval(round(m["test_accuracy"] * n), n))
    assert m["test_accuracy_ci_low"] < m["test_accuracy"] <= m["test_accuracy_ci_high"] <= 1
    assert t["fmnist.ci_method"] == "wilson"
    assert _artifacts(cell.run_id) == ["confusion_matrix.png", "per_class_accuracy.csv", "predictions.npz"]
    pred = report.predictions(cell.run_id)  # checked against the run's recorded sha256
    assert pred["test_index"].tolist() == list(range(n)) and np.array_equal(pred["label"], tiny.y_test)
    assert np.mean(pred["predicted"] == pred["label"]) == pytest.approx(m["test_accuracy"])
    assert pred["scores"].shape == (n, 10) and np.allclose(pred["scores"].sum(1), 1, atol=1e-4)  # LDA: probabilities
    assert np.array_equal(pred["scores"].argmax(1), pred["predicted"])
    table = pd.read_csv(tracking.artifact_local_path(cell.run_id, "per_class_accuracy.csv"))
    assert list(table["class"]) == list(tiny.classes) and table["support"].sum() == len(tiny.y_test)
    assert table["test_accuracy"].to_numpy() == pytest.approx(
        [m[f"test_accuracy_{slug(c)}"] for c in tiny.classes])
    png = tracking.artifact_local_path(cell.run_id, "confusion_matrix.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    model = tracking.load_predictor(f"runs:/{cell.run_id}/lda-raw").classifier  # the pipeline inside the image model
    from fmnist.tracking.queries import _download_root
    folder = tracking.download_model(f"runs:/{cell.run_id}/lda-raw", data_only=True)
    assert Path(_download_root()) in folder.parents  # the process's download folder, removed at its exit
    x = tiny.x_test.reshape(len(tiny.x_test), -1).astype(np.float32) / 255
    assert np.mean(model.predict(x) == tiny.y_test) == pytest.approx(m["test_accuracy"])
    info = mlflow.models.get_model_info(f"runs:/{cell.run_id}/lda-raw")
    assert info.signature.inputs.to_dict()[0]["tensor-spec"] == {"dtype": "uint8", "shape": (-1, 28, 28)}

    # a second identical call reuses the whole run; forced, it refits but still reuses the extract run
    (same,) = classify(feature="raw", model="lda", ds=tiny, tune=False, progress=False)
    assert same.run_id == cell.run_id and same.metrics["test_accuracy"] == cell.metrics["test_accuracy"]
    (again,) = classify(feature="raw", model="lda", ds=tiny, tune=False, progress=False, force=True)
    assert again.run_id != cell.run_id
    assert mlflow.get_run(again.run_id).data.tags["fmnist.extract_run_id"] == t["fmnist.extract_run_id"]
    assert mlflow.get_run(again.run_id).data.tags["fmnist.feature_cached"] == "true"


def test_tuned_rf_logs_choices_and_loads(store, tiny):
    (cell,) = classify(feature="raw", model="rf", ds=tiny, tune=True, progress=False, n_jobs=1)
    r = mlflow.get_run(cell.run_id)
    assert r.data.params["hp_n_estimators"] == str(cell.chosen["n_estimators"])
    assert r.data.params["hp_max_features"] == str(cell.chosen["max_features"])
    assert "tuning.csv" in _artifacts(cell.run_id)
    trials = pd.read_csv(tracking.artifact_local_path(cell.run_id, "tuning.csv"))
    assert len(trials) == 4 and trials["val_accuracy"].max() == pytest.approx(r.data.metrics["val_accuracy"])
    model = tracking.load_predictor(tracking.run_model_uri(cell.run_id)).classifier
    assert model[-1].n_estimators == cell.chosen["n_estimators"]


def test_grid_nests_children_under_one_parent(store, tiny):
    cells = classify(feature="raw", model="lda,logreg", ds=tiny, tune=False, progress=False)
    assert [c.model for c in cells] == ["lda", "logreg"]
    runs = {r.info.run_id: r for r in _runs()}
    (parent,) = [r for r in runs.values() if r.data.tags.get("fmnist.step") == "classify-group"]
    assert parent.info.status == "FINISHED" and parent.data.params["model"] == "lda,logreg"
    for c in cells:
        assert runs[c.run_id].data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert runs[c.run_id].data.tags["fmnist.step"] == "classify"
    summary = pd.read_csv(tracking.artifact_local_path(parent.info.run_id, "results.csv"))
    assert list(summary["model"]) == ["lda", "logreg"] and list(summary["run_id"]) == [c.run_id for c in cells]
    assert all(r.info.status == "FINISHED" for r in runs.values())


def test_random_resnet_is_labelled(store, tiny):
    (cell,) = classify(feature="resnet18", model="lda", ds=tiny, params={"weights": "none", "image_size": 32},
                       tune=False, progress=False)
    r = mlflow.get_run(cell.run_id)
    assert r.data.tags["fmnist.feature_label"] == "resnet18 (random init)"
    assert r.data.params["weights"] == "none" and r.data.params["image_size"] == "32"


class Spy(BaseEstimator, ClassifierMixin):
    """Nearest class mean; records every matrix it is fitted on or asked to predict, in call order."""

    calls: list = []

    def __init__(self, shift=0.0):
        self.shift = shift

    def fit(self, x, y):
        Spy.calls.append(("fit", np.array(x, copy=True)))
        self.classes_ = np.unique(y)
        self.means_ = np.stack([x[y == c].mean(axis=0) for c in self.classes_]) + self.shift
        return self

    def predict(self, x):
        Spy.calls.append(("predict", np.array(x, copy=True)))
        d = ((x[:, None, :] - self.means_[None]) ** 2).sum(-1)
        return self.classes_[d.argmin(1)]


def _spy_factory(*, tune, seed, n_jobs=-1):
    return ClassifierSpec(Pipeline([("spy", Spy())]), hp={"shift": "spy__shift"},
                          grid={"shift": [0.0, 0.5, 5.0]} if tune else {},
                          trusted_types=[f"{Spy.__module__}.Spy"])


def _poisoned(ds: Dataset, seed: int) -> Dataset:
    """Same training set; test images replaced by noise and test labels shifted."""
    rng = np.random.default_rng(seed)
    xte = rng.integers(0, 256, size=ds.x_test.shape, dtype=np.uint8)
    yte = (ds.y_test + 1 + seed) % 10
    return Dataset(ds.name, ds.classes, ds.x_train, ds.y_train, xte, yte, source="synthetic",
                   digest=data_digest(ds.x_train, ds.y_train, xte, yte))


def _model_input(x):
    """What the model sees of raw pixels: after raw's stateless input steps (sqrt)."""
    from sklearn.pipeline import Pipeline

    from fmnist.features import FEATURES

    t = FEATURES.get("raw").hook("input_transform")
    return Pipeline(t.steps()).fit_transform(x) if t else x


def test_test_set_is_never_touched_while_tuning(store, tiny, monkeypatch):
    monkeypatch.setitem(CLASSIFIERS._entries, "spy", Entry("spy", _spy_factory))
    results = []
    for ds in (tiny, _poisoned(tiny, 0), _poisoned(tiny, 3)):
        Spy.calls = []
        (cell,) = classify(feature="raw", model="spy", ds=ds, tune=True, val_fraction=0.2, progress=False)
        x_test = _model_input(ds.x_test.reshape(len(ds.x_test), -1).astype(np.float32) / 255)
        x_train = _model_input(ds.x_train.reshape(len(ds.x_train), -1).astype(np.float32) / 255)
        final = max(i for i, (kind, _) in enumerate(Spy.calls) if kind == "fit")
        test_rows = {r.tobytes() for r in x_test}
        train_rows = {r.tobytes() for r in x_train}
        for i, (kind, x) in enumerate(Spy.calls):
            rows = {r.tobytes() for r in x}
            if kind == "fit" or i < final:  # everything up to the final fit: training rows only
                assert rows <= train_rows and not rows & test_rows, (i, kind)
        assert np.array_equal(Spy.calls[final][1], x_train)  # the refit sees the whole training set
        r = mlflow.get_run(cell.run_id)
        results.append((r.data.params["hp_shift"], r.data.metrics["val_accuracy"], r.data.metrics["test_accuracy"]))
    # poisoning the test set changes test accuracy only: the choice and its validation score stay put
    assert len({(hp, val) for hp, val, _ in results}) == 1
    assert results[0][2] > 0.5 and results[1][2] < 0.3 and results[2][2] < 0.3


@pytest.mark.parametrize("kw,err,msg", [
    ({"feature": "raw", "model": "knn"}, ChoiceError, "unknown model 'knn'; choose one of: logreg, lda, svm, rf"),
    ({"feature": "hog", "model": "lda"}, ChoiceError, "unknown feature 'hog'; choose one of: raw"),
    ({"feature": "raw", "model": "lda", "tune": True, "val_fraction": 0.0}, ParamError, "val_fraction"),
    ({"feature": "raw,scatnet", "model": "lda", "extract_run": "abc"}, ParamError, "one feature"),
])
def test_bad_input_fails_before_any_run(store, tiny, kw, err, msg):
    with pytest.raises(err, match=msg):
        classify(ds=tiny, progress=False, **kw)
    assert _runs() == []


def test_extract_run_of_other_data_is_refused(store, tiny):
    fs = get_features(feature="raw", ds=synthetic_dataset(200, 100, seed=4), progress=False)
    with pytest.raises(CacheError, match="other data"):
        classify(feature="raw", model="lda", ds=tiny, extract_run=fs.run_id, tune=False, progress=False)
    statuses = {r.info.run_id: r.info.status for r in _runs()}
    assert "RUNNING" not in statuses.values() and list(statuses.values()).count("FAILED") == 1
    (cell,) = classify(feature="raw", model="lda", ds=synthetic_dataset(200, 100, seed=4), extract_run=fs.run_id,
                       tune=False, progress=False)
    assert mlflow.get_run(cell.run_id).data.tags["fmnist.extract_run_id"] == fs.run_id


def test_wrong_shape_or_labels_are_refused(tiny):
    from fmnist.steps.extract import FeatureSet

    x = np.zeros((200, 5), np.float32)
    good = dict(feature="raw", params={}, x_train=x, y_train=tiny.y_train, x_test=np.zeros((100, 5), np.float32),
                y_test=tiny.y_test, classes=tiny.classes, dataset="synthetic", data_digest=tiny.digest)
    check_features(FeatureSet(**good), tiny)
    for change, msg in [({"x_test": np.zeros((100, 6), np.float32)}, "5-d but test features 6-d"),
                        ({"x_train": x[:150]}, r"shape \(150, 5\)"),
                        ({"y_test": (tiny.y_test + 1) % 10}, "labels differ"),
                        ({"x_train": np.full((200, 5), np.nan, np.float32)}, "NaN")]:
        with pytest.raises(CacheError, match=msg):
            check_features(FeatureSet(**{**good, **change}), tiny)


def test_the_svm_on_scatnet_reads_the_pixels_beside_the_coefficients(store, tiny):
    from fmnist.classifiers import model_input

    (cell,) = classify(feature="scatnet", model="svm", ds=tiny, params={"J": 1, "L": 2, "max_order": 1},
                       tune=False, val_fraction=0.0, progress=False)
    r = mlflow.get_run(cell.run_id)
    assert r.data.params["input_transform"] == ("sqrt(pixels) then standardise, beside the features: "
                                                "log(x+0.001) then standardise") and r.data.params["J"] == "1"
    assert "val_accuracy" not in r.data.metrics  # val_fraction=0: no validation fit
    predictor = tracking.load_predictor(tracking.run_model_uri(cell.run_id))
    model = predictor.classifier
    assert [name for name, _ in model.steps] == ["input", "pca", "svc"] and predictor.pixels
    assert [n for n, *_ in model.named_steps["input"].transformers_] == ["pixels", "features"]
    fs = get_features(feature="scatnet", ds=tiny, params={"J": 1, "L": 2, "max_order": 1}, progress=False)
    x = model_input(fs.x_test, tiny.x_test, True)
    assert fs.cached and x.shape == (len(tiny.x_test), 784 + fs.dim)
    expected = model.predict(x)
    assert np.mean(expected == tiny.y_test) == pytest.approx(r.data.metrics["test_accuracy"])
    assert np.array_equal(predictor.predict_arrays(tiny.x_test)[0], expected)  # images in: the same answers
