"""The report as a tracked step: HTML logged to the active run (the study's parent) or a new one."""

from __future__ import annotations

import logging
from pathlib import Path

from .. import tracking
from ..notebook import render_report

log = logging.getLogger("fmnist")


def report_step(*, output: str, experiment: str | None = None, notebook: str | None = None) -> Path:
    """Render the report; log report.html (+ executed notebook) to the active run, else to a new run."""

    def _do() -> Path:
        exp = experiment or tracking.active_experiment_name()
        res = render_report(output, notebook=notebook, experiment=exp, tracking_uri=tracking.tracking_uri())
        tracking.log_artifact(res["html"], "report")
        tracking.log_artifact(res["ipynb"], "report")
        tracking.log_metrics({"report_seconds": res["seconds"]})
        log.info("report written to %s (%.1fs)", res["html"], res["seconds"])
        return res["html"]

    if tracking.active_run_id():
        return _do()
    with tracking.run("report", step="report"):
        tracking.log_params({"output": output, "experiment": experiment or ""})
        return _do()
