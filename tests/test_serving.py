"""Models a user can serve: raw images in, classes out; the registry's champion; MLflow's scoring server."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from fmnist.features import FEATURES
from fmnist.predictor import InputError, as_images

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MINI = Path(__file__).parent / "data" / "fashion-mnist-mini"
CELLS = [(f, "logreg") for f in FEATURES.names()] + [("raw", "svm"), ("raw", "lda")]


# ------------------------------------------------------------------------------------------ input checks


def test_every_accepted_form_gives_the_same_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    for form in (x, x.astype(np.int64), x / 255.0, (x / 255.0).astype(np.float32), x.reshape(3, 784),
                 x.tolist(), (x / 255.0).tolist(), np.array(x.tolist(), dtype=object), pd.DataFrame(x.reshape(3, -1))):
        assert np.array_equal(as_images(form), x)
    assert as_images(x[0]).shape == (1, 28, 28)  # one image is a batch of one


@pytest.mark.parametrize("bad, says", [
    (np.zeros((2, 27, 28), np.uint8), r"expected a batch of 28x28 images, .* got shape \(2, 27, 28\)"),
    (np.zeros((2, 783)), r"got shape \(2, 783\)"),
    (np.zeros((0, 28, 28), np.uint8), "an empty batch"),
    ([], "an empty batch"),
    ([[["a"] * 28] * 28], "pixels must be numbers.*got text"),
    (np.ones((1, 28, 28), bool), "got true/false values"),
    (np.full((1, 28, 28), np.nan), "NaN or infinity"),
    (np.full((1, 28, 28), 2.0), r"float pixels must lie in \[0, 1\]; got 2..2"),
    (np.full((1, 28, 28), 256), "integer pixels must lie in 0..255; got 256..256"),
    (np.full((1, 28, 28), -1), "integer pixels must lie in 0..255"),
    ([np.zeros((28, 28)).tolist(), np.zeros((27, 28)).tolist()], "images of different sizes"),
])
def test_bad_images_fail_in_one_line(bad, says):
    with pytest.raises(InputError, match=says) as e:
        as_images(bad)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------- one study of real images


@pytest.fixture(scope="module")
def served(tmp_path_factory, _migrated_store):
    """Classify cells of every feature and a 1-epoch fine-tune on the committed real slice, in a store of their
    own; the best per feature registered as the study does. (store URI, dataset, {cell: run id})."""
    from conftest import copy_store, reset_store, use_store

    from fmnist.data import load_dataset
    from fmnist.commands import classify
    from fmnist.steps.finetune import finetune
    from fmnist.steps.register import register_best

    d = tmp_path_factory.mktemp("served")
    uri = copy_store(_migrated_store, d)
    ds = load_dataset("fashion-mnist", data_dir=str(MINI))
    runs = {}
    with pytest.MonkeyPatch.context() as m:
        use_store(uri, m)
        m.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        for feature, model in CELLS:
            extra = {"weights": "none", "image_size": 32} if feature == "resnet18" else {}
            (cell,) = classify(feature=feature, model=model, ds=ds, tune=False, progress=False, **extra)
            runs[(feature, model)] = cell.run_id
        ft = finetune(mode="last_layer", epochs=1, image_size=32, weights="none", device="cpu", ds=ds,
                      progress=False)
        runs[("finetune", "last_layer")] = ft["run_id"]
        registered = register_best(list(runs.values()))
        reset_store()
    return uri, ds, runs, registered


@pytest.fixture
def in_served(served, monkeypatch):
    from conftest import use_store

    use_store(served[0], monkeypatch)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return served


def _logged(run_id: str) -> dict:
    from fmnist.report import predictions

    return predictions(run_id)


def _name(cell: tuple[str, str]) -> str:
    """The logged model's name: what it is (``svm-raw``, ``finetune-last_layer``)."""
    return f"finetune-{cell[1]}" if cell[0] == "finetune" else f"{cell[1]}-{cell[0]}"


@pytest.mark.parametrize("cell", CELLS + [("finetune", "last_layer")], ids="/".join)
def test_the_image_model_predicts_what_the_run_logged(in_served, cell):
    _, ds, runs, _ = in_served
    run_id = runs[cell]
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/{_name(cell)}")
    logged = _logged(run_id)
    assert np.array_equal(logged["test_index"], np.arange(len(ds.y_test)))  # the whole (committed) test split
    out = model.predict(ds.x_test[logged["test_index"]])
    assert np.array_equal(out["class_index"].to_numpy(), logged["predicted"])
    assert list(out["class_name"]) == [ds.classes[i] for i in logged["predicted"]]
    probs = [c for c in out.columns if c.startswith("proba_")]
    if "scores" in logged:
        assert len(probs) == 10 and np.allclose(out[probs].to_numpy(), logged["scores"], atol=1e-6)
    else:  # libsvm's SVC without probability=True: classes only, and the model says so
        assert probs == [] and cell == ("raw", "svm")
    # floats 0-1 and flattened rows are the same images
    assert np.array_equal(model.predict(ds.x_test[:50] / 255.0)["class_index"], logged["predicted"][:50])
    assert np.array_equal(model.predict(ds.x_test[:50].reshape(50, -1))["class_index"], logged["predicted"][:50])


def test_the_image_model_travels_with_its_code_example_and_pinned_requirements(in_served):
    import torch

    _, ds, runs, _ = in_served
    info = mlflow.models.get_model_info(f"runs:/{runs[('scatnet', 'logreg')]}/logreg-scatnet")
    assert info.signature.outputs.input_names()[:3] == ["class_index", "class_name", "proba_t_shirt_top"]
    (spec,) = info.signature.inputs.inputs  # declared: what every accepted form becomes
    assert (spec.type, spec.shape) == (np.dtype("uint8"), (-1, 28, 28))
    assert "floats 0-1" in info.metadata["fmnist.input"] and "(N, 784)" in info.metadata["fmnist.input"]
    assert info.metadata["fmnist.probabilities"] is True and info.metadata["fmnist.classes"] == list(ds.classes)
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    assert (local / "code" / "fmnist" / "predictor.py").is_file() and not list(local.rglob("__pycache__"))
    reqs = (local / "requirements.txt").read_text().split()
    assert f"torch=={torch.__version__.split('+')[0]}" in [r.split("+")[0] for r in reqs]
    assert any(r.startswith("kymatio==") for r in reqs) and any(r.startswith("scikit-learn==") for r in reqs)
    example = json.loads((local / "serving_input_example.json").read_text())["inputs"]
    assert np.array_equal(np.array(example, dtype=np.uint8), ds.x_test[:2])  # real test images


def test_a_classify_run_s_metrics_carry_their_dataset_and_name_its_model(in_served):
    from fmnist import tracking

    _, ds, runs, _ = in_served
    for cell in (("scatnet", "logreg"), ("finetune", "last_layer")):
        run = mlflow.get_run(runs[cell])
        model = mlflow.get_logged_model(tracking.run_model_uri(run.info.run_id).split("/")[-1])
        assert model.name == _name(cell)
        linked = {m.key: m for m in model.metrics}
        test = "fashion-mnist-test"  # the images: one dataset for every model, one accuracy column on the models page
        for key in ("test_accuracy", "macro_f1", "test_accuracy_ci_low", "test_accuracy_coat"):
            assert linked[key].dataset_name == test and linked[key].dataset_digest, key
            assert linked[key].value == pytest.approx(run.data.metrics[key])
        assert linked["fit_seconds"].dataset_name is None  # not an evaluation
        inputs = {(i.dataset.name, i.tags[0].value) for i in run.inputs.dataset_inputs}
        if cell[0] == "finetune":
            assert {(test, "testing"), ("fashion-mnist-train", "training")} <= inputs
        else:  # the features it was fitted on, and the images its model was evaluated on
            assert {(test, "evaluation"), (f"fashion-mnist-{cell[0]}-train", "training"),
                    (f"fashion-mnist-{cell[0]}-test", "testing")} <= inputs
    # the scatnet features' digest and where they came from
    run = mlflow.get_run(runs[("scatnet", "logreg")])
    (d,) = [i.dataset for i in run.inputs.dataset_inputs if i.dataset.name == "fashion-mnist-scatnet-test"]
    assert json.loads(d.source)["uri"] == f"runs:/{run.data.tags['fmnist.extract_run_id']}/features.npz"


def test_a_registered_model_holds_no_pickle_and_refuses_a_tampered_file_in_one_line(in_served, tmp_path):
    """An EDIT user on a team server can replace a model's files: loading must not run what they put there."""
    import os

    import skops.io
    import torch
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from fmnist import tracking
    from stores import fmnist_env, fmnist_here

    uri_db, ds, runs, _ = in_served
    marker = tmp_path / "ran"

    class Payload:  # what a pickle runs when loaded
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    for cell, file in ((("raw", "lda"), "pipeline.skops"), (("finetune", "last_layer"), "network.pt")):
        uri = tracking.run_model_uri(runs[cell])
        where = Path(mlflow.get_logged_model(uri.split("/")[-1]).artifact_location.removeprefix("file://"))
        files = sorted(p.name for p in (where / "artifacts").iterdir())
        assert files == sorted(["predictor.json", file]), files
        assert not [p for p in where.rglob("*") if p.suffix in (".pkl", ".pickle")]
        target = where / "artifacts" / file
        original = target.read_bytes()
        try:
            if file.endswith(".skops"):  # a pipeline step that is os.system
                skops.io.dump(Pipeline([("f", FunctionTransformer(os.system))]), target)
                says = "refusing to load types no fmnist model uses"
            else:
                torch.save({"conv1.weight": Payload()}, target)
                says = "not a plain state dict, refusing to load it"
            with pytest.raises(Exception, match=says):
                tracking.load_predictor(uri)
            with pytest.raises(Exception, match=says):  # MLflow's own pyfunc load goes through the same check
                mlflow.pyfunc.load_model(uri)
            p = fmnist_here(["predict", "--model", uri, "--images", str(MINI / "t10k-images-idx3-ubyte.gz"),
                             "--output", str(tmp_path / "p.csv")], fmnist_env(uri_db, "fmnist", MINI), tmp_path)
            assert p.returncode == 1 and says in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
            assert not marker.exists() and not (tmp_path / "p.csv").exists()
        finally:
            target.write_bytes(original)


# ------------------------------------------------------------------------------------------ the registry


def test_the_best_cell_per_feature_is_registered_and_the_first_is_champion(in_served):
    from fmnist import tracking

    _, _, runs, registered = in_served
    names = {r.name: r for r in registered}
    assert set(names) == {f"fmnist-{f}" for f in FEATURES.names()} | {"fmnist-finetune"}
    for r in registered:
        group = r.name.removeprefix("fmnist-")
        cands = {k: v for k, v in runs.items() if k[0] == group}
        best = max(cands.values(), key=lambda i: mlflow.get_run(i).data.metrics["test_accuracy"])
        assert (r.run_id, r.version, r.alias, r.why) == (best, "1", "champion", "the first version")
        v = tracking.model_by_alias(r.name, "champion")
        acc = mlflow.get_run(best).data.metrics["test_accuracy"]
        assert v.run_id == best and float(v.tags["fmnist.test_accuracy"]) == pytest.approx(acc, abs=1e-4)
        assert v.tags["fmnist.test_accuracy_ci"].startswith("[") and v.tags["fmnist.promotion"] == "the first version"


def test_champion_moves_only_when_significantly_better(in_served):
    from fmnist import tracking
    from fmnist.data import synthetic_dataset
    from fmnist.commands import classify
    from fmnist.steps.register import register_run

    _, _, runs, _ = in_served
    name = "fmnist-promotion-check"

    def reg(run_id):
        return register_run(name, run_id, tracking.get_run_info(run_id))

    acc = {k: mlflow.get_run(v).data.metrics["test_accuracy"] for k, v in runs.items()}
    weak, strong = min(acc, key=acc.get), max(acc, key=acc.get)
    middle = sorted(acc, key=acc.get)[len(acc) // 2]
    assert reg(runs[weak]).alias == "champion"
    assert reg(runs[weak]).why == "already registered"  # once per run
    up = reg(runs[strong])  # ~10 points better on 600 shared test images
    assert up.alias == "champion" and up.p_value < 0.05 and up.why.startswith("significantly more accurate")
    down = reg(runs[middle])
    assert down.alias == "challenger" and down.why.startswith("not significantly more accurate")
    v = tracking.model_by_alias(name, "challenger")
    assert v.version == down.version and float(v.tags["fmnist.p_value"]) == pytest.approx(down.p_value, rel=1e-2)
    assert "McNemar exact p=" in v.tags["fmnist.promotion"]
    assert tracking.model_by_alias(name, "champion").version == up.version
    # a model tested on other images is never compared, so never promoted
    (other,) = classify(feature="raw", model="lda", ds=synthetic_dataset(200, 100), tune=False, progress=False)
    apart = reg(other.run_id)
    assert apart.alias == "challenger" and "tested on other images" in apart.why
    assert tracking.model_by_alias(name, "champion").version == up.version


# ------------------------------------------------------------------------------ MLflow's scoring server


@pytest.fixture(scope="module")
def server(served, tmp_path_factory):
    """``fmnist serve --model fmnist-raw@champion`` on a free loopback port, stopped afterwards."""
    from stores import fmnist_env, serving

    with serving(fmnist_env(served[0], "fmnist", MINI), "fmnist-raw@champion", tmp_path_factory.mktemp("serve")) as url:
        yield url


@pytest.mark.slow
def test_served_champion_answers_real_images_and_refuses_bad_ones(served, server):
    from conftest import reset_store, use_store
    from stores import post_json

    _, ds, runs, registered = served
    champ = next(r for r in registered if r.name == "fmnist-raw")
    with pytest.MonkeyPatch.context() as m:
        use_store(served[0], m)
        logged = _logged(champ.run_id)
        reset_store()
    x = ds.x_test[:64]
    for body in ({"inputs": x.tolist()}, {"inputs": (x / 255.0).tolist()}, {"inputs": x.reshape(64, -1).tolist()}):
        status, out = post_json(server, body)
        assert status == 200
        assert [p["class_index"] for p in out["predictions"]] == logged["predicted"][:64].tolist()
        assert [p["class_name"] for p in out["predictions"]] == [ds.classes[i] for i in logged["predicted"][:64]]
    bad = {
        "wrong shape": ({"inputs": x[:, :27].tolist()}, "got shape (64, 27, 28)"),
        "wrong dtype": ({"inputs": [[["a"] * 28] * 28]}, "pixels must be numbers"),
        "NaN": (b'{"inputs": [' + json.dumps([[0.5] * 28] * 27).encode()[:-1] + b', [' +
                b", ".join([b"NaN"] * 28) + b"]]]}", "NaN or infinity"),
        "out of range": ({"inputs": [[[300] * 28] * 28]}, "integer pixels must lie in 0..255"),
        "float out of range": ({"inputs": (x[:2] * 1.0).tolist()}, "float pixels must lie in [0, 1]"),
        "empty": ({"inputs": []}, "an empty batch"),
        "ragged": ({"inputs": [x[0].tolist(), x[0, :5].tolist()]}, "images of different sizes in one batch"),
    }
    for what, (body, says) in bad.items():
        status, out = post_json(server, body)
        assert status == 400, what
        assert says in out["message"] and "\n" not in out["message"] and "stack_trace" not in out, (what, out)
        ok, _ = post_json(server, {"inputs": x[:1].tolist()})  # and it keeps serving
        assert ok == 200, what


def test_unknown_model_or_alias_names_the_registered_ones(in_served, tmp_path):
    from stores import fmnist_env, fmnist_here

    env = fmnist_env(in_served[0], "fmnist", MINI)
    for spec, says in (("fmnist-nope@champion", "no registered model 'fmnist-nope'"),
                       ("fmnist-raw@gold", "model 'fmnist-raw' has no alias 'gold'")):
        for cmd in (["serve", "--model", spec], ["predict", "--model", spec, "--images", str(MINI)]):
            p = fmnist_here(cmd, env, tmp_path)
            assert p.returncode == 1
            (line,) = p.stderr.strip().splitlines()
            assert says in line and "fmnist-raw (@champion=v1)" in line and "fmnist-finetune (@champion=v1)" in line


def test_predict_writes_a_csv_for_idx_npy_and_pngs(in_served, tmp_path):
    from PIL import Image

    from stores import fmnist_env, fmnist_here

    _, ds, runs, registered = in_served
    champ = next(r for r in registered if r.name == "fmnist-scatnet")
    logged = _logged(champ.run_id)
    env = fmnist_env(in_served[0], "fmnist", MINI)
    np.save(tmp_path / "few.npy", ds.x_test[:20])
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for i in range(5):
        Image.fromarray(ds.x_test[i]).save(pngs / f"img{i:02d}.png")
    for images, n in ((MINI / "t10k-images-idx3-ubyte.gz", len(ds.x_test)), (tmp_path / "few.npy", 20), (pngs, 5)):
        out = tmp_path / f"{images.name}.csv"
        p = fmnist_here(["predict", "--model", "fmnist-scatnet@champion", "--images", str(images), "--output",
                         str(out)], env, tmp_path)
        assert p.returncode == 0, p.stderr[-2000:]
        got = pd.read_csv(out)
        assert len(got) == n and list(got.columns[:3]) == ["image", "class_index", "class_name"]
        assert np.array_equal(got["class_index"], logged["predicted"][:n])
    assert list(pd.read_csv(tmp_path / "pngs.csv")["image"]) == [f"img{i:02d}.png" for i in range(5)]
    bad = fmnist_here(["predict", "--model", "fmnist-scatnet@champion", "--images", str(tmp_path)], env, tmp_path)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
