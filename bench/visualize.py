"""Embedding time and separation per method on the real data, at the default sample and larger sizes.

    flock /tmp/fmnist-cpu.lock .venv/bin/python bench/visualize.py [--feature raw] [--sizes 5000,10000,70000]

Samples are stratified (seed 0): the default size and 10k from the test split (as ``visualize`` draws
them), 70k = train + test. Targets: all four methods at the default size < 3 min together; t-SNE and
UMAP at 70k < 10 min each. LLE runs only up to ``--lle-max`` points (default 10k): sklearn's LLE
solves a sparse n x n eigenproblem by shift-invert ARPACK (a sparse LU of an n x n matrix), whose
time and memory grow faster than n; and it gives the least readable view even at 5k.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _data import bench_data_dir, data_dir_option  # noqa: E402  (bench/ is on sys.path: scripts run as python bench/x.py)
from fmnist.data import load_dataset, stratified_indices  # noqa: E402
from fmnist.embeddings import EMBEDDINGS, embed, method_params  # noqa: E402
from fmnist.features import extract_features  # noqa: E402
from fmnist.separation import separation_metrics  # noqa: E402
from fmnist.embeddings.tsne import BIG as TSNE_BIG  # noqa: E402
from fmnist.steps.visualize import DEFAULT_N_SAMPLES  # noqa: E402


@click.command()
@data_dir_option
@click.option("--feature", default="raw", show_default=True, help="raw or scatnet (default params) or resnet18.")
@click.option("--sizes", default=f"{DEFAULT_N_SAMPLES},10000,70000", show_default=True)
@click.option("--methods", default="all", show_default=True)
@click.option("--lle-max", type=int, default=10000, show_default=True, help="Largest n LLE is run at.")
@click.option("--metrics/--no-metrics", default=True, show_default=True)
@click.option("--check-determinism/--no-check-determinism", default=True, show_default=True,
              help="Run t-SNE twice at the first size >= 10k (multi-threaded FFT path) and compare.")
def main(data_dir, feature, sizes, methods, lle_max, metrics, check_determinism):
    ds = load_dataset(data_dir=bench_data_dir(data_dir))
    sizes = [int(s) for s in sizes.split(",")]
    names = EMBEDDINGS.expand(methods)
    x_img = np.concatenate([ds.x_test, ds.x_train])  # test first: sizes <= 10k come from the test split
    y_all = np.concatenate([ds.y_test, ds.y_train])
    n_max = max(sizes)
    t = time.perf_counter()
    feats = extract_features(feature, x_img[:len(ds.y_test)] if n_max <= len(ds.y_test) else x_img, progress=False)
    print(f"{feature}: {feats.shape[1]}-d features for {len(feats)} images in {time.perf_counter() - t:.1f}s; "
          f"{os.cpu_count()} CPUs", flush=True)

    if "umap" in names:
        # numba JIT of umap/pynndescent: paid once per process, shown apart. Above 4096 points umap
        # switches from exact neighbours to NN-descent, which compiles more: warm up on that path too.
        t = time.perf_counter()
        embed("umap", np.random.default_rng(0).normal(size=(4200, 10)).astype(np.float32), seed=0)
        print(f"umap first-call JIT warm-up (4200 random points): {time.perf_counter() - t:.1f}s", flush=True)

    print(f"{'method':7} {'n':>6} {'embed_s':>8} {'metric_s':>8} {'knn_acc':>8} {'trust':>6} {'silh':>6}  params")
    totals: dict[int, float] = {}
    for n in sizes:
        pool = len(ds.y_test) if n <= len(ds.y_test) else len(y_all)
        idx = stratified_indices(y_all[:pool], n, seed=0)
        x, y = feats[idx], y_all[idx]
        for m in names:
            if m == "lle" and n > lle_max:
                print(f"{m:7} {n:6d} {'skipped':>8}  (LLE: shift-invert ARPACK on an n x n problem; --lle-max {lle_max})")
                continue
            t = time.perf_counter()
            coords = embed(m, x, seed=0)
            dt = time.perf_counter() - t
            totals[n] = totals.get(n, 0.0) + dt
            t = time.perf_counter()
            s = separation_metrics(x, coords, y, seed=0) if metrics else {}
            ms = time.perf_counter() - t
            p = ",".join(f"{k}={v}" for k, v in method_params(m, n_samples=n).items())
            if check_determinism and m == "tsne" and n >= TSNE_BIG:
                check_determinism = False
                same = np.array_equal(coords, embed(m, x, seed=0))
                p += f"  [rerun with seed 0: {'identical' if same else 'DIFFERENT'}]"
            print(f"{m:7} {n:6d} {dt:8.1f} {ms:8.1f} {s.get('knn_accuracy', float('nan')):8.3f} "
                  f"{s.get('trustworthiness', float('nan')):6.3f} {s.get('silhouette', float('nan')):6.3f}  {p}",
                  flush=True)
    for n, tot in totals.items():
        note = "  (target: all four < 180 s)" if n == DEFAULT_N_SAMPLES and len(names) == 4 else ""
        print(f"total embed time at n={n}: {tot:.1f}s{note}")


if __name__ == "__main__":
    main()
