"""Score one fine-tuning recipe on the validation split only (the test set is never loaded into the fit).

    python bench/recipe.py [--data-dir ../shared/data/fashion-mnist] --image-size 28 --epochs 7 --no-augment

Trains a random-init ResNet-18 (mode=full) on the finetune step's training split (90% of the 60k, the same
split and seed) and prints the validation accuracy, seconds and training images/s of every epoch, then the
wall-clock minutes. Use it to choose a CPU recipe before `fmnist finetune` reads the test set once.
"""

from __future__ import annotations

import time

import click

from _data import bench_data_dir, data_dir_option  # bench/ is sys.path[0] when run as python bench/x.py
from fmnist.data import load_dataset, train_val_split
from fmnist.finetune import FitConfig, SplitData, fit
from fmnist.weights import build_resnet18, resolve_weights


@click.command()
@data_dir_option
@click.option("--image-size", type=int, default=32, show_default=True)
@click.option("--epochs", type=int, default=6, show_default=True)
@click.option("--augment/--no-augment", default=False, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=0.05, show_default=True)
@click.option("--label-smoothing", type=float, default=0.1, show_default=True)
@click.option("--val-fraction", type=float, default=0.1, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def main(data_dir, image_size, epochs, augment, batch_size, lr, label_smoothing, val_fraction, device):
    ds = load_dataset(data_dir=bench_data_dir(data_dir))
    cfg = FitConfig(mode="full", image_size=image_size, epochs=epochs, augment=augment, batch_size=batch_size,
                    lr=lr, label_smoothing=label_smoothing)
    tr, va = train_val_split(ds.y_train, val_fraction, cfg.seed)
    split = SplitData(ds.x_train[tr], ds.y_train[tr], ds.x_train[va], ds.y_train[va])  # no test arrays
    print(f"recipe {cfg.as_dict()}, {len(tr)} train / {len(va)} validation images", flush=True)
    print(f"{'epoch':>5} {'val %':>7} {'train %':>8} {'seconds':>8} {'img/s':>6}", flush=True)
    t0 = time.perf_counter()
    res = fit(build_resnet18(resolve_weights("none"), num_classes=10), split, cfg, device=device, progress=False,
              on_epoch_end=lambda e, r: print(f"{e:5d} {100 * r['val_accuracy']:7.2f} "
                                              f"{100 * r['train_accuracy']:8.2f} {r['epoch_seconds']:8.0f} "
                                              f"{r['images_per_second']:6.0f}", flush=True))
    print(f"best validation {100 * res.best_val_accuracy:.2f}% at epoch {res.best_epoch}; "
          f"{(time.perf_counter() - t0) / 60:.1f} min in all")


if __name__ == "__main__":
    main()
