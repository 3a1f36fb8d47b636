"""``fmnist finetune``: ResNet-18 transfer learning (last layer or full network), resumable."""

from __future__ import annotations

import click

from ..finetune import MODES, OPTIMIZERS, SCHEDULES, FitConfig
from ..steps.finetune import finetune as finetune_step
from .options import dataset_options

D = FitConfig  # the defaults live on FitConfig; MLproject repeats them (tests/test_mlproject.py checks)


@click.command()
@click.option("--mode", default=D.mode, show_default=True,
              help=f"{' | '.join(MODES.names())}: last_layer trains only the new head (BatchNorm statistics frozen).")
@click.option("--weights", default="auto", show_default=True,
              help="imagenet | none | auto (imagenet if obtainable, else none) | path to a resnet18 .pth.")
@click.option("--image-size", type=click.IntRange(16, 512), default=D.image_size, show_default=True,
              help="Images are resized to this on the device.")
@click.option("--epochs", type=click.IntRange(min=1), default=D.epochs, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=D.batch_size, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=D.lr, show_default=True,
              help="Peak learning rate.")
@click.option("--optimizer", default=D.optimizer, show_default=True, help=" | ".join(OPTIMIZERS.names()))
@click.option("--schedule", default=D.schedule, show_default=True,
              help=f"{' | '.join(SCHEDULES.names())} (per step, with warm-up).")
@click.option("--warmup", type=click.FloatRange(0, 1, max_open=True), default=D.warmup, show_default=True,
              help="Fraction of all steps spent warming up.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=D.weight_decay, show_default=True)
@click.option("--augment", type=click.BOOL, default=D.augment, show_default=True,
              help="Random crop (4 px zero padding) + horizontal flip, on the device.")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=D.label_smoothing,
              show_default=True)
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1,
              show_default=True, help="Validation split carved from the training set (model selection).")
@click.option("--test-curve", type=click.BOOL, default=D.test_curve, show_default=True,
              help="Also log test accuracy per epoch as test_accuracy_curve (never used to select).")
@dataset_options
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N, mps.")
@click.option("--num-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="DataLoader processes gathering uint8 batches (0: in the main process; augmentation runs on "
                   "the device either way).")
@click.option("--resume", default="auto", show_default=True,
              help="auto (continue an identical unfinished run), never, or a run id to continue.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
def finetune(**kw) -> None:
    """Fine-tune an (ImageNet) ResNet-18 on the dataset and log the run to MLflow."""
    kw["data_dir"] = kw["data_dir"] or None
    finetune_step(**kw)
