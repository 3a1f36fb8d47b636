"""``fmnist report``: execute notebooks/report.ipynb against the tracking store, write HTML."""

from __future__ import annotations

import click

from ..steps.report import report_step


@click.command()
@click.option("--output", default="outputs/report.html", show_default=True, help="Where to write the HTML report.")
@click.option("--experiment", default="", help="Experiment to report on [default: $MLFLOW_EXPERIMENT_NAME or fmnist].")
def report(output: str, experiment: str) -> None:
    """Rebuild the study's tables and figures from the tracking store as an HTML report."""
    report_step(output=output, experiment=experiment or None)
