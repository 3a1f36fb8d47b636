"""The whole study's wall time with each executor, in one run: quick and full profiles, serial and Ray.

    python bench/study.py [--profiles quick,full] [--executors serial,ray] [--before DIR] [--data-dir ...]

Each (profile, executor) runs `fmnist study` in a fresh sqlite store (nothing cached), then the last one
is run again in its store (everything cached). Prints wall seconds and each executor's time relative to
serial; with ``--before DIR`` (a git worktree of an older commit, put first on PYTHONPATH) each runs four times,
before, after, after, before, and the ratio of the means after/before. Take it with the machine otherwise
idle: cells share the cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from _data import bench_data_dir, data_dir_option  # bench/ is sys.path[0] when run as python bench/x.py

FMNIST = str(Path(sys.executable).parent / "fmnist")


def study(profile: str, executor: str, store: Path, data_dir: Path, extra: list[str],
          before: Path | None = None) -> float:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "FMNIST_DATA_DIR": str(data_dir),
           "MLFLOW_EXPERIMENT_NAME": "fmnist"}
    env.pop("MLFLOW_RUN_ID", None)
    if before:
        env["PYTHONPATH"] = str(before)
    t0 = time.perf_counter()
    p = subprocess.run([FMNIST, "study", "--profile", profile, "--executor", executor, "--no-progress",
                        "--report-output", str(store / "report.html"), *extra], env=env, cwd=store,
                       capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{profile}/{executor} failed:\n{p.stderr[-3000:]}")
    return seconds


@click.command()
@data_dir_option
@click.option("--profiles", default="quick,full", show_default=True)
@click.option("--executors", default="serial,ray", show_default=True)
@click.option("--weights", default="none", show_default=True, help="ResNet-18 weights (none: offline here).")
@click.option("--before", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A git worktree of an older commit: each study runs with its code first, for after/before ratios.")
def main(data_dir, profiles, executors, weights, before):
    data = bench_data_dir(data_dir).resolve()
    root = Path(tempfile.mkdtemp(prefix="fmnist-bench-study-"))
    before = before.resolve() if before else None
    print(f"data {data}; stores under {root}; {os.cpu_count()} cores" + (f"; before: {before}" if before else ""))
    print(f"{'profile':8} {'executor':8} {'code':6} {'wall s':>9} {'vs serial':>10}")
    last = None
    # before, after, after, before: a position in the sequence (a warm cache, a hot CPU) favours neither code
    order = ("before", "after", "after", "before") if before else ("after",)
    for profile in profiles.split(","):
        base = None
        for executor in executors.split(","):
            got: dict[str, list[float]] = {"before": [], "after": []}
            for i, code in enumerate(order):
                store = root / f"{profile}-{executor}-{code}-{i}"
                store.mkdir()
                s = study(profile, executor, store, data, ["--weights", weights], before if code == "before" else None)
                got[code].append(s)
                if code == "after":
                    base = base or (s if executor == "serial" else None)
                rel = f"{s / base:9.2f}x" if base and code == "after" else ""
                print(f"{profile:8} {executor:8} {code:6} {s:9.1f} {rel:>10}", flush=True)
                last = (profile, executor, store) if code == "after" else last
            if before:
                a, b = (sum(got[k]) / len(got[k]) for k in ("after", "before"))
                print(f"{profile:8} {executor:8} after / before (means): {a:.1f} / {b:.1f} s = {a / b:.3f}x",
                      flush=True)
    if last:
        profile, executor, store = last
        s = study(profile, executor, store, data, ["--weights", weights])
        print(f"{profile:8} {executor:8} {s:9.1f}  (second identical run: every cell cached)")


if __name__ == "__main__":
    main()
