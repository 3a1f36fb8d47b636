"""``fmnist extract``: features for train and test, cached in the tracking store."""

from __future__ import annotations

import click

from ..commands import extract as extract_step
from ..steps.extract import ExtractParams
from ..steps.params import ExecOpts, from_cli, options


@click.command()
@options(ExtractParams, ExecOpts)
def extract(**kw) -> None:
    """Extract features (train + test) and log them to an MLflow run; reuse a cached run when one matches."""
    extract_step(from_cli(ExtractParams, kw), from_cli(ExecOpts, kw))
