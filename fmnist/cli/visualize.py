"""``fmnist visualize``: 2-D views (PCA, t-SNE, LLE, UMAP) of feature sets, with separation metrics."""

from __future__ import annotations

import click

from ..steps.params import ExecOpts, from_cli, options
from ..commands import visualize as run_visualize
from ..steps.visualize import VisualizeParams


@click.command()
@options(VisualizeParams, ExecOpts)
def visualize(**kw) -> None:
    """Embed a test sample of each feature set in 2-D with each method; log plots, coordinates and metrics."""
    run_visualize(from_cli(VisualizeParams, kw), from_cli(ExecOpts, kw))
