"""Fine-tuning throughput (training images/s) on the real data, CPU unless --device says otherwise.

    python bench/finetune.py [--data-dir ../shared/data/fashion-mnist] [--n 1024] [--device cpu]

Each configuration trains one epoch of ``--n`` images (random-init ResNet-18, augmentation on) after a
warm-up pass, and prints the training images/s and the seconds a 54k-image epoch would take at that rate.
On a CPU each configuration runs four ways: NCHW or channels_last, each with stock convolutions and
with the padding taps cropped (``fmnist.padcrop``), to show what each buys (the loop trains
``CHANNELS_LAST_CPU_MODES`` channels_last and crops on ``PAD_CROP_DEVICES``).
"""

from __future__ import annotations

import click
import torch

from _data import bench_data_dir, data_dir_option  # bench/ is sys.path[0] when run as python bench/x.py
from fmnist.data import load_dataset, stratified_indices
from fmnist.finetune import FitConfig, SplitData, fit, train as finetune_train
from fmnist.weights import build_resnet18, resolve_weights

# (mode, image size, channels_last on a CPU, padding taps cropped)
CONFIGS = [(m, size, nhwc, crop) for m in ("full", "last_layer") for size in (28, 32, 64) for crop in (False, True)
           for nhwc in (False, True)]
EPOCH_IMAGES = 54000  # the training split after carving 10% validation


@click.command()
@data_dir_option
@click.option("--n", "n", type=int, default=1024, show_default=True, help="Training images per configuration.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def main(data_dir, n, batch_size, device):
    ds = load_dataset(data_dir=bench_data_dir(data_dir))
    idx = stratified_indices(ds.y_train, n + 100, seed=0)
    x, y = ds.x_train[idx], ds.y_train[idx]
    split = SplitData(x[:n], y[:n], x[n:], y[n:])
    warm = SplitData(x[:batch_size], y[:batch_size], x[n:], y[n:])
    w = resolve_weights("none")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, batch {batch_size}, "
          f"{n} images per config")
    print(f"{'mode':11} {'image_size':>10} {'format':>13} {'convs':>7} {'train img/s':>12} {'s per 54k epoch':>16}")
    dev = torch.device(device).type
    for mode, size, nhwc, crop in CONFIGS:
        if dev != "cpu" and not nhwc:
            continue  # CUDA always trains channels_last
        finetune_train.CHANNELS_LAST_CPU_MODES = {mode} if nhwc else set()
        finetune_train.PAD_CROP_DEVICES = {dev} if crop else set()
        cfg = FitConfig(mode=mode, image_size=size, epochs=1, batch_size=batch_size, augment=True)
        fit(build_resnet18(w, num_classes=10), warm, cfg, device=device, progress=False)  # allocator/oneDNN warm-up
        res = fit(build_resnet18(w, num_classes=10), split, cfg, device=device, progress=False)
        ips = res.history[0]["images_per_second"]
        fmt, convs = "channels_last" if nhwc else "NCHW", "cropped" if crop else "stock"
        print(f"{mode:11} {size:10d} {fmt:>13} {convs:>7} {ips:12.0f} {EPOCH_IMAGES / ips:16.0f}", flush=True)


if __name__ == "__main__":
    main()
