"""Wall time and peak memory of the classify grid, serial and Ray, fresh and fully cached, before and after a change.

    python bench/grid.py [--subset N] [--executors serial,ray] [--skip-cached] [--before DIR] [--data-dir ...]

Runs, each through the same launcher (``python -c 'from fmnist.cli import main; main()'``), in this order:
``fmnist classify --feature scatnet --model all --tune false`` in a fresh sqlite store with the old code
(``--before DIR``: a git worktree of an older commit, put first on PYTHONPATH), then with this checkout's code,
then with this checkout's code and ``--executor ray`` (the old code has no such option); then, in each serial
run's store, ``--feature all`` once untimed (computes the raw and resnet18 cells) and once more timed (every
cell cached). ``--weights none`` everywhere (offline). Peak RSS is the launched process's (its
RUSAGE_CHILDREN maximum, read by a small wrapper); Ray workers are not its children, so Ray rows get wall
seconds only. Figures are printed, never asserted. Take it with the machine otherwise idle.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from _data import bench_data_dir, data_dir_option, machine  # bench/ is sys.path[0] when run as python bench/x.py

LAUNCH = "import sys; from fmnist.cli import main; sys.argv[0] = 'fmnist'; main()"
# Runs argv[1:], then prints its wall seconds and peak RSS (KiB on Linux) as the last stderr line.
WRAPPER = ("import resource, subprocess, sys, time; t0 = time.perf_counter(); rc = subprocess.call(sys.argv[1:]); "
           "s = time.perf_counter() - t0; print(f'\\nGRID {s} {resource.getrusage(resource.RUSAGE_CHILDREN)"
           ".ru_maxrss}', file=sys.stderr); sys.exit(rc)")
GRID = ["classify", "--model", "all", "--tune", "false", "--no-progress", "--weights", "none"]


def run(args: list[str], store: Path, data: Path, before: Path | None) -> tuple[float, float]:
    """``fmnist ARGS`` in STORE with the old code (BEFORE) or this checkout's: (wall seconds, peak MiB)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "FMNIST_DATA_DIR": str(data),
           "MLFLOW_EXPERIMENT_NAME": "fmnist"}
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("PYTHONPATH", None)
    if before:
        env["PYTHONPATH"] = str(before)
    p = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-c", LAUNCH, *args], env=env, cwd=store,
                       capture_output=True, text=True)
    lines = p.stderr.rstrip().splitlines()
    if p.returncode != 0 or not lines or not lines[-1].startswith("GRID "):
        code = "before" if before else "after"
        raise SystemExit(f"fmnist {' '.join(args)} ({code} code) failed, exit {p.returncode}:\n"
                         f"{p.stderr[-3000:]}")
    _, seconds, kib = lines[-1].split()
    return float(seconds), int(kib) / 1024


def describe(before: Path | None) -> str:
    """Where ``fmnist`` is imported from under that code's environment, and its commit."""
    env = {**os.environ, "PYTHONPATH": str(before)} if before else {k: v for k, v in os.environ.items()
                                                                   if k != "PYTHONPATH"}
    where = subprocess.run([sys.executable, "-c", "import fmnist; print(fmnist.__file__)"], env=env,
                           capture_output=True, text=True, cwd=tempfile.gettempdir()).stdout.strip()
    root = before or Path(__file__).resolve().parent.parent
    rev = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %s"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return f"{where} @ {rev[:70]}{' (+ uncommitted changes)' if dirty else ''}"


@click.command()
@data_dir_option
@click.option("--subset", default=None, help="Pass --subset N to every command (trial runs) [default: full data].")
@click.option("--executors", default="serial,ray", show_default=True)
@click.option("--skip-cached", is_flag=True, help="Leave out the fully cached grid.")
@click.option("--before", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A git worktree of an older commit: its serial and cached runs too, for after/before ratios.")
def main(data_dir, subset, executors, skip_cached, before):
    data = bench_data_dir(data_dir).resolve()
    executors = executors.split(",")
    extra = ["--subset", str(subset)] if subset else []
    root = Path(tempfile.mkdtemp(prefix="fmnist-bench-grid-"))
    before = before.resolve() if before else None
    codes = {"before": before, "after": None} if before else {"after": None}
    print(f"{datetime.datetime.now().isoformat(timespec='seconds')}; {machine()}")
    print(f"data {data} (subset {subset or 'all'}); stores under {root}")
    for code, where in codes.items():
        print(f"{code:6} code: {describe(where)}")
    print(f"{'what':14} {'code':6} {'wall s':>9} {'peak MiB':>9}", flush=True)

    rows: list[tuple[str, str, float, float | None]] = []
    stores: dict[str, Path] = {}

    def measure(what: str, code: str, args: list[str], store: Path, memory: bool = True) -> None:
        s, mib = run(args, store, data, codes[code])
        rows.append((what, code, s, mib if memory else None))
        print(f"{what:14} {code:6} {s:9.1f} {f'{mib:9.0f}' if memory else '':>9}", flush=True)

    def fresh(name: str) -> Path:
        (root / name).mkdir()
        return root / name

    scatnet = [*GRID, "--feature", "scatnet", *extra]
    for code in codes:
        for executor in executors:
            if executor == "serial":
                stores[code] = fresh(f"{code}-serial")
                measure("grid serial", code, scatnet, stores[code])
            elif code == "after":  # the old code has no --executor
                measure(f"grid {executor}", code, [*scatnet, "--executor", executor], fresh(f"{code}-{executor}"),
                        memory=False)
    if not skip_cached:
        full = [*GRID, "--feature", "all", *extra]
        for code in codes:
            store = stores.get(code) or fresh(f"{code}-cached")
            run(full, store, data, codes[code])  # populate: raw and resnet18 cells (and scatnet if not yet)
            measure("grid cached", code, full, store)

    print(f"\n{'what':14} {'code':6} {'wall s':>9} {'peak MiB':>9} {'wall a/b':>9} {'mem a/b':>8} {'vs serial':>10}")
    found = {(what, code): (s, mib) for what, code, s, mib in rows}
    for what, code, s, mib in rows:
        b = found.get((what, "before")) if code == "after" else None
        wall_ratio = f"{s / b[0]:.2f}x" if b else ""
        mem_ratio = f"{mib / b[1]:.2f}x" if b and mib and b[1] else ""
        serial = found.get(("grid serial", code))
        vs = f"{s / serial[0]:.2f}x" if serial and what not in ("grid serial", "grid cached") else ""
        print(f"{what:14} {code:6} {s:9.1f} {f'{mib:9.0f}' if mib else '':>9} {wall_ratio:>9} {mem_ratio:>8} {vs:>10}")


if __name__ == "__main__":
    main()
