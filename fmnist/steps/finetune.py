"""Fine-tuning as a tracked, resumable step: open (or reopen) the run, train, evaluate once, log."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .. import cache, tracking
from ..data import Dataset, load_dataset, train_val_split
from ..device import resolve_device
from ..errors import CacheError, FmnistError, ParamError
from ..evaluation import classification_report, slug
from ..weights import build_resnet18, resolve_weights

log = logging.getLogger("fmnist")

RESUME_KEY_TAG = "fmnist.resume_key"  # identical params + data + code: an unfinished run with it may resume
CHECKPOINT_TAG = "fmnist.checkpoint_dir"
RESUME_CHOICES = ("auto", "never", "<run id>")
RUNTIME_ARGS = ("device", "num_workers", "progress", "data_dir")  # change speed, not results


# What training depends on: editing any of these makes an unfinished run's checkpoint unusable.
TRAINING_MODULES = ("fmnist.weights", "fmnist.finetune.augment", "fmnist.finetune.checkpoint",
                    "fmnist.finetune.modes", "fmnist.finetune.optim", "fmnist.finetune.train")


def resume_key(config: dict[str, Any], weights_id: dict[str, str], ds: Dataset) -> str:
    return cache.cache_key("finetune", {**config, **weights_id, "dataset": ds.name, "subset": ds.subset},
                           ds.digest, cache.step_code_version(*TRAINING_MODULES))


def finetune_key(*, mode: str, weights: str, val_fraction: float, ds: Dataset, **config: Any) -> str:
    """Cache key of a FINISHED fine-tune: its resume key (config, the weights ``weights`` resolves to
    now, data, training code) plus this step's own code (evaluation and logging)."""
    from ..finetune import FitConfig

    cfg = FitConfig(mode=mode, **config).validate()
    w = resolve_weights(weights)
    rk = resume_key({**cfg.as_dict(), "val_fraction": val_fraction}, {"weights": w.kind, "weights_sha256": w.sha256},
                    ds)
    return cache.cache_key("finetune-run", {"resume_key": rk}, ds.digest, cache.step_code_version(__name__))


class _Lock:
    """An exclusive flock on ``<checkpoint dir>/lock``: held while a process trains the run, released
    by the kernel when that process dies, so a live run is never resumed twice."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.f = open(folder / "lock", "w")

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _find_resumable(key: str) -> tuple[str, Path] | None:
    from ..finetune.checkpoint import checkpoint_dir, checkpoint_epoch

    for run_id in tracking.find_unfinished_runs(RESUME_KEY_TAG, key):
        folder = Path(tracking.get_run_info(run_id)["tags"].get(CHECKPOINT_TAG) or checkpoint_dir(run_id))
        if checkpoint_epoch(folder) is None:
            continue
        lock = _Lock(folder)
        if not lock.try_acquire():
            log.info("run %s has a checkpoint but another process is training it; not resuming it", run_id)
            continue
        lock.release()
        return run_id, folder
    return None


@contextmanager
def _open_run(resume_id: str | None, name: str) -> Iterator[str]:
    if resume_id is None:
        with tracking.run(name, step="finetune") as run_id:
            yield run_id
        return
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if launcher and launcher != resume_id:
        # `mlflow run` made a new run for this invocation; the training continues in the old one.
        tracking.set_run_tags(launcher, {tracking.STEP_TAG: "finetune-resume", "fmnist.resumed_run_id": resume_id,
                                         "mlflow.runName": f"resume of {resume_id[:8]}"})
    with tracking.reopen_run(resume_id) as run_id:
        yield run_id


def finetune(
    *,
    mode: str,
    weights: str,
    image_size: int,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    schedule: str,
    warmup: float,
    weight_decay: float,
    augment: bool,
    label_smoothing: float,
    seed: int,
    val_fraction: float,
    test_curve: bool,
    dataset: str = "fashion-mnist",
    data_dir: str | None = None,
    subset: int | None = None,
    device: str = "auto",
    num_workers: int = 0,
    resume: str = "auto",
    progress: bool = True,
    ds: Dataset | None = None,
) -> dict[str, Any]:
    """Fine-tune ResNet-18 and log everything to an MLflow run; returns the final metrics and run id.

    ``resume``: ``auto`` continues the newest unfinished run with identical params and data whose
    checkpoint exists; ``never`` always starts afresh; a run id continues that run with its recorded
    params (only device, num_workers, data_dir and progress come from this call).
    """
    from ..finetune import FitConfig
    from ..finetune.checkpoint import load_checkpoint

    resume = (resume or "auto").strip()
    explicit = resume.lower() not in ("auto", "never")
    if explicit:
        return _resume_explicit(resume, data_dir=data_dir, device=device, num_workers=num_workers,
                                progress=progress, ds=ds)
    cfg = FitConfig(mode=mode, image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr,
                    optimizer=optimizer, schedule=schedule, warmup=warmup, weight_decay=weight_decay,
                    augment=augment, label_smoothing=label_smoothing, seed=seed, test_curve=test_curve).validate()
    if not 0 < val_fraction < 1:
        raise ParamError(f"val_fraction must be in (0, 1), got {val_fraction}")
    dev = resolve_device(device)  # bad input fails here, before any run is opened
    w = resolve_weights(weights)
    ds = ds or load_dataset(dataset, data_dir=data_dir, subset=subset, seed=seed)
    run_params = {"mode": mode, "weights": weights, "image_size": image_size, "epochs": epochs,
                  "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "schedule": schedule,
                  "warmup": warmup, "weight_decay": weight_decay, "augment": augment,
                  "label_smoothing": label_smoothing, "seed": seed, "val_fraction": val_fraction,
                  "test_curve": test_curve, "dataset": ds.name, "subset": ds.subset or "all"}
    key = resume_key({**cfg.as_dict(), "val_fraction": val_fraction}, {"weights": w.kind, "weights_sha256": w.sha256},
                     ds)
    found = _find_resumable(key) if resume.lower() == "auto" else None
    ckpt = None
    if found:
        log.info("resuming unfinished run %s (identical params and data) from its checkpoint", found[0])
        ckpt = load_checkpoint(found[1])
    return _train_in_run(cfg, w, ds, dev, run_params, val_fraction, key, num_workers, progress,
                         resume_id=found[0] if found else None, ckpt=ckpt,
                         folder=found[1] if found else None)


def _resume_explicit(run_id: str, *, data_dir, device, num_workers, progress, ds) -> dict[str, Any]:
    from ..finetune import FitConfig
    from ..finetune.checkpoint import checkpoint_dir, load_checkpoint

    if not tracking.run_exists(run_id):
        raise ParamError(f"resume={run_id!r}: no such run in {tracking.tracking_uri()}; "
                         f"choose one of: {', '.join(RESUME_CHOICES)}")
    info = tracking.get_run_info(run_id)
    if info["tags"].get(tracking.STEP_TAG) != "finetune":
        raise ParamError(f"resume={run_id}: not a finetune run (fmnist.step={info['tags'].get(tracking.STEP_TAG)!r})")
    if info["status"] == "FINISHED":
        raise ParamError(f"resume={run_id}: that run already FINISHED; nothing to resume")
    folder = Path(info["tags"].get(CHECKPOINT_TAG) or checkpoint_dir(run_id))
    try:
        ckpt = load_checkpoint(folder)
    except CacheError as e:
        raise CacheError(f"resume={run_id}: {e} (the run died before its first epoch ended, or the checkpoint "
                         f"was removed); start a new run instead") from None
    p = ckpt["run_params"]
    cfg = FitConfig(**ckpt["config"]).validate()
    dev = resolve_device(device)
    w = resolve_weights(p["weights"])
    if w.sha256 != ckpt["weights_sha256"]:
        raise ParamError(f"resume={run_id}: the weights file changed since the run started ({w.label})")
    subset = None if p["subset"] == "all" else int(p["subset"])
    ds = ds or load_dataset(p["dataset"], data_dir=data_dir, subset=subset, seed=p["seed"])
    if ds.digest != ckpt["data_digest"]:
        raise ParamError(f"resume={run_id}: the data differ from the run's (digest {ds.digest[:12]} vs "
                         f"{ckpt['data_digest'][:12]}); pass the data_dir it used")
    log.info("resuming run %s after epoch %d/%d with its recorded params", run_id, ckpt["epoch"], cfg.epochs)
    return _train_in_run(cfg, w, ds, dev, p, p["val_fraction"], ckpt["key"], num_workers, progress,
                         resume_id=run_id, ckpt=ckpt, folder=folder)


def _train_in_run(cfg, w, ds: Dataset, dev, run_params: dict[str, Any], val_fraction: float, key: str,
                  num_workers: int, progress: bool, *, resume_id: str | None, ckpt: dict | None,
                  folder: Path | None) -> dict[str, Any]:
    from ..finetune import SplitData, fit
    from ..finetune.checkpoint import checkpoint_dir

    tr, va = train_val_split(ds.y_train, val_fraction, cfg.seed)
    split = SplitData(ds.x_train[tr], ds.y_train[tr], ds.x_train[va], ds.y_train[va], ds.x_test, ds.y_test)
    lock = None
    if folder is not None:  # resuming: refuse before touching the run if another process trains it
        lock = _Lock(folder)
        if not lock.try_acquire():
            raise FmnistError(f"run {resume_id} is being trained by another process (lock {folder / 'lock'})")
    with _open_run(resume_id, f"finetune-{cfg.mode}") as run_id:
        if lock is None:  # a new run: a new folder nobody else knows
            folder = checkpoint_dir(run_id)
            lock = _Lock(folder)
            lock.try_acquire()
        try:
            if ckpt is None:
                _log_start(run_params, w, ds, dev, num_workers, key, folder, len(tr), len(va))
            else:
                tracking.set_tags({"fmnist.resumed_at_epoch": ckpt["epoch"], "fmnist.resume_device": dev.type})
                # A kill between an epoch's checkpoint and its metrics loses only the metrics: re-log them.
                logged = {s for s, _ in tracking.metric_history(run_id, "val_accuracy")}
                for epoch, record in enumerate(ckpt["history"], start=1):
                    if epoch not in logged:
                        tracking.log_metrics(record, step=epoch)
            extra = {"key": key, "run_id": run_id, "run_params": run_params, "data_digest": ds.digest,
                     "weights_sha256": w.sha256}

            def on_epoch_end(epoch: int, record: dict[str, float]) -> None:
                tracking.log_metrics(record, step=epoch)

            model = build_resnet18(w, num_classes=ds.n_classes)
            t0 = time.perf_counter()
            res = fit(model, split, cfg, device=dev, num_workers=num_workers, progress=progress,
                      checkpoint_to=str(folder), checkpoint_extra=extra, resume_from=ckpt, on_epoch_end=on_epoch_end)
            train_seconds = time.perf_counter() - t0
            out = _log_final(res, cfg, ds, dev, train_seconds)
        finally:
            lock.release()
        shutil.rmtree(folder, ignore_errors=True)  # FINISHED: the logged model replaces the checkpoint
        out["run_id"] = run_id
        log.info("finetune %s: test accuracy %.4f, macro-F1 %.4f, best val %.4f at epoch %d (run %s)", cfg.mode,
                 out["test_accuracy"], out["macro_f1"], out["best_val_accuracy"], out["best_epoch"], run_id)
        return out


def _log_start(run_params, w, ds, dev, num_workers, key, folder, n_train, n_val) -> None:
    # tracking.log_params skips what `mlflow run` already logged from its -P values.
    tracking.log_params({**run_params, "weights_used": w.label, "weights_sha256": w.sha256, "device": dev.type,
                         "num_workers": num_workers})
    tracking.set_tags({RESUME_KEY_TAG: key, CHECKPOINT_TAG: str(folder), "fmnist.data_digest": ds.digest,
                       "fmnist.data_source": ds.source, "fmnist.weights_used": w.label})
    tracking.log_metrics({"n_train": n_train, "n_val": n_val, "n_test": len(ds.x_test)})
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        tracking.log_numpy_input(x, y, name=f"{ds.name}-{split}", digest=ds.digest, source=ds.source,
                                 context="training" if split == "train" else "testing")


def _log_final(res, cfg, ds: Dataset, dev, train_seconds: float) -> dict[str, Any]:
    import pandas as pd

    from .. import plots
    from ..finetune import export_model, predict

    t0 = time.perf_counter()
    pred = predict(res.model, ds.x_test, image_size=cfg.image_size, device=dev, batch_size=max(cfg.batch_size, 256))
    rep = classification_report(ds.y_test, pred, ds.classes)
    metrics = {"test_accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"],
               "best_val_accuracy": res.best_val_accuracy, "best_epoch": res.best_epoch,
               "predict_seconds": time.perf_counter() - t0, "fit_seconds": train_seconds}
    metrics.update({f"test_accuracy_{slug(c)}": a for c, a in rep["per_class_accuracy"].items()})
    tracking.log_metrics(metrics)
    tracking.log_table(pd.DataFrame({"class": list(ds.classes),
                                     "accuracy": list(rep["per_class_accuracy"].values())}),
                       "per_class_accuracy.csv")
    fig = learning_curve_figure(res.history, res.best_epoch, f"ResNet-18 {cfg.mode}")
    tracking.log_figure(fig, "learning_curve.png")
    plots.close(fig)
    fig = plots.confusion_matrix_figure(rep["confusion"], ds.classes, f"ResNet-18 fine-tune ({cfg.mode}), test")
    tracking.log_figure(fig, "confusion_matrix.png")
    plots.close(fig)
    example = (ds.x_test[:2].astype(np.float32) / 255.0)  # raw pixels in [0, 1], shape (B, 28, 28)
    tracking.log_pytorch_model(export_model(res.model, cfg.image_size, ds.x_test.shape[-1]), name="model",
                               input_example=example)
    return {k: metrics[k] for k in ("test_accuracy", "macro_f1", "best_val_accuracy", "best_epoch")} | {
        "history": res.history, "start_epoch": res.start_epoch, "model": res.model}


def learning_curve_figure(history: list[dict[str, float]], best_epoch: int, title: str = ""):
    """Loss (left) and accuracy (right) per epoch; the selected (best validation) epoch is marked."""
    import matplotlib.pyplot as plt

    ep = np.arange(1, len(history) + 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    a1.plot(ep, [h["train_loss"] for h in history], "o-", color="navy", label="train loss")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend()
    a2.plot(ep, [h["train_accuracy"] * 100 for h in history], "o-", color="navy", label="train")
    a2.plot(ep, [h["val_accuracy"] * 100 for h in history], "o-", color="orange", label="validation")
    if all("test_accuracy_curve" in h for h in history):
        a2.plot(ep, [h["test_accuracy_curve"] * 100 for h in history], "--", color="gray",
                label="test (curve only, not used to select)")
    a2.axvline(best_epoch, color="green", ls=":", label=f"selected epoch {best_epoch}")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy (%)")
    a2.legend()
    for a in (a1, a2):
        a.set_xticks(ep)
        a.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
