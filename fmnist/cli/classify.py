"""``fmnist classify``: fit and evaluate classifiers on extracted features, one MLflow run per cell."""

from __future__ import annotations

import click

from ..commands import classify as classify_step
from ..steps.classify import ClassifyParams
from ..steps.params import ExecOpts, from_cli, options


@click.command()
@options(ClassifyParams, ExecOpts)
def classify(**kw) -> None:
    """Fit classifiers on features and log test/val/train accuracy, per-class accuracy and the model."""
    classify_step(from_cli(ClassifyParams, kw), from_cli(ExecOpts, kw))
