"""``fmnist finetune``: ResNet-18 transfer learning (last layer or full network), resumable."""

from __future__ import annotations

import click

from ..commands import finetune_modes
from ..steps.finetune import FinetuneParams
from ..steps.params import ExecOpts, from_cli, options


@click.command()
@options(FinetuneParams, ExecOpts)
def finetune(**kw) -> None:
    """Fine-tune an (ImageNet) ResNet-18 on the dataset and log the run to MLflow (one run per mode)."""
    finetune_modes(from_cli(FinetuneParams, kw), from_cli(ExecOpts, kw))
