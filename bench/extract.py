"""Extraction throughput per feature on the real data (CPU unless --device says otherwise).

    python bench/extract.py [--data-dir ../shared/data/fashion-mnist] [--n 70000] [--device cpu]

Prints images/s per configuration next to the targets (raw: 70k in < 2 s; scatnet J=3,L=1: >= 3000 img/s;
resnet18 at 32 px: >= 400 img/s).
"""

from __future__ import annotations

import time

import click
import numpy as np
import torch

from _data import bench_data_dir, data_dir_option  # bench/ is sys.path[0] when run as python bench/x.py
from fmnist.data import load_dataset
from fmnist.features import FEATURES, extract_features

CONFIGS = [
    ("raw", {}, "70k in < 2 s"),
    ("scatnet", {"J": 3, "L": 1, "max_order": 2}, ">= 3000 img/s (report config)"),
    ("scatnet", dict(FEATURES.get("scatnet").params), "(default config)"),
    ("resnet18", {"weights": "none", "image_size": 32}, ">= 400 img/s"),
    ("resnet18", {"weights": "none", "image_size": 64}, "(default image_size)"),
]


@click.command()
@data_dir_option
@click.option("--n", "n_max", type=int, default=70000, show_default=True, help="Images per configuration.")
@click.option("--n-slow", type=int, default=10000, show_default=True, help="Images for configs under 1000 img/s.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
def main(data_dir, n_max, n_slow, device, batch_size):
    ds = load_dataset(data_dir=bench_data_dir(data_dir))
    images = np.concatenate([ds.x_train, ds.x_test])[:n_max]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, batch {batch_size}")
    print(f"{'feature':9} {'config':42} {'dim':>5} {'images':>7} {'seconds':>8} {'img/s':>9}  target")
    for name, params, target in CONFIGS:
        extract_features(name, images[:batch_size], params, batch_size=batch_size, device=device, progress=False)
        n = len(images)
        t = time.perf_counter()
        f = extract_features(name, images[:n], params, batch_size=batch_size, device=device, progress=False)
        dt = time.perf_counter() - t
        if n / dt < 1000 and n > n_slow:  # re-time the slow ones on fewer images
            n = n_slow
            t = time.perf_counter()
            f = extract_features(name, images[:n], params, batch_size=batch_size, device=device, progress=False)
            dt = time.perf_counter() - t
        cfg = ",".join(f"{k}={v}" for k, v in params.items())
        print(f"{name:9} {cfg:42} {f.shape[1]:5d} {n:7d} {dt:8.2f} {n / dt:9.0f}  {target}", flush=True)


if __name__ == "__main__":
    main()
