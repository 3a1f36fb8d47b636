"""``fmnist scatnet-search``: score scattering representations on a validation split, one child run each."""

from __future__ import annotations

import click

from ..steps.params import ExecOpts, from_cli, options
from ..commands import scatnet_search as search_step
from ..steps.search import SearchParams


@click.command("scatnet-search")
@options(SearchParams, ExecOpts)
def scatnet_search(**kw) -> None:
    """Score scattering + RBF SVM candidates on a validation split of the training set (never the test set)."""
    search_step(from_cli(SearchParams, kw), from_cli(ExecOpts, kw))
