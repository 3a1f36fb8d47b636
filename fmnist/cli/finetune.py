"""``fmnist finetune``: ResNet-18 transfer learning (last layer or full network), resumable."""

from __future__ import annotations

import click

from ..steps.finetune import FinetuneParams, finetune as finetune_step
from ..steps.params import as_dict, from_cli, options


@click.command()
@options(FinetuneParams)
def finetune(**kw) -> None:
    """Fine-tune an (ImageNet) ResNet-18 on the dataset and log the run to MLflow."""
    finetune_step(**as_dict(from_cli(FinetuneParams, kw)))
