"""Where the bench scripts read the real data from (shared by all of them)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import click

from fmnist.data import default_data_dir

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fashion-mnist"

data_dir_option = click.option(
    "--data-dir", default=None,
    help="Folder with the IDX files [default: ../shared/data/fashion-mnist beside the checkout if it exists, "
         "else $FMNIST_DATA_DIR or ./data].")


def bench_data_dir(given: str | None) -> Path:
    """``--data-dir``, else ../shared/data/fashion-mnist beside the checkout, else $FMNIST_DATA_DIR or ./data."""
    if given:
        return Path(given)
    return SHARED if SHARED.is_dir() else default_data_dir(None)


def machine() -> str:
    """The ``lscpu`` model line, cores and Python: what an absolute time is measured on."""
    model = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(["lscpu"], capture_output=True, text=True)
                  .stdout.splitlines() if ln.startswith("Model name")), platform.processor() or "?")
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"
