"""The fine-tuning loop: uint8 images held as tensors, augmentation and preprocessing on the device,
bf16 autocast on CUDA, channels_last everywhere, model selection on a validation split, per-epoch checkpoints."""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from .. import signals
from ..errors import ParamError
from ..weights import IMAGENET_MEAN, IMAGENET_STD, imagenet_preprocess
from .base import MODES, OPTIMIZERS, SCHEDULES
from .augment import augment_batch
from .checkpoint import rng_state, save_checkpoint, set_rng_state
from .modes import set_train_mode
from .optim import build_optimizer, build_schedule, schedule_impl

log = logging.getLogger("fmnist")

AUGMENT_PADDING = 4
# How ``fit`` feeds the network: "standard" gathers batches on the CPU (DataLoader workers) and copies each to
# the device; "fast" puts the whole training set on the device once, as one uint8 tensor, and gathers there.
RECIPES = ("standard", "fast")
# The fast recipe's guess, for a GPU (the study's full profile there; bench/gpu.py chooses on the device):
# the data on the device, 32 px, large batches, Nesterov SGD on a one-cycle schedule, an EMA of the weights,
# translations without flips (garments face one way), label smoothing.
FAST_RECIPE: dict[str, Any] = {"recipe": "fast", "image_size": 32, "epochs": 16, "batch_size": 512, "lr": 0.4,
                               "warmup": 0.25, "weight_decay": 5e-4, "label_smoothing": 0.1, "augment": True,
                               "flip": False, "ema": 0.999, "tta": False}
# Modes trained channels_last on the CPU too. bench/finetune.py on a 2-core AMD EPYC (2026-12-02, idle, two
# runs, NCHW -> channels_last): last_layer 703 -> 1,114 and 681 -> 1,180 img/s at 32 px, 234 -> 397 and
# 258 -> 349 at 64 px; full 185 -> 170 and 154 -> 186 at 32 px, 67 -> 67 and 76 -> 73 at 64 px (noise), so
# full stays NCHW there. A bench may change the set to compare.
CHANNELS_LAST_CPU_MODES = {"last_layer"}
# Devices whose convolutions skip the taps that read only padding (``fmnist.padcrop``; exact). CUDA is left
# out until measured. A bench may change the set to compare.
PAD_CROP_DEVICES = {"cpu"}


def _channels_last(dev, mode: str) -> bool:
    return dev.type == "cuda" or (dev.type == "cpu" and mode in CHANNELS_LAST_CPU_MODES)


def _pad_crop(model, dev):
    from ..padcrop import cropped_padding

    return cropped_padding(model, enabled=dev.type in PAD_CROP_DEVICES)


def _is_nhwc(model) -> bool:
    """Whether the model's weights are channels_last (its inputs should follow them)."""
    import torch

    w = getattr(getattr(model, "conv1", None), "weight", None)
    return w is not None and w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


@dataclass(frozen=True)
class FitConfig:
    """Everything that changes the result of ``fit`` (the run's cache key is built from it)."""

    mode: str = "full"
    image_size: int = 64
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    optimizer: str = "sgd"
    schedule: str = "onecycle"
    warmup: float = 0.2
    weight_decay: float = 5e-4
    augment: bool = True
    label_smoothing: float = 0.1
    seed: int = 0
    test_curve: bool = False
    recipe: str = "standard"
    ema: float = 0.0  # decay per step of an exponential moving average of the weights (0: none)
    flip: bool = True  # augmentation mirrors half the images
    tta: bool = False  # evaluation averages each image's logits with its mirror's

    def validate(self) -> "FitConfig":
        if self.recipe not in RECIPES:
            raise ParamError(f"unknown recipe {self.recipe!r}; choose one of: {', '.join(RECIPES)}")
        MODES.get(self.mode)
        OPTIMIZERS.get(self.optimizer)
        SCHEDULES.get(self.schedule)
        checks = [
            (self.epochs > 0, f"epochs must be > 0, got {self.epochs}"),
            (self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (0 <= self.warmup < 1, f"warmup must be in [0, 1), got {self.warmup}"),
            (16 <= self.image_size <= 512, f"image_size must be in 16..512, got {self.image_size}"),
            (0 <= self.ema < 1, f"ema must be in [0, 1), got {self.ema}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ParamError(msg)
        return self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SplitData:
    """uint8 images (N, H, W) and int64 labels; the test split is only read for the optional curve."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


@dataclass
class FitResult:
    model: Any  # best-validation-epoch weights loaded
    history: list[dict[str, float]]  # one record per epoch (resumed epochs included)
    best_val_accuracy: float
    best_epoch: int
    start_epoch: int  # the first epoch this call trained (1, or the one after a resumed checkpoint)
    info: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_generator(seed: int, epoch: int):
    """Shuffling and augmentation draws depend on (seed, epoch) only: a resumed run replays them exactly."""
    import torch

    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class _Batches:
    """Batch ``i`` of a permutation, gathered from the in-memory uint8 arrays (a map-style dataset of
    whole batches, so DataLoader workers gather batches, not single images)."""

    def __init__(self, x, y, perm, batch_size: int, steps: int):
        self.x, self.y, self.perm, self.bs, self.steps = x, y, perm, batch_size, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int):
        idx = self.perm[i * self.bs:(i + 1) * self.bs]
        return self.x[idx], self.y[idx]


def _loader(x, y, perm, batch_size: int, steps: int, num_workers: int, pin: bool):
    import torch

    return torch.utils.data.DataLoader(_Batches(x, y, perm, batch_size, steps), batch_size=None, shuffle=False,
                                       num_workers=num_workers, pin_memory=pin)


def _inputs(xb, image_size: int, nhwc: bool, augment: bool, generator, flip: bool = True):
    """uint8 (B, H, W) on the device -> normalised float (B, 3, S, S), channels_last where it pays."""
    import torch

    if augment:
        xb = augment_batch(xb, padding=AUGMENT_PADDING, flip=flip, generator=generator)
    x = imagenet_preprocess(xb.float().div_(255.0), image_size)
    return x.contiguous(memory_format=torch.channels_last) if nhwc else x


def predict(model, images: np.ndarray, *, image_size: int, device, batch_size: int = 512,
            tta: bool = False) -> np.ndarray:
    """Class predictions (int64) for uint8 images, in eval mode, batch by batch (``tta``: logits averaged with
    the mirrored image's)."""
    return _forward(model, images, image_size, device, batch_size, lambda z: z.argmax(1), np.int64, (), tta)


def predict_proba(model, images: np.ndarray, *, image_size: int, device, batch_size: int = 512,
                  tta: bool = False) -> np.ndarray:
    """Softmax class probabilities (float32, images x classes) for uint8 images, in eval mode."""
    n_classes = model.fc.out_features
    return _forward(model, images, image_size, device, batch_size, lambda z: z.float().softmax(1), np.float32,
                    (n_classes,), tta)


def _forward(model, images: np.ndarray, image_size: int, device, batch_size: int, head, dtype, tail,
             tta: bool = False) -> np.ndarray:
    import torch

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    nhwc = _is_nhwc(model)
    was_training = model.training
    model.eval()
    out = np.empty((len(images), *tail), dtype=dtype)
    xt = torch.from_numpy(np.require(images, requirements=["C", "W"]))
    try:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda), _pad_crop(model, dev):
            for s in range(0, len(images), batch_size):
                xb = xt[s:s + batch_size]
                xb = (xb.pin_memory() if cuda else xb).to(dev, non_blocking=True)
                x = _inputs(xb, image_size, nhwc, False, None)
                z = model(x)
                if tta:
                    z = (z.float() + model(x.flip(-1)).float()) / 2
                out[s:s + len(xb)] = head(z).cpu().numpy()
    finally:
        model.train(was_training)
    return out


@dataclass(frozen=True)
class EpochStats:
    """What one ``train_one_epoch`` pass measured."""

    train_loss: float  # mean over the images seen (dropped last batch excluded)
    train_accuracy: float
    images: int
    seconds: float  # the pass alone, device synchronised; no evaluation


def _batching(n: int, batch_size: int) -> tuple[int, int]:
    """(batch size, steps per epoch); the incomplete last batch is dropped (reshuffled every epoch)."""
    bs = min(batch_size, n)
    return bs, max(n // bs, 1)


def _as_tensor(a):
    import torch

    if isinstance(a, torch.Tensor):
        return a
    return torch.from_numpy(np.require(a, requirements=["C", "W"]))  # IDX arrays are read-only views


def train_one_epoch(model, optimizer, scheduler, images, labels, *, generator, image_size: int, batch_size: int,
                    device, mode: str = "full", augment: bool = False, label_smoothing: float = 0.0,
                    num_workers: int = 0, progress: bool = False, desc: str = "train", flip: bool = True,
                    resident: bool = False, on_step: Callable[[], None] | None = None) -> EpochStats:
    """One pass over ``images``/``labels`` (uint8 (N, H, W) and int64, arrays or tensors) in an order
    drawn from ``generator``, which then also draws the augmentation; ``scheduler`` steps every batch, then
    ``on_step()`` (an EMA's update). ``resident``: the tensors sit on ``device`` (``fit`` put them there once)
    and each batch is gathered there: no DataLoader, no copy per batch."""
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    nhwc = _is_nhwc(model)
    x_all, y_all = _as_tensor(images), _as_tensor(labels)
    bs, steps = _batching(len(x_all), batch_size)
    perm = torch.randperm(len(x_all), generator=generator)  # first draw of the generator, before augmentation
    set_train_mode(model, mode)
    # Running sums stay on the device: an .item() per step would sync it every batch.
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    seen = 0
    if resident:  # the fast recipe: one gather per batch, on the device
        x_all, y_all, order = x_all.to(dev), y_all.to(dev), perm.to(dev)
        batches = ((x_all[idx], y_all[idx]) for idx in order[:steps * bs].view(steps, bs))
    else:
        batches = _loader(x_all, y_all, perm, bs, steps, num_workers, cuda)
    with _bar(progress, total=steps * bs, desc=desc) as bar:
        for i, (xb, yb) in enumerate(batches):
            xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
            x = _inputs(xb, image_size, nhwc, augment, generator, flip)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if on_step is not None:
                on_step()
            loss_sum += loss.detach() * len(yb)
            correct += (logits.detach().argmax(1) == yb).sum()
            seen += len(yb)
            bar.update(len(yb))
            signals.check()  # a SIGTERM swallowed mid-batch (it landed in a GC callback) stops here
            if progress and (i % 10 == 0 or i == steps - 1):  # .item() syncs the device: not every step
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{scheduler.get_last_lr()[0]:.3g}")
    if cuda:
        torch.cuda.synchronize(dev)  # CUDA runs asynchronously: time the work, not the queueing
    return EpochStats(float(loss_sum.item() / seen), float(correct.item() / seen), seen, time.perf_counter() - t0)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int) -> None:
        pass


def _bar(progress: bool, *, total: int, desc: str):
    """tqdm's bar when asked for (imported then only: a GPU box may lack it), else nothing."""
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    # disable=None: tqdm's own "off unless a terminal" (a log file gets the epoch lines, not redraws)
    return tqdm(total=total, desc=desc, unit="img", disable=None, mininterval=1.0, leave=False)


def evaluate(model, images: np.ndarray, labels: np.ndarray, *, image_size: int, device,
             batch_size: int = 512, tta: bool = False) -> float:
    """Accuracy of ``predict`` on uint8 ``images`` against ``labels``."""
    pred = predict(model, images, image_size=image_size, device=device, batch_size=batch_size, tta=tta)
    return float((pred == labels).mean())


@dataclass
class _Progress:
    """What a run carries from epoch to epoch (and saves in, and restores from, a checkpoint)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = -1.0
    best_epoch: int = 0
    best_state: dict[str, Any] | None = None
    start: int = 1
    best_saved: int = 0  # the epoch whose weights the checkpoint folder's best.pt holds (0: none)

    def add(self, epoch: int, record: dict[str, float], model) -> None:
        self.history.append(record)
        if record["val_accuracy"] > self.best_val:  # strict: ties keep the earlier epoch
            self.best_val, self.best_epoch = record["val_accuracy"], epoch
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _ema(model, decay: float):
    """torch's exponential moving average of ``model`` (buffers too: BatchNorm statistics), or None."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _prepare(model, cfg: FitConfig, dev, n: int):
    """Move ``model`` to ``dev``, apply the mode; the optimizer and a schedule spanning all epochs."""
    import torch

    model = model.to(dev)
    if _channels_last(dev, cfg.mode):
        model = model.to(memory_format=torch.channels_last)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    trainable = MODES.get(cfg.mode)(model)
    opt = build_optimizer(cfg.optimizer, trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = build_schedule(cfg.schedule, opt, total_steps=cfg.epochs * _batching(n, cfg.batch_size)[1],
                           warmup=cfg.warmup)
    return model, opt, sched


def check_checkpoint(ck: dict[str, Any]) -> None:
    """Refuse, in one line naming the run, a checkpoint this code cannot continue: one whose learning-rate
    schedule was implemented otherwise (the one-cycle schedule before ``OneCycleLR`` recorded no
    ``schedule_impl``)."""
    schedule = (ck.get("config") or {}).get("schedule", "")
    if schedule not in SCHEDULES:
        return  # an unknown name: the configuration check says so
    got, want = ck.get("schedule_impl", ""), schedule_impl(schedule)
    if got != want:
        run = f"run {ck['run_id']}" if ck.get("run_id") else "this run"
        old = (f"the old hand-written (LambdaLR) {schedule} schedule" if not got else f"{schedule} as {got}")
        raise ParamError(f"{run} cannot be resumed: its checkpoint was made with {old}, this version runs "
                         f"{schedule} as {want or 'LambdaLR'} and cannot continue it; start a new run (resume=never)")


def _restore(ck: dict[str, Any], cfg: FitConfig, model, opt, sched, ema=None) -> _Progress:
    """Load a ``fit`` checkpoint into ``model``/``opt``/``sched`` (and the weights' average) and the global RNGs."""
    check_checkpoint(ck)
    if ck.get("config") != cfg.as_dict():
        raise ParamError("checkpoint was written with another configuration; refusing to resume from it")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    if ema is not None:
        ema.load_state_dict(ck["ema"])
    set_rng_state(ck["rng"])
    return _Progress(list(ck["history"]), ck["best_val_accuracy"], ck["best_epoch"], ck["best_state"],
                     int(ck["epoch"]) + 1, int(ck.get("best_file_epoch", 0)))


def _checkpoint_state(epoch: int, cfg: FitConfig, model, opt, sched, run: _Progress,
                      extra: dict[str, Any] | None, ema=None) -> dict[str, Any]:
    """Everything ``_restore`` needs to continue after ``epoch`` exactly as if never interrupted, but the best
    weights (``best.pt``, written apart: only when they change)."""
    return {
        **(extra or {}), "epoch": epoch, "epochs": cfg.epochs, "config": cfg.as_dict(),
        "schedule_impl": schedule_impl(cfg.schedule),
        "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "rng": rng_state(), "history": run.history, "best_val_accuracy": run.best_val, "best_epoch": run.best_epoch,
        **({"ema": ema.state_dict()} if ema is not None else {}),
    }


def _save(folder: str, epoch: int, cfg: FitConfig, model, opt, sched, run: _Progress,
          extra: dict[str, Any] | None, ema=None) -> bool:
    """Write the epoch's checkpoint; whether ``best.pt`` was (re)written too (the best weights changed)."""
    best = None
    if run.best_epoch != run.best_saved and run.best_state is not None:
        best = {"epoch": run.best_epoch, "val_accuracy": run.best_val, "state": run.best_state}
    save_checkpoint(folder, _checkpoint_state(epoch, cfg, model, opt, sched, run, extra, ema), best)
    if best is not None:
        run.best_saved = run.best_epoch
    return best is not None


def _epoch_record(model, data: SplitData, cfg: FitConfig, stats: EpochStats, dev, t0: float) -> dict[str, float]:
    """The epoch's history record: train stats, validation (and optional test) accuracy, timings."""
    bs = max(_batching(len(data.x_train), cfg.batch_size)[0], 256)  # inference holds no activations for backward
    kw = dict(image_size=cfg.image_size, device=dev, batch_size=bs, tta=cfg.tta)
    record = {"train_loss": stats.train_loss, "train_accuracy": stats.train_accuracy,
              "val_accuracy": evaluate(model, data.x_val, data.y_val, **kw)}
    if cfg.test_curve and data.x_test is not None:
        record["test_accuracy_curve"] = evaluate(model, data.x_test, data.y_test, **kw)
    record["epoch_seconds"] = time.perf_counter() - t0
    record["images_per_second"] = stats.images / max(stats.seconds, 1e-9)
    return record


def fit(
    model,
    data: SplitData,
    cfg: FitConfig,
    *,
    device,
    num_workers: int = 0,
    progress: bool = True,
    checkpoint_to: str | None = None,
    checkpoint_extra: dict[str, Any] | None = None,
    resume_from: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    on_checkpoint: Callable[[str, int, bool], None] | None = None,
) -> FitResult:
    """Train ``model`` (a ResNet-18 with a 10-way ``fc``) and return it with the best-validation weights.

    ``checkpoint_to``: a folder; after every epoch a checkpoint (model, optimizer, scheduler, epoch, RNG
    states, history, plus ``checkpoint_extra``: ``last.pt``) replaces the previous one there, and the
    best-so-far weights (``best.pt``) when they changed.
    ``resume_from``: such a checkpoint (``load_checkpoint``): training continues after its epoch.
    ``on_checkpoint(folder, epoch, best_written)``: called after each epoch's checkpoint is written (the step
    uploads it there: ``last.pt`` and ``state.json`` every epoch, ``best.pt`` when ``best_written``).
    ``on_epoch_end(epoch, record)``: called after that (the step logs metrics there).
    """
    import torch

    cfg.validate()
    if num_workers < 0:
        raise ParamError(f"num_workers must be >= 0, got {num_workers}")
    dev = torch.device(device)
    seed_everything(cfg.seed)
    model, opt, sched = _prepare(model, cfg, dev, len(data.x_train))
    x_tr, y_tr = _as_tensor(data.x_train), _as_tensor(data.y_train)  # once, not per epoch
    resident = cfg.recipe == "fast"
    if resident:  # the whole training set on the device, as uint8 (47 MB for 60k images)
        x_tr, y_tr = x_tr.to(dev), y_tr.to(dev)
    with _pad_crop(model, dev):
        ema = _ema(model, cfg.ema)
        run = _restore(resume_from, cfg, model, opt, sched, ema) if resume_from is not None else _Progress()
        scored = ema.module if ema is not None else model  # what is evaluated, kept and returned
        for epoch in range(run.start, cfg.epochs + 1):
            t0 = time.perf_counter()
            stats = train_one_epoch(
                model, opt, sched, x_tr, y_tr, generator=_epoch_generator(cfg.seed, epoch), image_size=cfg.image_size,
                batch_size=cfg.batch_size, device=dev, mode=cfg.mode, augment=cfg.augment,
                label_smoothing=cfg.label_smoothing, num_workers=num_workers, progress=progress,
                desc=f"finetune {cfg.mode} epoch {epoch}/{cfg.epochs}", flip=cfg.flip, resident=resident,
                on_step=None if ema is None else lambda: ema.update_parameters(model))
            record = _epoch_record(scored, data, cfg, stats, dev, t0)
            run.add(epoch, record, scored)
            if checkpoint_to:
                best_written = _save(checkpoint_to, epoch, cfg, model, opt, sched, run, checkpoint_extra, ema)
                if on_checkpoint is not None:
                    on_checkpoint(checkpoint_to, epoch, best_written)
            log.info("epoch %d/%d: loss %.4f, train %.4f, val %.4f, %.1fs, %.0f img/s", epoch, cfg.epochs,
                     record["train_loss"], record["train_accuracy"], record["val_accuracy"], record["epoch_seconds"],
                     record["images_per_second"])
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    return FitResult(model, run.history, run.best_val, run.best_epoch, run.start)


def export_model(model, image_size: int, in_size: int = 28):
    """A self-contained CPU model for serving: float images (B, H, W) in [0, 1] -> 10 logits.

    Built from stock torch modules only (resize, then a fixed 1x1 conv doing grey->RGB and ImageNet
    normalisation), so loading the logged model needs torch/torchvision, not this package.
    """
    import torch
    from torch import nn

    norm = nn.Conv2d(1, 3, kernel_size=1)
    with torch.no_grad():
        std = torch.tensor(IMAGENET_STD)
        norm.weight.copy_((1.0 / std).view(3, 1, 1, 1))
        norm.bias.copy_(-torch.tensor(IMAGENET_MEAN) / std)
    norm.requires_grad_(False)
    layers: list[nn.Module] = [nn.Unflatten(1, (1, in_size))]
    if image_size != in_size:
        layers.append(nn.Upsample(size=(image_size, image_size), mode="bilinear", align_corners=False))
    net = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format).eval()
    return nn.Sequential(*layers, norm, net).eval()
