"""One shape for every step, and the one place that decides cached-or-run (``get_or_run``).

A step is a ``Params`` class (frozen dataclass), ``key(p, ds)``, ``requires(p)`` (the upstream steps and their
params: the graph is built from these), ``run(p, ds, inputs, ctx) -> result`` (library work that returns values,
never logs) and ``log(p, ds, result)`` (the result onto the open run, returning the checksums of the artifacts a
later reuse must verify). Every command builds a graph of such cells (``fmnist.steps.graph``); its driver decides
where each cell's run goes (a ``Placement``) and hands it, with the cell's inputs, to ``get_or_run``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from .. import cache, tracking
from ..device import resolve_device
from ..envinfo import environment
from ..errors import CacheError
from .params import as_dict, key_values
from ..tags import (ARTIFACTS_TAG, CACHE_HIT_TAG, CODE_TAG, DATA_DIGEST_TAG, DATA_SOURCE_TAG, DATASET_PARAM, ENV_TAG,
                    PARAMS_TAG, RERUN_TAG, REUSED_TAG, SEED_PARAM, SUBSET_PARAM, metric_col, param_col, tag_col)

log = logging.getLogger("fmnist")

PREDICTIONS = "predictions.npz"  # classify and finetune: every test image's label, prediction (and scores)
IMAGE_MODEL = "image model"  # classify and finetune: the model a user serves (raw images in, classes out)


def split_evaluation(metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """(metrics computed on the test split, the others): the first are logged with their dataset, linked to
    the run's image model."""
    test = {k: v for k, v in metrics.items() if k.startswith("test_") or k == "macro_f1"}
    return test, {k: v for k, v in metrics.items() if k not in test}


@dataclass(frozen=True)
class Placement:
    """Where a step's run goes, decided once by the graph's driver: a child of ``parent`` (a run id), else a run of
    its own; ``launcher``: the run ``mlflow run`` opened for the command, which this run takes over (only the
    command's own run does: its inputs never, a grid's cells never)."""

    parent: str | None = None
    launcher: str | None = None


class Outcome:
    """What ``get_or_run`` gives back: the run, whether it was reused, and its result. A reused run's ``info`` is
    the one read the cache decision made (params, metrics, tags); its ``result`` is loaded on first use (for a
    ``memoise`` step, once per process and run)."""

    def __init__(self, run_id: str, cached: bool, *, result: Any = None, info: dict[str, Any] | None = None,
                 load: Callable[[], Any] | None = None, seconds: float = 0.0):
        self.run_id, self.cached, self.info, self.seconds = run_id, cached, info, seconds
        self._result, self._load = result, load

    @property
    def result(self) -> Any:
        if self._load is not None:
            self._result, self._load = self._load(), None
        return self._result


def _log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    tracking.log_metrics(metrics, step=step)


@dataclass
class RunContext:
    """What ``run`` may use of the open run without talking to MLflow: its id and a metrics callback."""

    run_id: str
    report: Callable[[dict[str, float], int | None], None] = _log_metrics  # onto the open run
    state: dict[str, Any] = field(default_factory=dict)  # set by the step's own open() (e.g. a checkpoint)


class Step:
    name: ClassVar[str]
    Params: ClassVar[type]
    cacheable: ClassVar[bool] = True
    needs_data: ClassVar[bool] = True
    memoise: ClassVar[bool] = False  # other steps read its result: keep what is loaded (a grid loads it once)
    # What the report reads of this step's runs (``fmnist.report.load``): the params naming one cell of its
    # tables (the newest run per cell is shown), and the ``mlflow.search_runs`` columns it keeps (globs allowed).
    report_cell: ClassVar[tuple[str, ...]] = ()
    report_columns: ClassVar[tuple[str, ...]] = ()

    def key(self, p, ds) -> str:
        """The cache key: sha256 of the step's name, its params' key values (the fields they mark as key fields:
        ``fmnist.steps.params.key_values``), the data digest and the code version."""
        return cache.cache_key(self.name, key_values(p, ds), ds.digest if ds is not None else "", self.code(p))

    def label(self, p) -> str:
        """The cell's name in a graph (``raw/lda``), unique among this step's cells."""
        return self.name

    def run_name(self, p) -> str:
        return self.name

    def run_params(self, p, ds) -> dict[str, Any]:
        """Params logged on the run (what a reader filters on)."""
        return {}

    def requires(self, p) -> dict[str, tuple["Step", Any]]:
        """The steps this one reads, by input name: {name: (step, its params)}. A graph runs them first, as
        siblings; ``run`` gets their ``Outcome``s."""
        return {}

    def run(self, p, ds, inputs: dict[str, "Outcome"], ctx: RunContext) -> Any:
        raise NotImplementedError

    def log(self, p, ds, result: Any) -> dict[str, str]:
        return {}

    def load(self, info: dict[str, Any], p, ds) -> Any:
        """What a reused run gives (``info``: the run as the probe read it): by default its metrics."""
        return info["metrics"]

    def code(self, p) -> str:
        """The code version the key holds (recorded on the run: ``fmnist rerun`` compares it)."""
        return ""

    def tolerances(self, p) -> dict[str, float]:
        """How far a rerun's metrics may stray ({metric glob: absolute tolerance}; ``predictions_changed``: the
        share of test predictions); unlisted metrics must be identical, timings are never compared."""
        return {}

    def resources(self, p) -> dict[str, float]:
        """An executor's hints for one run of this step: the CPUs (and GPU) it keeps busy, and ``cost``, its
        rough seconds on a 2-core node (declared beside each registration as ``fn.cost``; it only orders
        the ready cells, so a wrong guess costs time, never a result)."""
        return {"num_cpus": 1, "cost": 1.0}

    @contextmanager
    def open(self, p, ds, placement: Placement) -> Iterator[RunContext]:
        with tracking.run(self.run_name(p), step=self.name, parent_run_id=placement.parent,
                          launcher=placement.launcher) as run_id:
            yield RunContext(run_id)


# the columns every scored or viewed run is read by: its data, sample and seed, and all its metrics
DATA_COLUMNS = (param_col(DATASET_PARAM), param_col(SUBSET_PARAM), param_col(SEED_PARAM), tag_col(DATA_DIGEST_TAG),
                metric_col("*"))


def data_params(ds) -> dict[str, Any]:
    """The params every run on data logs: which dataset, and how much of it (``all`` or the sample size)."""
    return {DATASET_PARAM: ds.name, SUBSET_PARAM: ds.subset or "all"}


def scaled(cost: float, n: int | None, full: int) -> float:
    """A cost declared for ``full`` items, for ``n`` of them (None: all)."""
    return cost * (1.0 if n is None else n / full)


def log_predictions(arrays: dict) -> str:
    """Write ``predictions.npz`` onto the active run; its sha256 (for the step's recorded checksums)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / PREDICTIONS
        sha = cache.save_arrays(path, **arrays)
        tracking.log_artifact(path)
    return sha


def verify_artifacts(run: str | dict[str, Any]) -> dict[str, str]:
    """Local paths of a run's recorded artifacts (``run``: its id, or its info as already read), each checked
    against its recorded sha256 (hashed once per process while the file is unchanged)."""
    info = tracking.get_run_info(run) if isinstance(run, str) else run
    recorded = json.loads(info["tags"].get(ARTIFACTS_TAG) or "{}")
    paths = {}
    for name, sha in recorded.items():
        path = tracking.artifact_local_path(info["run_id"], name, artifact_uri=info.get("artifact_uri"))
        got = cache.file_sha256(path)
        if got != sha:
            raise CacheError(f"run {info['run_id']}: artifact {name} fails its checksum (got {got[:12]}, recorded "
                             f"{sha[:12]}); refusing a partial or altered artifact")
        paths[name] = str(path)
    return paths


def load_predictions(run: str | dict[str, Any]) -> dict[str, Any]:
    """A classify or finetune run's ``predictions.npz`` (checksum verified): ``test_index`` (each image's index in
    the dataset's test split), ``label``, ``predicted``, ``scores`` if any, ``test_split`` (that split's digest)
    and ``data_digest``. Runs logged before predictions held dataset indices have no ``test_split`` (""): their
    ``test_index`` is the position in the run's own sample, which only runs on the same data digest share."""
    import numpy as np

    info = tracking.get_run_info(run) if isinstance(run, str) else run
    path = verify_artifacts(info).get(PREDICTIONS)
    if path is None:
        raise FileNotFoundError(f"run {info['run_id']} recorded no {PREDICTIONS} (logged before runs kept their "
                                f"predictions); re-run it with --force")
    with np.load(path) as z:
        out: dict[str, Any] = {k: z[k] for k in z.files}
    out["test_split"] = str(out.get("test_split", ""))
    out["data_digest"] = info["tags"].get(DATA_DIGEST_TAG, "")
    return out


_memo: dict[tuple[str, str], Any] = {}  # (run id, data digest) -> result, for ``memoise`` steps
MEMO_SIZE = 3  # e.g. the three feature sets of a full grid: 1.5 GB on the full data


def _loader(step: Step, info: dict[str, Any], p, ds) -> Callable[[], Any]:
    def load() -> Any:
        if not step.memoise:
            return step.load(info, p, ds)
        k = (info["run_id"], getattr(ds, "digest", ""))
        if k not in _memo:
            _memo[k] = step.load(info, p, ds)
            while len(_memo) > MEMO_SIZE:  # the oldest goes first
                del _memo[next(iter(_memo))]
        return _memo[k]
    return load


def probe(step: Step, p, ds=None, key: str | None = None, announce: bool = True) -> Outcome | None:
    """What ``get_or_run`` would reuse (``p.force``: nothing), opening no run and loading nothing: one read of the
    newest FINISHED run with the key, its artifacts verified; None on a miss."""
    t0 = time.perf_counter()
    if ds is None and step.needs_data:
        ds = p.load()
    key = key or (step.key(p, ds) if step.cacheable else None)
    if not key or getattr(p, "force", False):
        return None
    info = tracking.find_cached_run(key)
    if info is None:
        return None
    try:
        verify_artifacts(info)
    except CacheError as e:
        log.warning("%s: not reusing run %s: %s; recomputing", step.name, info["run_id"], e)
        return None
    if announce:
        announce_hit(step, p, info["run_id"])
    return Outcome(info["run_id"], True, info=info, load=_loader(step, info, p, ds), seconds=time.perf_counter() - t0)


def announce_hit(step: Step, p, run_id: str) -> None:
    log.info("%s: cache hit, reusing FINISHED run %s (same params, data and code%s)", step.run_name(p), run_id,
             "; --force recomputes" if hasattr(p, "force") else "")


def get_or_run(step: Step, p, ds=None, *, placement: Placement = Placement(),
               inputs: dict[str, Outcome] | None = None, tags: dict[str, str] | None = None,
               announce: bool = True) -> Outcome:
    """Reuse the FINISHED run carrying this step's key (artifacts verified), else run and log it where
    ``placement`` says, with ``inputs`` (what the step ``requires``, as the graph got them: ``fmnist.steps.graph``).

    ``p.force`` skips the lookup; ``announce=False`` does not log a hit. The key is tagged last: a run that dies
    before can never be reused.
    """
    t0 = time.perf_counter()
    if tracking.active_run_id() is None:
        tracking.check_store()  # a dead server fails in one line before the data is even read
    if ds is None and step.needs_data:
        ds = p.load()
    key = step.key(p, ds) if step.cacheable else None
    hit = probe(step, p, ds, key, announce) if key else None
    if hit:
        note_reuse(step, hit, placement.launcher)
        hit.seconds = time.perf_counter() - t0
        return hit
    missing = set(step.requires(p)) - set(inputs or {})
    if missing:
        raise RuntimeError(f"{step.name}: inputs {sorted(missing)} not given: run it as a cell of a graph")
    with step.open(p, ds, placement) as ctx:
        tracking.log_params(step.run_params(p, ds))
        tracking.set_tags({**provenance(step, p), **(tags or {})})
        if ds is not None:
            tracking.set_tags({DATA_DIGEST_TAG: ds.digest, DATA_SOURCE_TAG: ds.source})
        result = step.run(p, ds, inputs or {}, ctx)
        shas = step.log(p, ds, result)
        tags = {ARTIFACTS_TAG: json.dumps(shas, sort_keys=True)} if shas else {}
        if key:
            tags[tracking.CACHE_KEY_TAG] = key
        tracking.set_tags(tags)
    return Outcome(ctx.run_id, False, result=result, seconds=time.perf_counter() - t0)


def reused(step: Step, p, ds, run: str | dict[str, Any], cached: bool) -> Outcome:
    """An input the graph already has (``run``: its id, or its info as the probe read it; reused or computed by
    this command): its result loaded on first use."""
    info = tracking.get_run_info(run) if isinstance(run, str) else run
    return Outcome(info["run_id"], cached, info=info, load=_loader(step, info, p, ds))


def provenance(step: Step, p) -> dict[str, str]:
    """What a run records so that it can be run again and checked: its params, code version and environment."""
    device = getattr(p, "device", None)
    return {PARAMS_TAG: json.dumps(as_dict(p), sort_keys=True, default=str), CODE_TAG: step.code(p),
            ENV_TAG: json.dumps(environment(str(resolve_device(device)) if device else None), sort_keys=True)}


def note_reuse(step: Step, hit: Outcome, launcher: str | None) -> None:
    """``mlflow run`` made a run for this command (``launcher``) and the step was cached: end that run FINISHED,
    pointing at the run it reused."""
    if not launcher or launcher == hit.run_id or tracking.active_run_id():
        return
    with tracking.run(f"{step.name} (reused)", step=f"{step.name}-reused", launcher=launcher):
        tracking.set_tags({REUSED_TAG: hit.run_id, CACHE_HIT_TAG: "true"})
        tracking.log_metrics(hit.info["metrics"])
