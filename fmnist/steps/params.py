"""Step parameters: one frozen dataclass per step, each field with its one default and help text.

The click options (``fmnist <step> --...``) are derived from these classes; ``MLproject`` repeats the
defaults and ``tests/test_mlproject.py`` checks it against them. A field's ``key`` metadata says
whether it changes the result (it enters the cache key) or only how fast / where it runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import click

from ..data import dataset_names
from ..engine import EXECUTORS
from ..features import FEATURES, RUNTIME_DEFAULTS

# Ways to spell "no limit" for a count on the CLI and in MLproject.
ALL = "all"


class Count(click.ParamType):
    """``all`` (None) or a positive whole number."""

    name = "count"

    def convert(self, value: Any, param, ctx) -> int | None:
        if value is None or isinstance(value, int) and not isinstance(value, bool):
            n = value
        elif str(value).strip().lower() in (ALL, ""):
            return None
        else:
            try:
                n = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is neither 'all' nor a whole number", param, ctx)
        if n is not None and n <= 0:
            self.fail(f"{value!r} must be 'all' or a positive number of images", param, ctx)
        return n


COUNT = Count()


def param(default: Any, help: str = "", *, key: bool = True, type: Any = None, flag: bool = False,
          cli: bool = True) -> Any:
    """A params field. ``key=False``: runtime only (device, progress ...), kept out of cache keys."""
    return field(default=default, metadata={"help": help, "key": key, "type": type, "flag": flag, "cli": cli})


def cli_default(f: dataclasses.Field) -> Any:
    """The default as the CLI and MLproject spell it (None counts are ``all``)."""
    if f.default is None and f.metadata.get("type") is COUNT:
        return ALL
    return f.default


def key_fields(p: Any) -> dict[str, Any]:
    """The fields of ``p`` that change the result (cache-key part)."""
    return {f.name: getattr(p, f.name) for f in fields(p) if f.metadata.get("key", True)}


def parse_value(v: str) -> Any:
    """A logged param back as the number it was ("100" -> 100, "0.01" -> 0.01), else the string."""
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v


def as_dict(p: Any) -> dict[str, Any]:
    return {f.name: getattr(p, f.name) for f in fields(p)}


def options(*classes: type) -> Callable:
    """Decorate a click command with one option per field of ``classes`` (each class's own fields first)."""
    opts = []
    own = set(classes[0].__dict__.get("__annotations__", {}))
    seen: set[str] = set()
    all_fields = [f for cls in classes for f in fields(cls) if not (f.name in seen or seen.add(f.name))]
    for f in sorted(all_fields, key=lambda f: f.name not in own):
        if not f.metadata.get("cli", True):
            continue
        flag = f"--{f.name.replace('_', '-')}"
        text = f.metadata.get("help", "")
        if f.metadata.get("flag"):
            opts.append(click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name, default=f.default,
                                     show_default=True, help=text))
            continue
        typ = f.metadata.get("type") or (click.BOOL if isinstance(f.default, bool) else type(f.default))
        opts.append(click.option(flag, f.name, type=typ, default=cli_default(f), show_default=f.default != "",
                                 help=text))

    def apply(fn: Callable) -> Callable:
        for o in reversed(opts):
            fn = o(fn)
        return fn

    return apply


def from_cli(cls: type, kwargs: dict[str, Any]) -> Any:
    """Build ``cls`` from a click command's kwargs (unknown keys ignored)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in kwargs.items() if k in names})


# ---------------------------------------------------------------------------------------- shared


@dataclass(frozen=True)
class Common:
    """What every step takes: the data, the seed, and how to run."""

    dataset: str = param("fashion-mnist", "Dataset of the MNIST family.", type=click.Choice(dataset_names()))
    data_dir: str = param("", "Folder with the IDX files or download root [default: $FMNIST_DATA_DIR or ./data].",
                          key=False)
    subset: int | None = param(None, "Keep a stratified N images of each split (quick runs).", type=COUNT)
    seed: int = param(0, "Seed for subsets, splits and models.")
    device: str = param(RUNTIME_DEFAULTS["device"], "auto (CUDA when present), cpu, cuda, cuda:N, mps.", key=False)
    force: bool = param(False, "Recompute even when a FINISHED run with the same key exists.", key=False)
    progress: bool = param(True, "Progress bars.", key=False, flag=True)

    def load(self):
        """The dataset these params name (read once per process)."""
        from ..data import load_dataset

        return load_dataset(self.dataset, data_dir=self.data_dir or None, subset=self.subset, seed=self.seed)


@dataclass(frozen=True)
class ExecOpts:
    """Where a command's graph runs (never part of a result)."""

    executor: str = param("serial", f"{' | '.join(EXECUTORS)}: the cells one after another in this process, or as Ray tasks (a "
                                    "local instance, or the cluster at --ray-address).",
                          key=False, type=click.Choice(list(EXECUTORS)))
    ray_address: str = param("", "Ray cluster to join (host:port, auto) [default: $RAY_ADDRESS, else a local "
                                 "instance with every core].", key=False)

    def exec_kw(self) -> dict[str, Any]:
        return {"executor": self.executor, "ray_address": self.ray_address}


def registry_defaults(registry) -> dict[str, Any]:
    """Every entry's param defaults (two entries sharing a param share its default)."""
    specs: dict[str, Any] = {}
    for entry in registry:
        for k, v in entry.params.items():
            if specs.setdefault(k, v) != v:
                raise RuntimeError(f"{registry.kind} param {k!r} has two defaults: {specs[k]!r} and {v!r}")
    return specs


FEATURE_DEFAULTS = registry_defaults(FEATURES)  # the defaults live in the feature registry


def _owners(k: str) -> str:
    return "/".join(e.name for e in FEATURES if k in e.params) + " param."


@dataclass(frozen=True)
class FeatureOpts:
    """The feature registry's params (defaults from the registry) and the batch size of torch features."""

    J: int = param(FEATURE_DEFAULTS["J"], _owners("J"))
    L: int = param(FEATURE_DEFAULTS["L"], _owners("L"))
    max_order: int = param(FEATURE_DEFAULTS["max_order"], _owners("max_order"))
    weights: str = param(FEATURE_DEFAULTS["weights"],
                         "resnet18 weights: imagenet | none | auto (imagenet if obtainable, else none) | a .pth path.")
    image_size: int = param(FEATURE_DEFAULTS["image_size"], _owners("image_size"))
    batch_size: int = param(RUNTIME_DEFAULTS["batch_size"], "Images per batch for torch features.", key=False,
                            type=click.IntRange(min=1))

    def given_feature_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in FEATURE_DEFAULTS}


def check_feature_opts_cover_registry() -> None:
    missing = set(FEATURE_DEFAULTS) - {f.name for f in fields(FeatureOpts)}
    if missing:  # a new feature param needs one line in FeatureOpts (and MLproject)
        raise RuntimeError(f"FeatureOpts lacks feature params {sorted(missing)}")


check_feature_opts_cover_registry()
