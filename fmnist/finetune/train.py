"""The fine-tuning loop: uint8 images held as tensors, augmentation and preprocessing on the device,
bf16 autocast + channels_last on CUDA, model selection on a validation split, per-epoch checkpoints."""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import ParamError
from ..weights import IMAGENET_MEAN, IMAGENET_STD, imagenet_preprocess
from . import MODES, OPTIMIZERS, SCHEDULES
from .augment import augment_batch
from .checkpoint import rng_state, save_checkpoint, set_rng_state
from .modes import set_train_mode
from .optim import build_optimizer, build_schedule

log = logging.getLogger("fmnist")

AUGMENT_PADDING = 4


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

    def validate(self) -> "FitConfig":
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


def _inputs(xb, image_size: int, cuda: bool, augment: bool, generator):
    """uint8 (B, H, W) on the device -> normalised float (B, 3, S, S), channels_last on CUDA."""
    import torch

    if augment:
        xb = augment_batch(xb, padding=AUGMENT_PADDING, generator=generator)
    x = imagenet_preprocess(xb.float().div_(255.0), image_size)
    return x.contiguous(memory_format=torch.channels_last) if cuda else x


def predict(model, images: np.ndarray, *, image_size: int, device, batch_size: int = 512) -> np.ndarray:
    """Class predictions (int64) for uint8 images, in eval mode, batch by batch."""
    import torch

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    was_training = model.training
    model.eval()
    out = np.empty(len(images), dtype=np.int64)
    xt = torch.from_numpy(np.require(images, requirements=["C", "W"]))
    try:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            for s in range(0, len(images), batch_size):
                xb = xt[s:s + batch_size]
                xb = (xb.pin_memory() if cuda else xb).to(dev, non_blocking=True)
                out[s:s + len(xb)] = model(_inputs(xb, image_size, cuda, False, None)).argmax(1).cpu().numpy()
    finally:
        model.train(was_training)
    return out


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
) -> FitResult:
    """Train ``model`` (a ResNet-18 with a 10-way ``fc``) and return it with the best-validation weights.

    ``checkpoint_to``: a folder; after every epoch a checkpoint (model, optimizer, scheduler, epoch, RNG
    states, best-so-far weights, history, plus ``checkpoint_extra``) replaces the previous one there.
    ``resume_from``: such a checkpoint (``load_checkpoint``): training continues after its epoch.
    ``on_epoch_end(epoch, record)``: called after the checkpoint is written (the step logs metrics there).
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    cfg.validate()
    if num_workers < 0:
        raise ParamError(f"num_workers must be >= 0, got {num_workers}")
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    seed_everything(cfg.seed)
    model = model.to(dev)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    trainable = MODES.get(cfg.mode)(model)
    opt = build_optimizer(cfg.optimizer, trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(data.x_train)
    bs = min(cfg.batch_size, n)
    steps = max(n // bs, 1)  # the incomplete last batch is dropped (reshuffled every epoch)
    sched = build_schedule(cfg.schedule, opt, total_steps=cfg.epochs * steps, warmup=cfg.warmup)

    history: list[dict[str, float]] = []
    best_val, best_epoch, best_state = -1.0, 0, None
    start = 1
    if resume_from is not None:
        if resume_from.get("config") != cfg.as_dict():
            raise ParamError("checkpoint was written with another configuration; refusing to resume from it")
        model.load_state_dict(resume_from["model"])
        opt.load_state_dict(resume_from["optimizer"])
        sched.load_state_dict(resume_from["scheduler"])
        set_rng_state(resume_from["rng"])
        history = list(resume_from["history"])
        best_val, best_epoch = resume_from["best_val_accuracy"], resume_from["best_epoch"]
        best_state = resume_from["best_state"]
        start = int(resume_from["epoch"]) + 1

    x_tr = torch.from_numpy(np.require(data.x_train, requirements=["C", "W"]))  # IDX arrays are read-only views
    y_tr = torch.from_numpy(np.require(data.y_train, requirements=["C", "W"]))
    for epoch in range(start, cfg.epochs + 1):
        t0 = time.perf_counter()
        g = _epoch_generator(cfg.seed, epoch)
        perm = torch.randperm(n, generator=g)
        set_train_mode(model, cfg.mode)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        seen = 0
        desc = f"finetune {cfg.mode} epoch {epoch}/{cfg.epochs}"
        with tqdm(total=steps * bs, desc=desc, unit="img", disable=not progress, mininterval=1.0,
                  leave=False) as bar:
            for i, (xb, yb) in enumerate(_loader(x_tr, y_tr, perm, bs, steps, num_workers, cuda)):
                xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
                x = _inputs(xb, cfg.image_size, cuda, cfg.augment, g)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    logits = model(x)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += loss.detach() * len(yb)
                correct += (logits.detach().argmax(1) == yb).sum()
                seen += len(yb)
                bar.update(len(yb))
                if i % 10 == 0 or i == steps - 1:  # .item() syncs the device: not every step
                    bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{sched.get_last_lr()[0]:.3g}")
        if cuda:
            torch.cuda.synchronize(dev)
        train_seconds = time.perf_counter() - t0
        val_pred = predict(model, data.x_val, image_size=cfg.image_size, device=dev, batch_size=max(bs, 256))
        val_acc = float((val_pred == data.y_val).mean())
        record = {"train_loss": float(loss_sum.item() / seen), "train_accuracy": float(correct.item() / seen),
                  "val_accuracy": val_acc}
        if cfg.test_curve and data.x_test is not None:
            test_pred = predict(model, data.x_test, image_size=cfg.image_size, device=dev, batch_size=max(bs, 256))
            record["test_accuracy_curve"] = float((test_pred == data.y_test).mean())
        record["epoch_seconds"] = time.perf_counter() - t0
        record["images_per_second"] = seen / max(train_seconds, 1e-9)
        history.append(record)
        if val_acc > best_val:
            best_val, best_epoch = val_acc, epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if checkpoint_to:
            save_checkpoint(checkpoint_to, {
                **(checkpoint_extra or {}), "epoch": epoch, "epochs": cfg.epochs, "config": cfg.as_dict(),
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": rng_state(), "history": history, "best_val_accuracy": best_val, "best_epoch": best_epoch,
                "best_state": best_state,
            })
        log.info("epoch %d/%d: loss %.4f, train %.4f, val %.4f, %.1fs, %.0f img/s", epoch, cfg.epochs,
                 record["train_loss"], record["train_accuracy"], val_acc, record["epoch_seconds"],
                 record["images_per_second"])
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(model, history, best_val, best_epoch, start)


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
