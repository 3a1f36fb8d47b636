"""``fmnist extract``: features for train and test, cached in the tracking store."""

from __future__ import annotations

import click

from .. import tracking
from ..features import FEATURES
from ..steps.extract import get_features
from .options import dataset_options, feature_options, pop_feature_params


@click.command()
@click.option("--feature", default="all", show_default=True,
              help=f"all, or a comma list of: {', '.join(FEATURES.names())}.")
@dataset_options
@feature_options
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
def extract(feature: str, **kw) -> None:
    """Extract features (train + test) and log them to an MLflow run; reuse a cached run when one matches."""
    params = pop_feature_params(kw)
    names = FEATURES.expand(feature)
    common = dict(dataset=kw["dataset"], data_dir=kw["data_dir"] or None, subset=kw["subset"], seed=kw["seed"],
                  params=params, batch_size=kw["batch_size"], device=kw["device"], progress=kw["progress"])
    if len(names) == 1:
        with tracking.run(f"extract-{names[0]}", step="extract"):
            get_features(feature=names[0], into_active_run=True, **common)
        return
    with tracking.run("extract-" + "+".join(names), step="extract-group"):
        tracking.log_params({"feature": feature})
        for name in names:
            get_features(feature=name, into_active_run=False, **common)
