"""Reading runs back (for reports, resumes, the study's driver) and tagging runs that are not active."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow

from .store import DEFAULT_EXPERIMENT, PARENT_TAG, STEP_TAG, _client, prepare_store


def search_runs(filter_string: str = "", experiment_names: list[str] | None = None):
    """Runs as a pandas DataFrame (params.*, metrics.*, tags.* columns), newest first."""
    prepare_store()
    names = experiment_names or [os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT]
    existing = [n for n in names if mlflow.get_experiment_by_name(n) is not None]
    if not existing:
        import pandas as pd

        return pd.DataFrame()
    return mlflow.search_runs(experiment_names=existing, filter_string=filter_string,
                              order_by=["attributes.start_time DESC"])


def runs_fingerprint(experiment: str, skip_steps: tuple[str, ...] = ()) -> str:
    """sha256 over every live run of an experiment (id, status, end time), runs of ``skip_steps`` left out: it
    changes when a run starts, ends, is deleted or restored, and not otherwise."""
    import hashlib

    prepare_store()
    exp = mlflow.get_experiment_by_name(experiment)
    runs = [] if exp is None else mlflow.search_runs(experiment_ids=[exp.experiment_id], output_format="list")
    rows = sorted(f"{r.info.run_id}:{r.info.status}:{r.info.end_time}" for r in runs
                  if r.data.tags.get(STEP_TAG) not in skip_steps)
    return hashlib.sha256("\n".join([experiment, *rows]).encode()).hexdigest()


def _as_dict(r) -> dict[str, Any]:
    return {
        "run_id": r.info.run_id,
        "status": r.info.status,
        "experiment_id": r.info.experiment_id,
        "params": dict(r.data.params),
        "metrics": dict(r.data.metrics),
        "tags": dict(r.data.tags),
        "artifact_uri": r.info.artifact_uri,
    }


def get_run_info(run_id: str) -> dict[str, Any]:
    return _as_dict(_client().get_run(run_id))


def runs_info(run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``get_run_info`` of many runs (any experiment) in one query, by id."""
    ids = sorted(set(run_ids))
    if not ids:
        return {}
    prepare_store()
    where = "attributes.run_id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=where, output_format="list",
                              max_results=max(len(ids), 1))
    return {r.info.run_id: _as_dict(r) for r in runs}


def child_runs(parent_run_id: str, status: str | None = None) -> list[dict[str, Any]]:
    """The children of a run (any experiment), oldest first, as ``get_run_info`` dicts; ``status``
    (e.g. ``"RUNNING"``) keeps only those in it."""
    prepare_store()
    where = f"tags.`{PARENT_TAG}` = '{parent_run_id}'" + (f" and attributes.status = '{status}'" if status else "")
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=where, output_format="list",
                              order_by=["attributes.start_time ASC"])
    return [_as_dict(r) for r in runs]


@functools.cache
def _download_root() -> str:
    """One temporary folder per process for downloaded artifacts, removed when the process exits."""
    root = tempfile.mkdtemp(prefix="fmnist-artifact-")
    atexit.register(shutil.rmtree, root, True)
    return root


_downloaded: dict[tuple[str, str], Path] = {}  # (run id, artifact) -> its copy in this process's download root


def artifact_local_path(run_id: str, artifact: str, dst: str | os.PathLike | None = None,
                        artifact_uri: str | None = None) -> Path:
    """A local path to a run's artifact: read in place for a local store, else downloaded (to ``dst``, or once per
    process into the download root). ``artifact_uri``: the run's, when the caller has read the run already."""
    uri = artifact_uri or _client().get_run(run_id).info.artifact_uri
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        p = Path(unquote(parsed.path)) / artifact
        if p.exists():
            return p
    if dst is None and (run_id, artifact) in _downloaded and _downloaded[(run_id, artifact)].exists():
        return _downloaded[(run_id, artifact)]
    got = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact,
                                                   dst_path=str(dst or tempfile.mkdtemp(dir=_download_root()))))
    if dst is None:
        _downloaded[(run_id, artifact)] = got
    return got


def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of a metric, in step order."""
    return sorted((m.step, m.value) for m in _client().get_metric_history(run_id, key))


def set_run_tags(run_id: str, tags: dict[str, Any]) -> None:
    """Tags on a run that is not the active one (e.g. the run ``mlflow run`` created for a resume), values as
    strings, in one ``log_batch`` request (MLflow splits it past 100 tags) rather than one per tag."""
    from mlflow.entities import RunTag

    _client().log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def run_exists(run_id: str) -> bool:
    try:
        _client().get_run(run_id)
    except Exception:  # MlflowException (not found) or a malformed id
        return False
    return True


def runs_table_url(ui: str, experiment: str | None = None, create: bool = False) -> str:
    """The MLflow UI's link to an experiment's runs table (the UI opens an experiment on its GenAI overview,
    empty for this project). ``create``: make the experiment first; else, while it does not exist, the list of
    experiments."""
    from .store import create_experiment_once

    name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    if create:
        create_experiment_once(name)
    exp = _client().get_experiment_by_name(name)
    return f"{ui.rstrip('/')}/#/experiments/{exp.experiment_id}/runs" if exp else f"{ui.rstrip('/')}/#/experiments"
