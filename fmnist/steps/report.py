"""The report as a step (never cached): HTML logged to the active run (the study's parent) or a new one."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import click

from .. import tracking
from ..data import dataset_names
from ..notebook import render_report
from .base import RunContext, Step, get_or_run
from .params import param

log = logging.getLogger("fmnist")

DEFAULT_OUTPUT = "outputs/report.html"


@dataclass(frozen=True)
class ReportParams:
    output: str = param(DEFAULT_OUTPUT, "Where to write the HTML report.")
    experiment: str = param("", "Experiment to report on [default: $MLFLOW_EXPERIMENT_NAME or fmnist].")
    dataset: str = param("fashion-mnist", "Dataset whose runs the report is about.",
                         type=click.Choice(dataset_names()))
    notebook: str = param("", "Notebook to execute [default: the packaged notebooks/report.ipynb].", cli=False)


class Report(Step):
    name = "report"
    Params = ReportParams
    cacheable = False  # it reads the store, which changes under it
    needs_data = False

    @contextmanager
    def open(self, p: ReportParams, ds, parent_run_id: str | None) -> Iterator[RunContext]:
        active = tracking.active_run_id()
        if active:  # the study's parent: the report belongs to it
            yield RunContext(active)
            return
        with tracking.run("report", step="report") as run_id:
            tracking.log_params({"output": p.output, "experiment": p.experiment, "dataset": p.dataset})
            yield RunContext(run_id)

    def run(self, p: ReportParams, ds, inputs: dict, ctx: RunContext) -> dict[str, Any]:
        exp = p.experiment or tracking.active_experiment_name()
        return render_report(p.output, notebook=p.notebook or None, experiment=exp, dataset=p.dataset,
                             tracking_uri=tracking.tracking_uri())

    def log(self, p: ReportParams, ds, res: dict[str, Any]) -> dict[str, str]:
        tracking.log_artifact(res["html"], "report")
        tracking.log_artifact(res["ipynb"], "report")
        tracking.log_metrics({"report_seconds": res["seconds"]})
        log.info("report written to %s (%.1fs)", res["html"], res["seconds"])
        return {}


REPORT = Report()


def report_step(*, output: str = DEFAULT_OUTPUT, experiment: str | None = None, notebook: str | None = None,
                dataset: str = "fashion-mnist") -> Path:
    """Render the report; log report.html (+ executed notebook) to the active run, else to a new run."""
    out = get_or_run(REPORT, ReportParams(output, experiment or "", dataset, notebook or ""))
    return out.result["html"]
