"""``fmnist report``: execute notebooks/report.ipynb against the tracking store, write HTML."""

from __future__ import annotations

import click

from ..steps.params import from_cli, options
from ..steps.report import ReportParams, report_step


@click.command()
@options(ReportParams)
def report(**kw) -> None:
    """Rebuild the study's tables and figures from the tracking store as an HTML report."""
    p = from_cli(ReportParams, kw)
    report_step(output=p.output, experiment=p.experiment or None, dataset=p.dataset)
