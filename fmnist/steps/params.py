"""Step parameters: one frozen dataclass per step, each field with its one default and help text.

The click options (``fmnist <step> --...``) are derived from these classes; ``MLproject`` repeats the
defaults and ``tests/test_mlproject.py`` checks it against them. A field's ``key`` metadata says how it enters a
step's cache key (``key_values``): as it is, through the data digest, through a group the Params resolve as a
whole (``key_group``: e.g. only the chosen feature's own params), or not at all (how fast / where it runs).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import click

from ..data import dataset_names
from ..engine import EXECUTORS
from ..features import FEATURES, RUNTIME_DEFAULTS, feature_params

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


DATA = "data"  # a field that enters cache keys through the data digest (the dataset, its subset)


def param(default: Any, help: str = "", *, key: bool | str = True, type: Any = None, flag: bool = False,
          cli: bool = True) -> Any:
    """A params field. ``key``: True, the value enters the cache key; False, runtime only (device, progress ...);
    ``DATA``, through the data digest; another name, through the group the Params resolve (``key_group``)."""
    return field(default=default, metadata={"help": help, "key": key, "type": type, "flag": flag, "cli": cli})


def rekeyed(cls: type, name: str, key: bool | str) -> Any:
    """``cls``'s field ``name`` (default, help, type) entering cache keys another way in a subclass."""
    f = cls.__dataclass_fields__[name]
    return field(default=f.default, metadata={**f.metadata, "key": key})


def cli_default(f: dataclasses.Field) -> Any:
    """The default as the CLI and MLproject spell it (None counts are ``all``)."""
    if f.default is None and f.metadata.get("type") is COUNT:
        return ALL
    return f.default


def key_fields(p: Any) -> dict[str, Any]:
    """The fields of ``p`` that change the result, as given (what a run must record to be run again)."""
    return {f.name: getattr(p, f.name) for f in fields(p) if f.metadata.get("key", True)}


def key_values(p: Any, ds: Any) -> dict[str, Any]:
    """What a step's cache key holds of its params: each key field as it is, and each key group as ``p`` resolves
    it (``p.key_group(name, ds)``: e.g. the chosen feature's own params, validated, 'auto' weights resolved)."""
    out, groups = {}, []
    for f in fields(p):
        k = f.metadata.get("key", True)
        if k is True:
            out[f.name] = getattr(p, f.name)
        elif k and k != DATA and k not in groups:
            groups.append(k)
    for g in groups:
        out.update(p.key_group(g, ds))
    return out


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
    cls = classes[0]  # its own fields first (one a subclass only re-keys stays where its base put it)
    own = {n for n in cls.__dict__.get("__annotations__", {})
           if not any(n in getattr(b, "__dataclass_fields__", {}) for b in cls.__mro__[1:])}
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

    dataset: str = param("fashion-mnist", "Dataset of the MNIST family.", type=click.Choice(dataset_names()), key=DATA)
    data_dir: str = param("", "Folder with the IDX files or download root [default: $FMNIST_DATA_DIR or ./data].",
                          key=False)
    subset: int | None = param(None, "Keep a stratified N images of each split (quick runs).", type=COUNT, key=DATA)
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


FEATURE = "feature"  # key group: the feature's own params, resolved


@dataclass(frozen=True)
class FeatureOpts:
    """The feature registry's params (defaults from the registry) and the batch size of torch features."""

    J: int = param(FEATURE_DEFAULTS["J"], _owners("J"), key=FEATURE)
    L: int = param(FEATURE_DEFAULTS["L"], _owners("L"), key=FEATURE)
    max_order: int = param(FEATURE_DEFAULTS["max_order"], _owners("max_order"), key=FEATURE)
    weights: str = param(FEATURE_DEFAULTS["weights"],
                         "resnet18 weights: imagenet | none | auto (imagenet if obtainable, else none) | a .pth path.",
                         key=FEATURE)
    image_size: int = param(FEATURE_DEFAULTS["image_size"], _owners("image_size"), key=FEATURE)
    batch_size: int = param(RUNTIME_DEFAULTS["batch_size"], "Images per batch for torch features.", key=False,
                            type=click.IntRange(min=1))

    def given_feature_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in FEATURE_DEFAULTS}

    def key_group(self, name: str, ds: Any) -> dict[str, Any]:
        """The feature group of the key: the chosen feature's own params only, validated ('auto' resolved)."""
        return feature_params(self.feature, self.given_feature_params())


def check_feature_opts_cover_registry() -> None:
    missing = set(FEATURE_DEFAULTS) - {f.name for f in fields(FeatureOpts)}
    if missing:  # a new feature param needs one line in FeatureOpts (and MLproject)
        raise RuntimeError(f"FeatureOpts lacks feature params {sorted(missing)}")


check_feature_opts_cover_registry()
