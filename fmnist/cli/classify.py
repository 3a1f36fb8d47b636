"""``fmnist classify``: fit and evaluate classifiers on extracted features, one MLflow run per cell."""

from __future__ import annotations

import click

from ..classifiers import CLASSIFIERS
from ..features import FEATURES
from ..steps.classify import classify as classify_step
from .options import dataset_options, feature_options, pop_feature_params


@click.command()
@click.option("--feature", default="scatnet", show_default=True,
              help=f"all, or a comma list of: {', '.join(FEATURES.names())}.")
@click.option("--model", default="all", show_default=True,
              help=f"all, or a comma list of: {', '.join(CLASSIFIERS.names())}.")
@dataset_options
@feature_options
@click.option("--tune", type=click.BOOL, default=True, show_default=True,
              help="Choose hyperparameters on a validation split of the training set (false: fixed defaults).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Share of the training set held out for validation (0 with tune=false: no validation fit).")
@click.option("--n-jobs", type=int, default=-1, show_default=True, help="Parallel jobs for models that use them (rf).")
@click.option("--extract-run", default="", show_default=False,
              help="Use this FINISHED extract run's features (checked against the data) instead of the cache lookup.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
def classify(feature: str, model: str, **kw) -> None:
    """Fit classifiers on features and log test/val/train accuracy, per-class accuracy and the model."""
    params = pop_feature_params(kw)
    classify_step(feature=feature, model=model, dataset=kw["dataset"], data_dir=kw["data_dir"] or None,
                  subset=kw["subset"], seed=kw["seed"], params=params, tune=kw["tune"],
                  val_fraction=kw["val_fraction"], n_jobs=kw["n_jobs"], extract_run=kw["extract_run"] or None,
                  batch_size=kw["batch_size"], device=kw["device"], progress=kw["progress"])
