"""``fmnist extract``: features for train and test, cached in the tracking store."""

from __future__ import annotations

from dataclasses import replace

import click

from .. import tracking
from ..features import FEATURES
from ..steps.base import get_or_run
from ..steps.extract import EXTRACT, ExtractParams
from ..steps.params import from_cli, options


@click.command()
@options(ExtractParams)
def extract(**kw) -> None:
    """Extract features (train + test) and log them to an MLflow run; reuse a cached run when one matches."""
    p = from_cli(ExtractParams, kw)
    cells = [replace(p, feature=f) for f in FEATURES.expand(p.feature)]
    for c in cells:
        c.resolved()  # bad params fail before any run opens
    if len(cells) == 1:
        get_or_run(EXTRACT, cells[0])
        return
    ds = p.load()
    with tracking.run("extract-" + "+".join(c.feature for c in cells), step="extract-group"):
        tracking.log_params({"feature": p.feature})
        for c in cells:
            get_or_run(EXTRACT, c, ds)
