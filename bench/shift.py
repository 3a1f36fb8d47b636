"""What measuring models under shift costs: the full study's shift cells, the shifted images' extraction speed per
feature set, shared against per-model extraction, and the quick study's price of ``shift=true``.

    python bench/shift.py --store DIR      # DIR: a finished full study's store (e.g. from bench/study.py)
    python bench/shift.py --skip-full      # the quick study's on/off comparison only

1. Full: on a copy of ``--store`` (the database copied, the artifacts hard-linked: runs never change them) with
   the study's shift and shift-features runs deleted, ``fmnist study --profile full --report false`` finds every
   other cell cached and computes the shift cells only: their wall time, and per feature set the shifted images'
   extraction speed (images/s) that its shift-features run logged.
2. Shared against per-model extraction, side by side in this process: per feature set, ``--side-n`` images of the
   shift sample under every kind and level become features once and feed each classifier of that feature set
   (the study's way), then once per classifier (as if each model extracted its own).
3. The quick study in fresh stores with shift on and off, in the order on, off, off, on: the mean difference
   (the budget: at most 30 s).

Take it with the machine otherwise idle: the cells share the cores.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import click

from _data import bench_data_dir, data_dir_option, machine  # bench/ is sys.path[0] when run as python bench/x.py

FMNIST = str(Path(sys.executable).parent / "fmnist")
SHIFT_STEPS = ("shift", "shift-features")


def env_for(store: Path, data: Path) -> dict[str, str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "FMNIST_DATA_DIR": str(data),
           "MLFLOW_EXPERIMENT_NAME": "fmnist"}
    env.pop("MLFLOW_RUN_ID", None)
    return env


def study(store: Path, data: Path, args: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run([FMNIST, "study", "--no-progress", "--report", "false", *args], env=env_for(store, data),
                       cwd=store, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"fmnist study {' '.join(args)} failed:\n{p.stderr[-3000:]}")
    return time.perf_counter() - t0


def copy_store(src: Path, dest: Path) -> None:
    """The database copied, the artifacts hard-linked (a run's artifacts are written once, never changed)."""
    dest.mkdir(parents=True)
    shutil.copy2(src / "mlflow.db", dest / "mlflow.db")
    for d in ("mlartifacts", "mlruns"):
        if (src / d).is_dir():
            shutil.copytree(src / d, dest / d, copy_function=os.link)


def runs_of(db: Path, step: str) -> list[dict]:
    """(run id, name, seconds, metrics) of the FINISHED runs of a step, from the database itself."""
    c = sqlite3.connect(db)
    rows = c.execute("select r.run_uuid, r.name, r.start_time, r.end_time from runs r join tags t on "
                     "t.run_uuid = r.run_uuid where t.key = 'fmnist.step' and t.value = ? and r.status = 'FINISHED' "
                     "and r.lifecycle_stage = 'active'", (step,)).fetchall()
    out = []
    for run, name, start, end in rows:
        metrics = dict(c.execute("select key, value from latest_metrics where run_uuid = ?", (run,)).fetchall())
        params = dict(c.execute("select key, value from params where run_uuid = ?", (run,)).fetchall())
        out.append({"run_id": run, "name": name, "seconds": (end - start) / 1e3, "metrics": metrics,
                    "params": params})
    return out


def full_shift_cells(src: Path, data: Path, root: Path, executor: str) -> None:
    from mlflow import MlflowClient

    store = root / "full-shift"
    copy_store(src, store)
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    gone = [r["run_id"] for s in SHIFT_STEPS for r in runs_of(store / "mlflow.db", s)]
    for run in gone:
        client.delete_run(run)
    parent = runs_of(src / "mlflow.db", "study")[0]
    args = ["--profile", parent["params"].get("profile", "full"), "--executor", executor,
            "--weights", parent["params"].get("weights", "none"), "--subset", str(parent["params"].get("subset"))]
    wall = study(store, data, args)
    feats = runs_of(store / "mlflow.db", "shift-features")
    shifts = runs_of(store / "mlflow.db", "shift")
    print(f"\n1. Full study's shift cells ({executor}; {len(gone)} shift runs deleted in the copy, every other cell "
          f"cached): {wall:.0f} s wall for {len(feats)} shift-features + {len(shifts)} shift cells")
    for r in sorted(feats, key=lambda r: r["name"]):
        m = r["metrics"]
        print(f"   {r['name']:28} {int(m['n_images'] * m['n_sets']):7,} images: transform {m['transform_seconds']:6.1f}"
              f" s, extract {m['extract_seconds']:6.1f} s = {m['images_per_second']:7.0f} images/s; run {r['seconds']:.0f} s")
    for r in sorted(shifts, key=lambda r: r["name"]):
        print(f"   {r['name']:40} {r['seconds']:6.1f} s (predicting {r['metrics'].get('shift_seconds', 0):.1f} s)")


def side_by_side(src: Path, data: Path, side_n: int) -> None:
    """Per feature set: one extraction shared by its classifiers, against one extraction per classifier."""
    import numpy as np

    os.environ.update({"MLFLOW_TRACKING_URI": f"sqlite:///{src / 'mlflow.db'}", "FMNIST_DATA_DIR": str(data)})
    from fmnist import tracking
    from fmnist.features import extract_features
    from fmnist.shifts import shifted_sets
    from fmnist.steps.shift import _scored_cell, shift_features_of

    classify = runs_of(src / "mlflow.db", "classify")
    newest: dict[tuple[str, str], dict] = {}
    for r in classify:
        newest[(r["params"]["feature"], r["params"]["model"])] = r
    by_feature: dict[str, list] = {}
    for (feature, model), r in sorted(newest.items()):
        step, q = _scored_cell(r["run_id"], "")
        predictor = tracking.load_predictor(tracking.run_model_uri(r["run_id"]))
        by_feature.setdefault(feature, []).append((model, q, predictor.classifier))
    print(f"\n2. Shared against per-model extraction, side by side ({side_n} images x every kind and level)")
    print(f"   {'feature':10} {'models':>6} {'shared s':>9} {'per-model s':>12} {'saving':>7}")
    for feature, models in by_feature.items():
        q = models[0][1]
        fp = shift_features_of(q, SimpleNamespace(shift_n=side_n, kinds="all", seed=q.seed))
        images, _, _ = fp.sample(q.dataset, str(data))
        sets = shifted_sets(images, fp.seed)
        x_all = np.concatenate(list(sets.values()))

        def extract():
            return extract_features(feature, x_all, fp.resolved(), batch_size=fp.batch_size, device=fp.device,
                                    progress=False)

        t0 = time.perf_counter()
        x = extract()
        for _, _, clf in models:
            clf.predict(x)
        shared = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _, _, clf in models:
            clf.predict(extract())
        per_model = time.perf_counter() - t0
        print(f"   {feature:10} {len(models):6} {shared:9.1f} {per_model:12.1f} {per_model / shared:6.2f}x", flush=True)


def quick_on_off(data: Path, root: Path, weights: str) -> None:
    print("\n3. Quick study, fresh stores, shift on and off (on, off, off, on)")
    got: dict[str, list[float]] = {"true": [], "false": []}
    for i, shift in enumerate(("true", "false", "false", "true")):
        store = root / f"quick-shift-{shift}-{i}"
        store.mkdir()
        s = study(store, data, ["--profile", "quick", "--shift", shift, "--weights", weights])
        got[shift].append(s)
        print(f"   shift={shift:5} {s:7.1f} s", flush=True)
    on, off = (sum(got[k]) / len(got[k]) for k in ("true", "false"))
    print(f"   means: on {on:.1f} s, off {off:.1f} s: shift adds {on - off:+.1f} s ({on / off:.2f}x); budget +30 s")


@click.command()
@data_dir_option
@click.option("--store", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A finished full study's store (the folder holding mlflow.db and its artifacts).")
@click.option("--executor", default="serial", show_default=True, help="For the full study's shift cells.")
@click.option("--side-n", default=500, show_default=True, help="Images per set for the side-by-side extraction.")
@click.option("--skip-full", is_flag=True, help="Only the quick study's on/off comparison.")
@click.option("--skip-quick", is_flag=True, help="No quick study comparison.")
@click.option("--weights", default="none", show_default=True, help="ResNet-18 weights (none: offline here).")
def main(data_dir, store, executor, side_n, skip_full, skip_quick, weights):
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # loading each model would draw a bar
    data = bench_data_dir(data_dir).resolve()
    root = Path(tempfile.mkdtemp(prefix="fmnist-bench-shift-"))
    print(f"{machine()}; data {data}; stores under {root}")
    if not skip_full:
        if store is None:
            raise click.UsageError("--store: a finished full study's store (or --skip-full)")
        full_shift_cells(store.resolve(), data, root, executor)
        side_by_side(store.resolve(), data, side_n)
    if not skip_quick:
        quick_on_off(data, root, weights)


if __name__ == "__main__":
    main()
