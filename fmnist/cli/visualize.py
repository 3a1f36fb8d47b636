"""``fmnist visualize``: 2-D views (PCA, t-SNE, LLE, UMAP) of feature sets, with separation metrics."""

from __future__ import annotations

from typing import Callable

import click

from ..embeddings import EMBEDDINGS
from ..features import FEATURES
from ..steps.visualize import DEFAULT_N_SAMPLES, visualize as run_visualize
from .options import (SubsetType, _stack, dataset_options, feature_options, pop_feature_params,
                      registry_param_options, registry_param_specs)

HELP = {"perplexity": "t-SNE perplexity.", "n_neighbors": "UMAP n_neighbors.", "min_dist": "UMAP min_dist.",
        "lle_neighbors": "LLE n_neighbors.", "pca_dims": "PCA to this many dimensions before t-SNE/UMAP/LLE (0 = off)."}


class SampleSize(SubsetType):
    """``all`` or a positive number of test images."""

    name = "count"


def method_options(fn: Callable) -> Callable:
    """One option per method param (``--perplexity``, ``--n-neighbors`` ...)."""
    return _stack(*registry_param_options(EMBEDDINGS, lambda k: HELP.get(k, "")))(fn)


@click.command()
@click.option("--feature", default="all", show_default=True,
              help=f"all, or a comma list of: {', '.join(FEATURES.names())}.")
@click.option("--method", default="all", show_default=True,
              help=f"all, or a comma list of: {', '.join(EMBEDDINGS.names())}.")
@click.option("--n-samples", type=SampleSize(), default=DEFAULT_N_SAMPLES, show_default=True,
              help="Stratified sample of the test split to embed (seeded by --seed); 'all' for the whole split.")
@method_options
@dataset_options
@feature_options
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
def visualize(feature: str, method: str, n_samples: int | None, **kw) -> None:
    """Embed a test sample of each feature set in 2-D with each method; log plots, coordinates and metrics."""
    feature_given = pop_feature_params(kw)
    method_given = {k: kw.pop(k) for k in registry_param_specs(EMBEDDINGS)}
    run_visualize(features=FEATURES.expand(feature), methods=EMBEDDINGS.expand(method), n_samples=n_samples,
                  seed=kw["seed"], method_given=method_given, dataset=kw["dataset"],
                  data_dir=kw["data_dir"] or None, subset=kw["subset"], feature_given=feature_given,
                  batch_size=kw["batch_size"], device=kw["device"], progress=kw["progress"])
