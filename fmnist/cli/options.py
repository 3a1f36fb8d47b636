"""Shared click options. Defaults come from the registries: MLproject must repeat them (a test checks)."""

from __future__ import annotations

from typing import Any, Callable

import click

from ..data import dataset_names
from ..features import FEATURES, RUNTIME_DEFAULTS


class SubsetType(click.ParamType):
    """``all`` or a positive int (the stratified number of images kept in each split)."""

    name = "subset"

    def convert(self, value: Any, param, ctx) -> int | None:
        if value is None or isinstance(value, int) and not isinstance(value, bool):
            n = value
        elif str(value).strip().lower() in ("all", ""):
            return None
        else:
            try:
                n = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is neither 'all' nor a whole number", param, ctx)
        if n is not None and n <= 0:
            self.fail(f"{value!r} must be 'all' or a positive number of images", param, ctx)
        return n


def _stack(*decorators: Callable) -> Callable:
    def apply(fn: Callable) -> Callable:
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return apply


def dataset_options(fn: Callable) -> Callable:
    return _stack(
        click.option("--dataset", type=click.Choice(dataset_names()), default="fashion-mnist", show_default=True,
                     help="Dataset of the MNIST family."),
        click.option("--data-dir", default="", show_default=False,
                     help="Folder with the IDX files or download root [default: $FMNIST_DATA_DIR or ./data]."),
        click.option("--subset", type=SubsetType(), default="all", show_default=True,
                     help="Keep a stratified N images of each split (quick runs)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for subsets and models."),
    )(fn)


def registry_param_specs(registry) -> dict[str, Any]:
    """Every entry's params, by name -> default; two entries sharing a param must share its default."""
    specs: dict[str, Any] = {}
    for entry in registry:
        for k, v in entry.params.items():
            if k in specs and specs[k] != v:
                raise RuntimeError(f"{registry.kind} param {k!r} has two defaults: {specs[k]!r} and {v!r}")
            specs[k] = v
    return specs


def registry_param_options(registry, help_for: Callable[[str], str]) -> list[Callable]:
    """One click option per registry param (``--J``, ``--n-neighbors`` ...), typed by its default."""
    return [click.option(f"--{k.replace('_', '-')}", k, type=type(v), default=v, show_default=True,
                         help=help_for(k)) for k, v in registry_param_specs(registry).items()]


def feature_options(fn: Callable) -> Callable:
    """One option per feature param (``--J``, ``--weights`` ...) plus ``--batch-size`` and ``--device``."""
    owners = {k: [e.name for e in FEATURES if k in e.params] for k in registry_param_specs(FEATURES)}
    opts = registry_param_options(FEATURES, lambda k: f"{'/'.join(owners[k])} param.")
    opts.append(click.option("--batch-size", type=click.IntRange(min=1), default=RUNTIME_DEFAULTS["batch_size"],
                             show_default=True, help="Images per batch for torch features."))
    opts.append(click.option("--device", default=RUNTIME_DEFAULTS["device"], show_default=True,
                             help="auto (CUDA when present), cpu, cuda, cuda:N, mps."))
    return _stack(*opts)(fn)


def pop_feature_params(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the feature-param options out of a command's kwargs."""
    return {k: kwargs.pop(k) for k in list(registry_param_specs(FEATURES)) if k in kwargs}
