"""The fmnist modules a one-target `fmnist classify` passes through from its click function to the classifier's fit.

    python bench/callpath.py [--data-dir ...] [--before DIR]

Runs ``fmnist classify --feature raw --model lda --tune false --subset 200`` in a temporary store, catches the
first ``Pipeline.fit`` and prints the fmnist modules on the call stack, outermost first. ``--before DIR``: the same
with an older checkout's code (a git worktree, put first on PYTHONPATH).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from _data import bench_data_dir, data_dir_option  # bench/ is sys.path[0] when run as python bench/x.py


def trace(data: Path) -> list[str]:
    """In this process: the classify command with Pipeline.fit spied on."""
    import sklearn.pipeline as skp

    d = tempfile.mkdtemp(prefix="fmnist-callpath-")
    os.chdir(d)
    os.environ.update(MLFLOW_TRACKING_URI=f"sqlite:///{d}/mlflow.db", FMNIST_DATA_DIR=str(data))
    seen: list[list[str]] = []
    real = skp.Pipeline.fit

    def fit(self, *a, **k):
        if not seen:
            mods: list[str] = []
            for frame in reversed(inspect.stack()):
                m = frame.frame.f_globals.get("__name__", "")
                if m.startswith("fmnist") and (not mods or mods[-1] != m):
                    mods.append(m)
            seen.append(mods)
        return real(self, *a, **k)

    skp.Pipeline.fit = fit
    from fmnist.cli import cli, run_cli

    try:
        run_cli(cli, ["classify", "--feature", "raw", "--model", "lda", "--tune", "false", "--subset", "200",
                      "--no-progress"])
    except SystemExit:
        pass
    return seen[0]


@click.command()
@data_dir_option
@click.option("--before", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
@click.option("--inner", is_flag=True, hidden=True)
def main(data_dir, before, inner):
    data = bench_data_dir(data_dir).resolve()
    if inner:
        print(" ".join(trace(data)))
        return
    for code, path in ((("before", before),) if before else ()) + (("after", None),):
        env = {**os.environ, **({"PYTHONPATH": str(path)} if path else {})}
        out = subprocess.run([sys.executable, __file__, "--inner", "--data-dir", str(data)], env=env,
                             capture_output=True, text=True, check=True).stdout.split()
        after_click = out[out.index("fmnist.cli.classify") + 1:]
        print(f"{code}: {' -> '.join(out)}")
        print(f"{code}: {len(set(after_click))} distinct fmnist modules after the click function")


if __name__ == "__main__":
    main()
