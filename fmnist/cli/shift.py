"""``fmnist shift``: each scored model's accuracy under translation, rotation, scaling, deformation, noise, blur."""

from __future__ import annotations

import click

from ..commands.shift import ShiftCommandParams, shift as shift_command
from ..steps.params import ExecOpts, from_cli, options


@click.command()
@options(ShiftCommandParams, ExecOpts)
def shift(**kw) -> None:
    """Score classifiers (a --feature/--model grid), fine-tuned networks (--finetune) or one --run on the same
    shifted test images: one run per model with its accuracy per kind and level, shift.csv and a curve."""
    shift_command(from_cli(ShiftCommandParams, kw), from_cli(ExecOpts, kw))
