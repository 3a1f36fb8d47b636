"""The finetune step against a temporary store: what a run records, resume in the same run (from the local
checkpoint, or from the run's artifacts on another machine), and a real process killed mid-training then resumed
(must equal an uninterrupted run)."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import mlflow
import pytest
import torch

from fmnist import report, tracking
from fmnist.data import load_dataset, synthetic_dataset
from fmnist.errors import ParamError, WeightsError
from fmnist.evaluation import wilson_interval
from fmnist.steps import finetune as step
from test_e2e_extract import mlflow_run

ROOT = Path(__file__).resolve().parent.parent
BASE = dict(mode="full", weights="none", image_size=16, epochs=2, batch_size=32, lr=0.05, optimizer="sgd",
            schedule="onecycle", warmup=0.2, weight_decay=5e-4, augment=True, label_smoothing=0.1, seed=0,
            val_fraction=0.2, test_curve=False, device="cpu", num_workers=0, progress=False)
FINAL = ("test_accuracy", "macro_f1", "best_val_accuracy", "best_epoch")


@pytest.fixture
def ckdir(tmp_path, monkeypatch):
    d = tmp_path / "checkpoints"
    monkeypatch.setenv("FMNIST_CHECKPOINT_DIR", str(d))
    return d


@pytest.fixture(scope="module")
def small():
    return synthetic_dataset(n_train=80, n_test=40)


def history(run_id, key):
    return [(m.step, m.value) for m in mlflow.MlflowClient().get_metric_history(run_id, key)]


def test_step_logs_what_the_contract_names(store, ckdir, small):
    out = step.finetune(**{**BASE, "test_curve": True}, ds=small)
    info = tracking.get_run_info(out["run_id"])
    assert info["status"] == "FINISHED" and info["tags"]["fmnist.step"] == "finetune"
    p = info["params"]
    for k in ("mode", "weights", "weights_used", "image_size", "epochs", "batch_size", "lr", "optimizer", "schedule",
              "weight_decay", "augment", "label_smoothing", "seed", "device", "dataset", "subset"):
        assert k in p, k
    assert p["weights_used"] == "none (random init)" and p["mode"] == "full" and p["device"] == "cpu"
    m = info["metrics"]
    assert {"test_accuracy", "macro_f1", "best_val_accuracy", "best_epoch"} <= set(m)
    assert m["test_accuracy"] == pytest.approx(out["test_accuracy"]) and 1 <= m["best_epoch"] <= 2
    for k in ("train_loss", "train_accuracy", "val_accuracy", "epoch_seconds", "images_per_second",
              "test_accuracy_curve"):
        assert [s for s, _ in history(out["run_id"], k)] == [1, 2], k
    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(out["run_id"])}
    assert {"learning_curve.png", "confusion_matrix.png", "per_class_accuracy.csv", "predictions.npz"} <= names
    n = len(small.y_test)
    assert (m["test_accuracy_ci_low"], m["test_accuracy_ci_high"]) == pytest.approx(
        wilson_interval(round(m["test_accuracy"] * n), n))
    pred = report.predictions(out["run_id"])
    assert pred["label"].tolist() == small.y_test.tolist() and pred["scores"].shape == (n, 10)
    assert (pred["scores"].argmax(1) == pred["predicted"]).all()
    assert (pred["predicted"] == pred["label"]).mean() == pytest.approx(m["test_accuracy"])
    model_uri = f"runs:/{out['run_id']}/finetune-full-network"
    sig = mlflow.models.get_model_info(model_uri).signature
    assert sig.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 28, 28)
    model = mlflow.pytorch.load_model(model_uri)
    x = torch.from_numpy(small.x_test[:5]).float() / 255
    assert model(x).argmax(1).tolist() == out["model"].eval()(
        __import__("fmnist.weights", fromlist=["x"]).imagenet_preprocess(x, 16)).argmax(1).tolist()
    assert not (ckdir / out["run_id"]).exists()  # FINISHED: the local checkpoint is removed
    # the run's artifacts keep it (resumable state, not a result): last every epoch, best when it improved
    assert tracking.checkpoint_files(out["run_id"]) == [
        "checkpoints/best/best.pt", "checkpoints/last/last.pt", "checkpoints/last/state.json"]
    assert "checkpoints" in names
    # ... and no checksum: a reuse verifies predictions.npz only, and finds the run with its checkpoints there
    assert list(json.loads(info["tags"]["fmnist.artifacts_sha256"])) == ["predictions.npz"]
    again = step.finetune(**{**BASE, "test_curve": True}, ds=small)
    assert again["cached"] and again["run_id"] == out["run_id"]


@pytest.mark.slow  # (the fast suite's 4 minutes; CI runs it)
def test_the_fast_recipe_trains_averages_and_logs_a_servable_model(store, ckdir, real_data_dir):
    """recipe=fast on the CPU, one epoch of tiny real data: the training set as one tensor on the device, the
    weights' moving average evaluated and kept; the loss falls, accuracy beats chance, the model serves."""
    import numpy as np

    from fmnist.finetune import SplitData, fit
    from fmnist.finetune.train import FitConfig
    from fmnist.weights import Weights, build_resnet18

    small = load_dataset("fashion-mnist", data_dir=real_data_dir, subset=300, seed=0)
    cfg = dict(mode="full", image_size=16, epochs=1, batch_size=16, lr=0.02, seed=0, flip=False, recipe="fast")
    data = SplitData(small.x_train[:240], small.y_train[:240], small.x_train[240:], small.y_train[240:])
    runs = {}
    for ema in (0.0, 0.9):
        torch.manual_seed(0)
        runs[ema] = fit(build_resnet18(Weights("none"), num_classes=10), data, FitConfig(**cfg, ema=ema),
                        device="cpu", progress=False)
    raw, averaged = runs[0.0], runs[0.9]
    assert raw.history[0]["train_loss"] == averaged.history[0]["train_loss"]  # the average does not train
    a, b = raw.model.state_dict(), averaged.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())  # kept: the average

    out = step.finetune(**{**BASE, "recipe": "fast", "epochs": 2, "ema": 0.9, "tta": True, "batch_size": 16,
                           "lr": 0.02}, ds=small)
    losses = [loss for _, loss in tracking.metric_history(out["run_id"], "train_loss")]
    assert losses[-1] < losses[0] and out["test_accuracy"] > 0.15  # 300 test images, ten classes: chance is 0.1
    params = mlflow.get_run(out["run_id"]).data.params
    assert (params["recipe"], params["ema"], params["tta"], params["flip"]) == ("fast", "0.9", "True", "False")
    model = mlflow.pyfunc.load_model(f"runs:/{out['run_id']}/finetune-full")
    got = model.predict(small.x_test)["class_index"].to_numpy()
    assert np.array_equal(got, report.predictions(out["run_id"])["predicted"])  # as the run scored it (with TTA)


@pytest.mark.parametrize("extra", [pytest.param({}, id="standard"), pytest.param(
    {"recipe": "fast", "ema": 0.9, "flip": False}, id="fast", marks=pytest.mark.slow)])  # slow: test-fast's 4 min
def test_auto_resume_continues_the_same_run_and_matches(store, ckdir, small, monkeypatch, extra):
    base = {**BASE, **extra}  # fast: the data on the device, the weights' average in the checkpoint too
    real_log = tracking.log_metrics

    def dies_after_epoch_1(metrics, step=None):
        real_log(metrics, step=step)
        if step == 1:
            raise KeyboardInterrupt  # as Ctrl-C would, right after the epoch-1 checkpoint

    monkeypatch.setattr(step.tracking, "log_metrics", dies_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        step.finetune(**base, ds=small)
    monkeypatch.setattr(step.tracking, "log_metrics", real_log)
    (killed,) = [r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")]
    assert tracking.get_run_info(killed)["status"] == "KILLED"
    assert json.loads((ckdir / killed / "state.json").read_text())["epoch"] == 1

    ref = step.finetune(**{**base, "resume": "never"}, ds=small)  # never: a new run, the killed one untouched
    assert ref["run_id"] != killed and tracking.get_run_info(killed)["status"] == "KILLED"

    # resume=auto: identical params and data -> the killed run (force: not the FINISHED `ref`, which the
    # cache would otherwise reuse)
    out = step.finetune(**base, force=True, ds=small)
    assert out["run_id"] == killed and out["start_epoch"] == 2
    info = tracking.get_run_info(killed)
    assert info["status"] == "FINISHED" and info["tags"]["fmnist.resumed_at_epoch"] == "1"
    assert "fmnist.error" not in info["tags"]
    assert [s for s, _ in history(killed, "val_accuracy")] == [1, 2]
    assert {k: out[k] for k in FINAL} == {k: ref[k] for k in FINAL}
    assert history(killed, "val_accuracy") == history(ref["run_id"], "val_accuracy")
    for (k, a), b in zip(out["model"].state_dict().items(), ref["model"].state_dict().values()):
        assert torch.equal(a, b), k


def _killed_after_epoch_1(monkeypatch, small) -> str:
    """A finetune run of ``BASE`` killed (as by Ctrl-C) right after its epoch-1 checkpoint; its id."""
    real_log = tracking.log_metrics

    def dies_after_epoch_1(metrics, step=None):
        real_log(metrics, step=step)
        if step == 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(step.tracking, "log_metrics", dies_after_epoch_1)
        with pytest.raises(KeyboardInterrupt):
            step.finetune(**BASE, ds=small)
    (killed,) = [r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")]
    assert tracking.get_run_info(killed)["status"] == "KILLED"
    return killed


def test_explicit_resume_on_another_machine_downloads_the_checkpoint(store, ckdir, small, monkeypatch, tmp_path,
                                                                     caplog):
    killed = _killed_after_epoch_1(monkeypatch, small)
    # epoch 1 was uploaded as it ended: the last checkpoint and, as epoch 1 was the best so far, the best weights
    assert tracking.checkpoint_files(killed) == [
        "checkpoints/best/best.pt", "checkpoints/last/last.pt", "checkpoints/last/state.json"]
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(killed, "checkpoints/last")}
    assert names == {"checkpoints/last/last.pt", "checkpoints/last/state.json"}

    # "another machine": nothing of the run on this disk, an empty checkpoint cache
    shutil.rmtree(ckdir)
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("FMNIST_CHECKPOINT_DIR", str(elsewhere))
    assert not tracking.get_run_info(killed)["tags"]["fmnist.checkpoint_dir"].startswith(str(elsewhere))
    with caplog.at_level(logging.INFO, logger="fmnist"):
        out = step.finetune(**{**BASE, "resume": killed}, ds=small)
    assert f"run {killed}: downloading its epoch-1 checkpoint from the run's artifacts" in caplog.text
    assert out["run_id"] == killed and out["start_epoch"] == 2 and not out["cached"]
    info = tracking.get_run_info(killed)
    assert info["status"] == "FINISHED" and info["tags"]["fmnist.resumed_at_epoch"] == "1"
    assert not (elsewhere / killed).exists()  # FINISHED: the downloaded copy is removed
    last = tracking.artifact_local_path(killed, "checkpoints/last/state.json")
    assert json.loads(Path(last).read_text())["epoch"] == 2  # the resumed epoch was uploaded too

    ref = step.finetune(**{**BASE, "resume": "never", "force": True}, ds=small)  # the same, never interrupted
    assert ref["run_id"] != killed
    assert {k: out[k] for k in FINAL} == {k: ref[k] for k in FINAL}
    assert history(killed, "val_accuracy") == history(ref["run_id"], "val_accuracy")
    for (k, a), b in zip(out["model"].state_dict().items(), ref["model"].state_dict().values()):
        assert torch.equal(a, b), k


def test_a_checkpoint_of_the_handwritten_onecycle_is_one_clear_error(store, ckdir, small, monkeypatch):
    from fmnist.finetune.checkpoint import CHECKPOINT_FILE

    killed = _killed_after_epoch_1(monkeypatch, small)
    path = ckdir / killed / CHECKPOINT_FILE
    ck = torch.load(path, weights_only=False)
    del ck["schedule_impl"]  # as the LambdaLR one-cycle wrote them
    torch.save(ck, path)
    with pytest.raises(ParamError) as e:
        step.finetune(**{**BASE, "resume": killed}, ds=small)
    msg = str(e.value)
    assert "\n" not in msg and f"run {killed} cannot be resumed" in msg and "start a new run" in msg
    assert tracking.get_run_info(killed)["status"] == "KILLED"  # refused before the run was reopened


def test_explicit_resume_refuses_unknown_and_finished_runs(store, ckdir, small):
    with pytest.raises(ParamError, match="no such run"):
        step.finetune(**{**BASE, "resume": "0123456789abcdef"}, ds=small)
    with tracking.run("finetune-full", step="finetune") as done:
        pass
    with pytest.raises(ParamError, match="already FINISHED"):
        step.finetune(**{**BASE, "resume": done}, ds=small)


def test_imagenet_offline_is_a_clear_error_and_opens_no_run(store, ckdir, small, monkeypatch, tmp_path):
    import torchvision.models._api as api

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached file there

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as e:
        step.finetune(**{**BASE, "weights": "imagenet"}, ds=small)
    msg = str(e.value)
    assert "could not be downloaded" in msg and "resnet18-f37072fd.pth" in msg and "weights=none" in msg
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def _cli(args, env, **kw):
    cmd = [sys.executable, str(ROOT / "entrypoints" / "finetune.py"), *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_result(real_data_dir, store, ckdir, tmp_path):
    args = ["--weights", "none", "--image-size", "16", "--epochs", "3", "--batch-size", "32", "--subset", "100",
            "--val-fraction", "0.2", "--device", "cpu", "--data-dir", str(real_data_dir), "--no-progress"]
    env = {**os.environ, "MLFLOW_EXPERIMENT_NAME": "fmnist"}
    env.pop("MLFLOW_RUN_ID", None)
    proc = _cli(args, env)
    deadline = time.time() + 120
    state = None
    while time.time() < deadline and proc.poll() is None:
        states = list(ckdir.glob("*/state.json"))
        if states and json.loads(states[0].read_text())["epoch"] >= 1:
            state = states[0]
            break
        time.sleep(0.05)
    assert state is not None and proc.poll() is None, "no epoch-1 checkpoint before the run ended"
    proc.send_signal(signal.SIGKILL)  # no cleanup at all: the run stays RUNNING, the checkpoint stays
    proc.communicate()
    run_id = state.parent.name
    epoch = json.loads(state.read_text())["epoch"]
    assert epoch < 3 and tracking.get_run_info(run_id)["status"] in ("RUNNING", "KILLED")  # KILLED once reaped

    # Resume through `mlflow run`: it makes a run of its own, which points at the one that trains.
    resumed = mlflow_run("finetune", {"resume": run_id, "data_dir": real_data_dir, "device": "cpu"}, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming run {run_id} after epoch {epoch}/3" in resumed.stderr
    (launcher,) = [r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
                   if r.info.run_id != run_id]
    assert launcher.info.status == "FINISHED" and launcher.data.tags["fmnist.step"] == "finetune-resume"
    assert launcher.data.tags["fmnist.resumed_run_id"] == run_id
    info = tracking.get_run_info(run_id)
    assert info["status"] == "FINISHED" and info["tags"]["fmnist.resumed_at_epoch"] == str(epoch)
    assert [s for s, _ in history(run_id, "val_accuracy")] == [1, 2, 3]

    ds = load_dataset("fashion-mnist", data_dir=real_data_dir, subset=100, seed=0)
    ref = step.finetune(**{**BASE, "epochs": 3, "resume": "never"}, ds=ds)
    for k in FINAL:
        assert info["metrics"][k] == pytest.approx(ref[k], abs=1e-12), k
    assert history(run_id, "val_accuracy") == history(ref["run_id"], "val_accuracy")
    resumed_model = mlflow.pytorch.load_model(f"runs:/{run_id}/finetune-full-network")
    ref_model = mlflow.pytorch.load_model(f"runs:/{ref['run_id']}/finetune-full-network")
    for (k, a), b in zip(resumed_model.state_dict().items(), ref_model.state_dict().values()):
        assert torch.equal(a, b), k
