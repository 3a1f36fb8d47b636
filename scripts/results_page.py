"""Write docs/results.md from a tracking store: the tables of one study run, with its command, date and machine.

    python bench/study.py --profiles full --executors ray        # one full study, machine otherwise idle
    MLFLOW_TRACKING_URI=sqlite:///<its store>/mlflow.db python scripts/results_page.py \
        --command "python bench/study.py --profiles full --executors ray"

The tables come from ``fmnist.report.results_markdown`` (the same queries as the report); the date is the
newest study run's, the machine is this one's ``lscpu`` model line and core count (run it where the study ran).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(["lscpu"], capture_output=True, text=True)
                  .stdout.splitlines() if ln.startswith("Model name")), platform.processor() or "?")
    return f"{os.cpu_count()} CPU cores ({model})"


@click.command()
@click.option("--command", "study_command", required=True, help="The command that ran the study (quoted in the page).")
@click.option("--experiment", default="", help="[default: $MLFLOW_EXPERIMENT_NAME or fmnist]")
@click.option("--dataset", default="fashion-mnist", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=ROOT / "docs" / "results.md",
              show_default=True)
@click.option("--conditions", default="nothing else running", show_default=True,
              help="What else the machine did while the study ran (its timings depend on it).")
def main(study_command: str, experiment: str, dataset: str, output: Path, conditions: str) -> None:
    from fmnist import report

    studies = report.runs("study", experiment or None, dataset=None)
    if studies.empty:
        raise click.ClickException("no finished study run in this store: run the study first")
    when = dt.datetime.fromtimestamp(studies["start_time"].max().timestamp(), dt.timezone.utc).date()
    about = (f"From one study run: `{study_command}`, started {when} on {machine()}, {conditions}. "
             f"Regenerate with `python scripts/results_page.py --command ...` over that run's store "
             f"(the script's docstring).")
    text = report.results_markdown(experiment or None, dataset, about=about)
    tmp = output.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(output)
    click.echo(f"wrote {output}")


if __name__ == "__main__":
    main()
