"""The report as a step: HTML logged to the active run (the study's parent) or a new one.

Its key is the store's state: it is reused until a run of the experiment starts, ends or is deleted (or the
notebook, the published-results table or the report code changes).
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import click

from .. import cache, tracking
from ..data import dataset_names
from ..errors import CacheError
from ..notebook import DEFAULT_NOTEBOOK, render_report, significance_csv, views_dir
from .base import Outcome, Placement, RunContext, Step, get_or_run, verify_artifacts
from .params import param
from ..tags import REPORT_REUSED_TAG

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
    needs_data = False

    def key(self, p: ReportParams, ds) -> str:
        from importlib import resources

        # the experiment the notebook will read (as tracking.search_runs chooses it)
        exp = (p.experiment or tracking.active_experiment_name() or os.environ.get("MLFLOW_EXPERIMENT_NAME")
               or tracking.DEFAULT_EXPERIMENT)
        sota = resources.files("fmnist").joinpath("resources/sota.csv")
        inputs = {"experiment": exp, "dataset": p.dataset,
                  "runs": tracking.runs_fingerprint(exp, skip_steps=("study", "report")),
                  "notebook": cache.file_sha256(p.notebook or DEFAULT_NOTEBOOK), "sota": cache.file_sha256(sota)}
        return cache.cache_key("report", inputs, "", cache.step_code_version(__name__, "fmnist.report",
                                                                             "fmnist.notebook"))

    @contextmanager
    def open(self, p: ReportParams, ds, placement: Placement) -> Iterator[RunContext]:
        active = tracking.active_run_id()
        if active:  # the study's parent: the report belongs to it
            yield RunContext(active)
            return
        with tracking.run("report", step="report", parent_run_id=placement.parent,
                          launcher=placement.launcher) as run_id:
            tracking.log_params({"output": p.output, "experiment": p.experiment, "dataset": p.dataset})
            yield RunContext(run_id)

    def run(self, p: ReportParams, ds, inputs: dict, ctx: RunContext) -> dict[str, Any]:
        exp = p.experiment or tracking.active_experiment_name()
        return render_report(p.output, notebook=p.notebook or None, experiment=exp, dataset=p.dataset,
                             tracking_uri=tracking.tracking_uri())

    def log(self, p: ReportParams, ds, res: dict[str, Any]) -> dict[str, str]:
        log_report_files(res)
        tracking.log_metrics({"report_seconds": res["seconds"]})
        log.info("report written to %s (%.1fs)", res["html"], res["seconds"])
        return {f"{artifact_dir(f, res)}/{Path(f).name}": cache.file_sha256(f) for f in report_files(res)}

    def load(self, info: dict[str, Any], p: ReportParams, ds) -> dict[str, Any]:
        """The reused report, verified, copied to ``p.output`` (and its notebook beside it)."""
        import shutil

        verified = verify_artifacts(info)
        pages = {Path(name).name: path for name, path in verified.items() if name.startswith(f"{VIEWS_DIR}/")}
        paths = {Path(name).suffix: path for name, path in verified.items() if not name.startswith(f"{VIEWS_DIR}/")}
        if not {".html", ".ipynb"} <= set(paths):
            raise CacheError(f"run {info['run_id']} holds no verified report")
        out = Path(p.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        csv, views = significance_csv(out), views_dir(out)
        views.mkdir(exist_ok=True)
        for old in views.glob("*.html"):
            old.unlink()
        copies = [(paths[".html"], out), (paths[".ipynb"], out.with_suffix(".ipynb"))]
        copies += [(paths[".csv"], csv)] if ".csv" in paths else []
        copies += [(path, views / name) for name, path in pages.items()]
        for src, dst in copies:
            tmp = dst.with_suffix(dst.suffix + ".tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dst)
        log.info("report written to %s (reused from run %s: no run changed since)", out, info["run_id"])
        return {"html": out, "ipynb": out.with_suffix(".ipynb"), "csv": csv if ".csv" in paths else None,
                "views": sorted(views / name for name in pages), "seconds": 0.0}


REPORT = Report()


VIEWS_DIR = "report/views"  # the 2-D views' pages in a report run's artifacts, as beside the HTML


def report_files(res: dict[str, Any]) -> list:
    """The files a render leaves: the page, the executed notebook, the paired tests' CSV when there are any, and
    the 2-D views' pages its figures link to."""
    return [res[k] for k in ("html", "ipynb", "csv") if res.get(k)] + list(res.get("views") or [])


def artifact_dir(f, res: dict[str, Any]) -> str:
    """Where a report file goes in the run's artifacts: ``report/``, its views' pages in ``report/views/``."""
    return VIEWS_DIR if f in (res.get("views") or []) else "report"


def log_report_files(res: dict[str, Any]) -> None:
    for f in report_files(res):
        tracking.log_artifact(f, artifact_dir(f, res))


def render_or_reuse(p: ReportParams, placement: Placement = Placement()) -> Outcome:
    """The report through ``get_or_run``; a reused one is still logged onto the active run (a study's parent)."""
    out = get_or_run(REPORT, p, placement=placement)
    out.result  # noqa: B018  (loading a reused report copies it to p.output)
    if out.cached and tracking.active_run_id() not in (None, out.run_id):
        log_report_files(out.result)
        tracking.set_tags({REPORT_REUSED_TAG: out.run_id})
    return out


def report_step(*, output: str = DEFAULT_OUTPUT, experiment: str | None = None, notebook: str | None = None,
                dataset: str = "fashion-mnist") -> Path:
    """Render the report (or reuse it when no run changed); log report.html (+ executed notebook) to the active
    run, else to a new run."""
    return render_or_reuse(ReportParams(output, experiment or "", dataset, notebook or ""),
                           Placement(launcher=tracking.launcher_run_id())).result["html"]
