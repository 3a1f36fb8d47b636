"""Fine-tuning as a step: open (or reopen, to resume) the run, train, evaluate once, log."""

from __future__ import annotations

import fcntl
import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterator

import click
import numpy as np

from .. import cache, tracking
from ..data import Dataset, train_val_split
from ..device import resolve_device
from ..errors import CacheError, FmnistError, ParamError
from ..evaluation import CI_METHOD, accuracy_metrics, classification_report, predictions_arrays, slug
from ..finetune import MODES, OPTIMIZERS, SCHEDULES, FitConfig
from ..finetune.train import FAST_RECIPE
from ..weights import build_resnet18, resolve_weights
from .base import (DATA_COLUMNS, PREDICTIONS, Placement, RunContext, Step, data_params, get_or_run,
                   log_predictions, scaled, split_evaluation)
from .params import Common, key_fields, key_values, param
from ..tags import (CHECKPOINT_TAG, CI_METHOD_TAG, RESUMED_AT_EPOCH_TAG, RESUMED_RUN_TAG, RESUME_DEVICE_TAG,
                    RESUME_KEY_TAG, WEIGHTS_USED_PARAM, WEIGHTS_USED_TAG, EPOCHS_PARAM, IMAGE_SIZE_PARAM, MODE_PARAM,
                    param_col)

log = logging.getLogger("fmnist")

RESUME_CHOICES = ("auto", "never", "<run id>")

# What training depends on: editing any of these makes an unfinished run's checkpoint unusable.
TRAINING_MODULES = ("fmnist.weights", "fmnist.finetune.augment", "fmnist.finetune.checkpoint",
                    "fmnist.finetune.modes", "fmnist.finetune.optim", "fmnist.finetune.train")

F = FitConfig  # the training defaults live on FitConfig
WEIGHTS = "weights"  # key group: the weights as they resolve, and their checksum


@dataclass(frozen=True)
class FinetuneParams(Common):
    mode: str = param(F.mode, f"{' | '.join(MODES.names())} (or all, or a comma list: one run each): last_layer "
                              "trains only the new head (BatchNorm statistics frozen).")
    weights: str = param("auto", "imagenet | none | auto (imagenet if obtainable, else none) | path to a resnet18 .pth.",
                         key=WEIGHTS)
    image_size: int = param(F.image_size, "Images are resized to this on the device.", type=click.IntRange(16, 512))
    epochs: int = param(F.epochs, "Training epochs.", type=click.IntRange(min=1))
    batch_size: int = param(F.batch_size, "Images per training step.", type=click.IntRange(min=1))
    lr: float = param(F.lr, "Peak learning rate.", type=click.FloatRange(min=0, min_open=True))
    optimizer: str = param(F.optimizer, " | ".join(OPTIMIZERS.names()))
    schedule: str = param(F.schedule, f"{' | '.join(SCHEDULES.names())} (per step, with warm-up).")
    warmup: float = param(F.warmup, "Fraction of all steps spent warming up.", type=click.FloatRange(0, 1, max_open=True))
    weight_decay: float = param(F.weight_decay, "L2 penalty.", type=click.FloatRange(min=0))
    augment: bool = param(F.augment, "Random crop (4 px zero padding), on the device (+ flips: see flip).")
    flip: bool = param(F.flip, "Augmentation also mirrors half the images.")
    recipe: str = param(F.recipe, "standard (batches gathered on the CPU) | fast (the training set on the device "
                                  "as one uint8 tensor); the study's full profile on a GPU: fast, with its settings.")
    ema: float = param(F.ema, "Exponential moving average of the weights, decay per step (0: none); the average "
                              "is what is evaluated and kept.", type=click.FloatRange(0, 1, max_open=True))
    tta: bool = param(F.tta, "Test-time augmentation: logits averaged with the mirrored image's (validation, "
                             "test, and the served model).")
    label_smoothing: float = param(F.label_smoothing, "Label smoothing of the loss.",
                                   type=click.FloatRange(0, 1, max_open=True))
    val_fraction: float = param(0.1, "Validation split carved from the training set (model selection).",
                                type=click.FloatRange(0, 1, min_open=True, max_open=True))
    test_curve: bool = param(F.test_curve, "Also log test accuracy per epoch as test_accuracy_curve "
                                           "(never used to select).")
    num_workers: int = param(0, "DataLoader processes gathering uint8 batches (0: in the main process).",
                             key=False, type=click.IntRange(min=0))
    resume: str = param("auto", "auto (continue an identical unfinished run), never, or a run id to continue.",
                        key=False)

    def __post_init__(self) -> None:
        # recipe=fast: its settings (FAST_RECIPE) for every one left at, or given as, its standard default;
        # resolved here, so the run's params, its key and the training all see the same values.
        if self.recipe == "fast":
            for k, v in FAST_RECIPE.items():
                if getattr(self, k) == getattr(FitConfig, k):
                    object.__setattr__(self, k, v)

    def key_group(self, name: str, ds: Dataset) -> dict[str, Any]:
        """The weights as they resolve now (``auto``: imagenet when obtainable), and the file's checksum."""
        w = resolve_weights(self.weights)
        return {"weights": w.kind, "weights_sha256": w.sha256}

    def fit_config(self) -> FitConfig:
        return FitConfig(**{f.name: getattr(self, f.name) for f in fields(FitConfig)}).validate()

    def check(self) -> "FinetuneParams":
        """Every check on the user's input, before any run opens."""
        self.fit_config()
        if not 0 < self.val_fraction < 1:
            raise ParamError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        resolve_device(self.device)
        resolve_weights(self.weights)
        return self


def resume_key(p: FinetuneParams, ds: Dataset) -> str:
    """Identical params (weights as they resolve now), data and training code: a checkpoint may continue. (The
    cache key, ``FINETUNE.key``, also holds this step's own code: evaluation and logging.)"""
    return cache.cache_key("finetune-resume", key_values(p, ds), ds.digest, cache.step_code_version(*TRAINING_MODULES))


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


def _local_folder(run_id: str, info: dict[str, Any] | None = None) -> Path:
    """The run's checkpoint folder on this machine: the one it recorded when that holds a checkpoint (the machine
    that started it), else ``$FMNIST_CHECKPOINT_DIR/<run id>`` (a copy downloaded here, or none yet)."""
    from ..finetune.checkpoint import checkpoint_dir, checkpoint_epoch

    tagged = (info or tracking.get_run_info(run_id))["tags"].get(CHECKPOINT_TAG)
    if tagged and checkpoint_epoch(tagged) is not None:
        return Path(tagged)
    return checkpoint_dir(run_id)


def _upload_checkpoint(run_id: str, folder: str, epoch: int, best_written: bool) -> None:
    """``fit``'s ``on_checkpoint``: the epoch's checkpoint into the run's artifacts (``checkpoints/last/``; the
    best weights in ``checkpoints/best/`` only when they changed), so that any machine can resume the run."""
    from ..finetune.checkpoint import BEST_FILE, CHECKPOINT_FILE, STATE_FILE

    t0 = time.perf_counter()
    tracking.log_checkpoint_files(run_id, [Path(folder) / CHECKPOINT_FILE, Path(folder) / STATE_FILE], "last")
    if best_written:
        tracking.log_checkpoint_files(run_id, [Path(folder) / BEST_FILE], "best")
    log.debug("epoch %d checkpoint uploaded in %.2fs%s", epoch, time.perf_counter() - t0,
              " (with the best weights)" if best_written else "")


def _fetch_checkpoint(run_id: str, info: dict[str, Any] | None = None) -> Path:
    """The run's checkpoint folder here, holding its newest checkpoint: the local copy, unless the run's artifacts
    hold a later epoch (or the only copy: the run trained on another machine), which is then downloaded into it."""
    import json

    from ..finetune.checkpoint import BEST_FILE, CHECKPOINT_FILE, STATE_FILE, checkpoint_epoch

    folder = _local_folder(run_id, info)
    local = checkpoint_epoch(folder)
    with tempfile.TemporaryDirectory() as d:
        state = tracking.download_checkpoint_file(run_id, f"last/{STATE_FILE}", d)
        remote = json.loads(state.read_text())["epoch"] if state else None
    if remote is None or (local is not None and local >= remote):
        return folder
    lock = _Lock(folder)
    if not lock.try_acquire():
        raise FmnistError(f"run {run_id} is being trained by another process (lock {folder / 'lock'})")
    try:
        log.info("run %s: downloading its epoch-%d checkpoint from the run's artifacts into %s", run_id, remote,
                 folder)
        # best.pt first, state.json last: the folder never pairs a new last.pt with a stale best.pt
        if tracking.download_checkpoint_file(run_id, f"best/{BEST_FILE}", folder) is None:
            (folder / BEST_FILE).unlink(missing_ok=True)
        for name in (CHECKPOINT_FILE, STATE_FILE):
            tracking.download_checkpoint_file(run_id, f"last/{name}", folder)
    finally:
        lock.release()
    return folder


def _find_resumable(key: str) -> tuple[str, Path] | None:
    """An unfinished run with this resume key whose checkpoint is on this machine and that no process here trains.
    (Only local copies: a run still training on another machine holds no lock here. ``resume=<run id>`` takes
    one from the run's artifacts.)"""
    from ..finetune.checkpoint import checkpoint_epoch

    for run_id in tracking.find_unfinished_runs(RESUME_KEY_TAG, key):
        folder = _local_folder(run_id)
        if checkpoint_epoch(folder) is None:
            continue
        lock = _Lock(folder)
        if not lock.try_acquire():
            log.info("run %s has a checkpoint but another process is training it; not resuming it", run_id)
            continue
        lock.release()
        return run_id, folder
    return None


def _resume_target(p: FinetuneParams, key: str) -> tuple[str, Path] | None:
    if p.resume.lower() == "never":
        return None
    if p.resume.lower() == "auto":
        return _find_resumable(key)
    return p.resume, _fetch_checkpoint(p.resume)


class Finetune(Step):
    name = "finetune"
    Params = FinetuneParams
    report_cell = (MODE_PARAM, WEIGHTS_USED_PARAM)
    report_columns = (*(param_col(k) for k in (MODE_PARAM, WEIGHTS_USED_PARAM, EPOCHS_PARAM, IMAGE_SIZE_PARAM)),
                      *DATA_COLUMNS)

    def tolerances(self, p: FinetuneParams) -> dict[str, float]:
        # On a CPU training is deterministic: seeded, fixed thread count, no autotuning: a rerun is identical.
        # CUDA trains under bf16 autocast with cuDNN's autotuned (not bitwise deterministic) kernels; until a GPU
        # rerun has been measured, a result is taken as reproduced within half a point of accuracy.
        if resolve_device(p.device).type != "cuda":
            return {}
        return {"test_accuracy*": 0.005, "macro_f1": 0.005, "best_val_accuracy": 0.005, "train_accuracy": 0.005,
                "val_accuracy": 0.005, "train_loss": 0.01, "best_epoch": 1, "predictions_changed": 0.005}

    def code(self, p: FinetuneParams) -> str:
        return f"{cache.step_code_version(*TRAINING_MODULES)}/{cache.step_code_version(__name__, 'fmnist.steps.base')}"

    def run_name(self, p: FinetuneParams) -> str:
        return f"finetune-{p.mode}"

    def label(self, p: FinetuneParams) -> str:
        return p.mode

    def run_params(self, p: FinetuneParams, ds: Dataset) -> dict[str, Any]:
        w = resolve_weights(p.weights)
        # mode, epochs, image_size (MODE_PARAM, ...): the key fields under their own names
        return {**key_fields(p), **data_params(ds), WEIGHTS_USED_PARAM: w.label,
                "weights_sha256": w.sha256, "device": resolve_device(p.device).type, "num_workers": p.num_workers}

    def resources(self, p: FinetuneParams) -> dict[str, float]:
        # torch training uses every core it is given, and the GPU when present; cost: the mode's seconds per
        # epoch of 60k images at 32 px, declared beside it
        epoch = MODES.get(p.mode).hook("cost", 60.0) * (p.image_size / 32) ** 2
        return {"num_cpus": 2, "gpu": 1, "cost": scaled(epoch * p.epochs, p.subset, 60000)}

    @contextmanager
    def open(self, p: FinetuneParams, ds: Dataset, placement: Placement) -> Iterator[RunContext]:
        from ..finetune.checkpoint import checkpoint_dir, load_checkpoint

        key = resume_key(p, ds)  # once per run: the lookup, the run's tag and the checkpoint all hold it
        target = _resume_target(p, key)
        lock = _Lock(target[1]) if target else None
        if lock is not None and not lock.try_acquire():  # refuse before touching the run
            raise FmnistError(f"run {target[0]} is being trained by another process (lock {target[1] / 'lock'})")
        opened = _reopen(target[0], placement.launcher) if target else tracking.run(
            self.run_name(p), step=self.name, parent_run_id=placement.parent, launcher=placement.launcher)
        with opened as run_id:
            folder = target[1] if target else checkpoint_dir(run_id)
            if lock is None:  # a new run: a new folder nobody else knows
                lock = _Lock(folder)
                lock.try_acquire()
            try:
                ckpt = load_checkpoint(folder) if target else None
                _log_start(p, ds, run_id, folder, ckpt, key)
                yield RunContext(run_id, state={"ckpt": ckpt, "folder": folder, "resume_key": key})
            finally:
                lock.release()
        shutil.rmtree(folder, ignore_errors=True)  # FINISHED: the logged model replaces the checkpoint

    def run(self, p: FinetuneParams, ds: Dataset, inputs: dict, ctx: RunContext) -> dict[str, Any]:
        from ..finetune import SplitData, fit, predict_proba

        cfg, dev, w = p.fit_config(), resolve_device(p.device), resolve_weights(p.weights)
        tr, va = train_val_split(ds.y_train, p.val_fraction, cfg.seed)
        split = SplitData(ds.x_train[tr], ds.y_train[tr], ds.x_train[va], ds.y_train[va], ds.x_test, ds.y_test)
        extra = {"key": ctx.state["resume_key"], "run_id": ctx.run_id, "run_params": key_fields(p),
                 "data_digest": ds.digest, "weights_sha256": w.sha256}
        t0 = time.perf_counter()
        res = fit(build_resnet18(w, num_classes=ds.n_classes), split, cfg, device=dev, num_workers=p.num_workers,
                  progress=p.progress, checkpoint_to=str(ctx.state["folder"]), checkpoint_extra=extra,
                  resume_from=ctx.state["ckpt"], on_epoch_end=lambda e, rec: ctx.report(rec, e),
                  on_checkpoint=lambda folder, e, best: _upload_checkpoint(ctx.run_id, folder, e, best))
        train_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        proba = predict_proba(res.model, ds.x_test, image_size=cfg.image_size, device=dev,
                              batch_size=max(cfg.batch_size, 256), tta=cfg.tta)
        pred = proba.argmax(1)
        rep = classification_report(ds.y_test, pred, ds.classes)
        metrics = {**accuracy_metrics(ds.y_test, pred), "macro_f1": rep["macro_f1"],
                   "best_val_accuracy": res.best_val_accuracy, "best_epoch": res.best_epoch,
                   "predict_seconds": time.perf_counter() - t0, "fit_seconds": train_seconds}
        metrics.update({f"test_accuracy_{slug(c)}": a for c, a in rep["per_class_accuracy"].items()})
        log.info("finetune %s: test accuracy %.4f, macro-F1 %.4f, best val %.4f at epoch %d (run %s)", cfg.mode,
                 rep["accuracy"], rep["macro_f1"], res.best_val_accuracy, res.best_epoch, ctx.run_id)
        return {**{k: metrics[k] for k in ("test_accuracy", "macro_f1", "best_val_accuracy", "best_epoch")},
                "metrics": metrics, "report": rep, "history": res.history, "start_epoch": res.start_epoch,
                "model": res.model, "run_id": ctx.run_id,
                "predictions": predictions_arrays(ds.y_test, pred, proba, ds.test_index, ds.test_split)}

    def log(self, p: FinetuneParams, ds: Dataset, r: dict[str, Any]) -> dict[str, str]:
        _log_final(r, p, ds)
        return {PREDICTIONS: log_predictions(r["predictions"])}


FINETUNE = Finetune()


@contextmanager
def _reopen(run_id: str, launcher: str | None) -> Iterator[str]:
    if launcher and launcher != run_id:
        # `mlflow run` made a new run for this invocation; the training continues in the old one.
        tracking.set_run_tags(launcher, {tracking.STEP_TAG: "finetune-resume", RESUMED_RUN_TAG: run_id,
                                         "mlflow.runName": f"resume of {run_id[:8]}"})
    with tracking.reopen_run(run_id) as rid:
        yield rid


def _log_start(p: FinetuneParams, ds: Dataset, run_id: str, folder: Path, ckpt: dict | None, key: str) -> None:
    if ckpt is not None:
        tracking.set_tags({RESUMED_AT_EPOCH_TAG: ckpt["epoch"],
                           RESUME_DEVICE_TAG: resolve_device(p.device).type})
        # A kill between an epoch's checkpoint and its metrics loses only the metrics: re-log them.
        logged = {s for s, _ in tracking.metric_history(run_id, "val_accuracy")}
        for epoch, record in enumerate(ckpt["history"], start=1):
            if epoch not in logged:
                tracking.log_metrics(record, step=epoch)
        return
    tr, va = train_val_split(ds.y_train, p.val_fraction, p.seed)
    tracking.set_tags({RESUME_KEY_TAG: key, CHECKPOINT_TAG: str(folder),
                       WEIGHTS_USED_TAG: resolve_weights(p.weights).label})
    tracking.log_metrics({"n_train": len(tr), "n_val": len(va), "n_test": len(ds.x_test)})
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        tracking.log_numpy_input(x, y, name=f"{ds.name}-{split}", digest=ds.digest, source=ds.source,
                                 context="training" if split == "train" else "testing")


def _log_final(r: dict[str, Any], p: FinetuneParams, ds: Dataset) -> None:
    import pandas as pd

    from .. import plots
    from ..finetune import export_model
    from ..predictor import for_network

    rep = r["report"]
    evaluation, other = split_evaluation(r["metrics"])
    tracking.log_metrics(other)
    tracking.set_tags({CI_METHOD_TAG: CI_METHOD})
    tracking.log_table(pd.DataFrame({"class": list(ds.classes), "accuracy": list(rep["per_class_accuracy"].values())}),
                       "per_class_accuracy.csv")
    fig = learning_curve_figure(r["history"], r["best_epoch"], f"ResNet-18 {p.mode}")
    tracking.log_figure(fig, "learning_curve.png")
    plots.close(fig)
    fig = plots.confusion_matrix_figure(rep["confusion"], ds.classes, f"ResNet-18 fine-tune ({p.mode}), test")
    tracking.log_figure(fig, "confusion_matrix.png")
    plots.close(fig)
    example = (ds.x_test[:2].astype(np.float32) / 255.0)  # raw pixels in [0, 1], shape (B, 28, 28)
    name = f"finetune-{p.mode}"
    # the network alone (its own input: float pixels 0-1), beside the image model a user serves
    tracking.log_pytorch_model(export_model(r["model"], p.image_size, ds.x_test.shape[-1]), name=f"{name}-network",
                               input_example=example)
    model_id = tracking.log_image_model(for_network(r["model"], p.image_size, ds.classes, tta=p.tta), name=name,
                                        input_example=ds.x_test[:2])
    test = tracking.numpy_dataset(ds.x_test, ds.y_test, name=f"{ds.name}-test", digest=ds.digest, source=ds.source)
    tracking.log_evaluation(evaluation, test, model_id)


def params_to_resume(run_id: str, p: FinetuneParams) -> tuple[FinetuneParams, str]:
    """The recorded params of an unfinished run (only device, num_workers, data_dir, progress from ``p``)."""
    from ..finetune.checkpoint import load_checkpoint
    from ..finetune.train import check_checkpoint

    if not tracking.run_exists(run_id):
        raise ParamError(f"resume={run_id!r}: no such run in {tracking.tracking_uri()}; "
                         f"choose one of: {', '.join(RESUME_CHOICES)}")
    info = tracking.get_run_info(run_id)
    if info["tags"].get(tracking.STEP_TAG) != "finetune":
        raise ParamError(f"resume={run_id}: not a finetune run (fmnist.step={info['tags'].get(tracking.STEP_TAG)!r})")
    if info["status"] == "FINISHED":
        raise ParamError(f"resume={run_id}: that run already FINISHED; nothing to resume")
    try:
        ckpt = load_checkpoint(_fetch_checkpoint(run_id, info))  # downloaded from the run's artifacts if not here
    except CacheError as e:
        raise CacheError(f"resume={run_id}: {e} (the run died before its first epoch ended, or the checkpoint "
                         f"was removed); start a new run instead") from None
    check_checkpoint({**ckpt, "run_id": run_id})
    recorded = FinetuneParams(**ckpt["run_params"])
    if resolve_weights(recorded.weights).sha256 != ckpt["weights_sha256"]:
        raise ParamError(f"resume={run_id}: the weights file changed since the run started")
    log.info("resuming run %s after epoch %d/%d with its recorded params", run_id, ckpt["epoch"], recorded.epochs)
    return replace(recorded, device=p.device, num_workers=p.num_workers, data_dir=p.data_dir, progress=p.progress,
                   resume=run_id, force=True), ckpt["data_digest"]


def finetune(*, ds: Dataset | None = None, **kw: Any) -> dict[str, Any]:
    """Fine-tune ResNet-18 in one mode as a cached, resumable run; returns the final metrics and the run id.

    ``resume``: ``auto`` continues the newest unfinished run with identical params and data whose
    checkpoint exists; ``never`` always starts afresh; a run id continues that run with its recorded params.
    """
    p, ds = _prepared(FinetuneParams(**kw), ds)
    out = get_or_run(FINETUNE, p, ds)
    return {**(out.result if isinstance(out.result, dict) else {}), "run_id": out.run_id, "cached": out.cached}


def _prepared(p: FinetuneParams, ds: Dataset | None, modes: list[str] | None = None) -> tuple[FinetuneParams, Dataset]:
    """The params to run (a resume's recorded ones), checked before any run opens, and their data."""
    digest = None
    if p.resume.strip().lower() not in ("auto", "never"):
        p, digest = params_to_resume(p.resume.strip(), p)
    for m in modes or [p.mode]:
        replace(p, mode=m).check()
    ds = ds if ds is not None else p.load()
    if digest and ds.digest != digest:
        raise ParamError(f"resume={p.resume}: the data differ from the run's (digest {ds.digest[:12]} vs "
                         f"{digest[:12]}); pass the data_dir it used")
    return p, ds


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
