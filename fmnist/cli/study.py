"""``fmnist study``: the whole study (the ``main`` entry point)."""

from __future__ import annotations

import click

from ..steps.params import from_cli, options
from ..commands.study import StudyParams, run_study


@click.command()
@options(StudyParams)
def study(**kw) -> None:
    """Run the whole study: extract, classify, visualize, fine-tune, report; every step cached."""
    run_study(from_cli(StudyParams, kw))
