"""Hyperparameter choice on a validation split carved from the training set, then a refit on all of it.

``fit_classifier`` never sees a test set: it takes the training arrays only.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from sklearn.base import clone

from ..data import stratified_indices, train_val_split
from ..errors import ParamError
from .base import ClassifierSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("fmnist")


@dataclass
class FitResult:
    model: Any  # the pipeline, fitted on the whole training set with the chosen values
    chosen: dict[str, Any]  # hyperparameter name -> value used for the final fit
    val_accuracy: float | None  # of the chosen values, on the validation split (None: no split asked)
    fit_seconds: float  # the final fit on the whole training set
    tune_seconds: float = 0.0  # everything before it (grid search or the validation fit)
    n_train: int = 0
    n_val: int = 0
    n_tune_train: int = 0  # training samples each candidate was fitted on
    trials: list[dict[str, Any]] = field(default_factory=list)  # one row per candidate: values + val_accuracy
    tuning_table: pd.DataFrame | None = None  # the trials, then GridSearchCV's cv_results_ (None: no search)


@contextmanager
def announce(what: str, every: float = 60.0, finish: bool = True) -> Iterator[None]:
    """Start/finish lines with elapsed seconds, and a 'still running' line every ``every`` seconds."""
    t0 = time.perf_counter()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            log.info("%s: still running (%.0fs)", what, time.perf_counter() - t0)

    log.info("%s ...", what)
    th = threading.Thread(target=beat, daemon=True)
    th.start()
    try:
        yield
    finally:
        done.set()
        th.join()
    if finish:
        log.info("%s: done in %.1fs", what, time.perf_counter() - t0)


def _fmt(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def check_val_fraction(tune: bool, val_fraction: float) -> None:
    """``val_fraction`` in [0, 1); tuning needs a non-empty validation split, so (0, 1)."""
    if tune and not 0 < val_fraction < 1:
        raise ParamError(f"tune=true needs a validation split: val_fraction must be in (0, 1), got {val_fraction}")
    if not 0 <= val_fraction < 1:
        raise ParamError(f"val_fraction must be in [0, 1), got {val_fraction}")


def fit_classifier(
    spec: ClassifierSpec, x: np.ndarray, y: np.ndarray, *, tune: bool, val_fraction: float = 0.1,
    seed: int = 0, name: str = "model",
) -> FitResult:
    """Choose hyperparameters on a stratified validation split of (x, y), then refit on all of (x, y).

    ``tune=False`` keeps the spec's defaults; the validation split then only measures them
    (``val_fraction=0`` skips it: one fit). ``tune=True`` fits the preprocessing steps once on the
    training part (at most ``spec.tune_max_train`` samples, stratified), fits the final step for every
    grid candidate (``GridSearchCV`` on that one split, ``search_jobs`` at a time) and keeps the best
    validation accuracy (the first one on ties).
    """
    check_val_fraction(tune, val_fraction)
    pipe = spec.pipeline
    _fit_components(pipe, n_samples=int(len(y) * (1 - val_fraction)), n_features=x.shape[1])
    res = FitResult(model=pipe, chosen={}, val_accuracy=None, fit_seconds=0.0, n_train=len(y))
    t_start = time.perf_counter()
    if val_fraction > 0:
        tr, va = train_val_split(y, val_fraction, seed)
        res.n_val = len(va)
        if tune and spec.grid:
            _search(spec, x, y, tr, va, seed, name, res)
        else:
            res.n_tune_train = len(tr)
            with announce(f"fit {name} on the training part ({len(tr)} x {x.shape[1]}) [{_fmt(spec.values())}]"):
                m = clone(pipe).fit(x[tr], y[tr])
            res.val_accuracy = float(np.mean(m.predict(x[va]) == y[va]))
            log.info("%s: val_accuracy %.4f", name, res.val_accuracy)
    res.tune_seconds = time.perf_counter() - t_start
    res.chosen = spec.values()
    with announce(f"fit {name} on the full training set ({len(y)} x {x.shape[1]}) [{_fmt(res.chosen)}]"):
        t = time.perf_counter()
        pipe.fit(x, y)
        res.fit_seconds = time.perf_counter() - t
    return res


def _fit_components(pipe, *, n_samples: int, n_features: int) -> None:
    """Cap a PCA step's component count at what the data allows (small subsets, low-dim features)."""
    from sklearn.decomposition import PCA

    for _, step in pipe.steps:
        k = getattr(step, "n_components", None)
        if isinstance(step, PCA) and isinstance(k, int) and k > min(n_samples, n_features) - 1:
            step.set_params(n_components=max(1, min(n_samples, n_features) - 1))


def cpu_share() -> int:
    """The CPUs this process may keep busy: its affinity, capped by the BLAS thread limit an executor sets
    (a Ray worker caps it to the cell's ``num_cpus``)."""
    from threadpoolctl import threadpool_info

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return max(1, min([cpus, *blas]))


def search_jobs(estimator, n_candidates: int) -> int:
    """Candidates the search fits at once: up to the cell's CPU share, one for a model that parallelises itself."""
    if getattr(estimator, "n_jobs", None) not in (None, 1):  # rf's own n_jobs already fills the cores
        return 1
    return max(1, min(cpu_share(), n_candidates))


def _search(spec: ClassifierSpec, x: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray, seed: int,
            name: str, res: FitResult) -> None:
    import pandas as pd
    from joblib import parallel_config
    from sklearn.model_selection import GridSearchCV

    pipe = spec.pipeline
    if spec.tune_max_train and len(tr) > spec.tune_max_train:
        tr = tr[stratified_indices(y[tr], spec.tune_max_train, seed)]
    res.n_tune_train = n_tr = len(tr)
    # GridSearchCV takes one matrix: the train part's rows first, then the validation part's
    if len(pipe.steps) > 1:  # preprocessing (scaling, PCA) does not depend on the searched values: fit it once
        pre = clone(pipe[:-1])
        with announce(f"tune {name}: preprocessing on {n_tr} x {x.shape[1]}"):
            x_tr = pre.fit_transform(x[tr], y[tr])
            xs = np.concatenate([x_tr, pre.transform(x[va])])
    else:
        xs = x[np.concatenate([tr, va])]
        x_tr = xs[:n_tr]
    ys = np.concatenate([y[tr], y[va]])
    # grid functions see the train part as the preprocessing returned it, as before (not a copy in xs)
    grid = {k: (v(x_tr) if callable(v) else list(v)) for k, v in spec.grid.items()}
    combos = [dict(zip(grid, vals)) for vals in itertools.product(*grid.values())]
    last, est0 = pipe.steps[-1]
    prefix = f"{last}__"
    # One single-point grid per candidate: ParameterGrid would sort the names of one grid, changing the order,
    # hence which of tied candidates is first.
    param_grid = [{spec.hp[k][len(prefix):]: [v] for k, v in values.items()} for values in combos]
    jobs = search_jobs(est0, len(combos))
    search = GridSearchCV(clone(est0), param_grid, scoring="accuracy", refit=False, n_jobs=jobs,
                          cv=[(np.arange(n_tr), np.arange(n_tr, len(ys)))], error_score="raise")
    # Threads, not joblib's worker processes: no copy of the matrix per worker, nothing left running after the
    # cell (a SIGTERM'd study leaves no process), and each fit's BLAS threads as in a serial fit (same numbers).
    # The fits release the GIL (BLAS, libsvm, lbfgs' gradients).
    with announce(f"tune {name}: {len(combos)} candidates on {n_tr} x {xs.shape[1]}, {jobs} at a time"), \
            parallel_config(backend="threading"):
        search.fit(xs, ys)
    cv = search.cv_results_
    for i, values in enumerate(combos):
        acc, seconds = float(cv["split0_test_score"][i]), float(cv["mean_fit_time"][i] + cv["mean_score_time"][i])
        log.info("tune %s [%d/%d] %s: val_accuracy %.4f in %.1fs", name, i + 1, len(combos), _fmt(values), acc,
                 seconds)
        res.trials.append({**values, "val_accuracy": acc, "seconds": seconds})
    # the trial columns first (all tuning.csv held before, what readers of it use), then cv_results_
    res.tuning_table = pd.concat([pd.DataFrame(res.trials), pd.DataFrame(cv)], axis=1)
    best = int(np.argmax(cv["split0_test_score"]))  # the first of tied candidates
    res.val_accuracy = res.trials[best]["val_accuracy"]
    pipe.set_params(**{spec.hp[k]: v for k, v in combos[best].items()})
