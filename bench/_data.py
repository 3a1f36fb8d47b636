"""Where the bench scripts read the real data from (shared by all of them)."""

from __future__ import annotations

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
