"""``fmnist ui``: the MLflow UI on this store, with the link to the experiment's runs table."""

from __future__ import annotations

import os
import shutil
import sys

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface the UI listens on.")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True, help="Its port.")
@click.option("--experiment", default="", help="Experiment whose runs table to link [default: "
              "$MLFLOW_EXPERIMENT_NAME or fmnist].")
def ui(host: str, port: int, experiment: str) -> None:
    """Serve the MLflow UI on the tracking store and print the direct link to the runs table."""
    from .. import tracking

    uri = tracking.prepare_store()
    if uri.startswith(("http://", "https://")):  # a tracking server serves its own UI
        click.echo(f"[fmnist] the tracking server serves the UI: open {tracking.runs_table_url(uri, experiment)}")
        return
    link = tracking.runs_table_url(f"http://{host}:{port}", experiment or None, create=True)
    click.echo(f"[fmnist] MLflow UI for {uri.split('?')[0]}: open {link}", err=True)
    mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    os.execv(mlflow, [mlflow, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)])
