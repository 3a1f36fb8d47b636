"""A run's resumable training state in its own artifacts, under ``checkpoints/``: uploaded as training goes (the
local checkpoint folder is only a cache), downloaded where a resume finds no local copy.

On a team server MLflow's artifact proxy carries the files; nothing else is needed. They are state, not results:
the step records no checksum for them (``fmnist.artifacts_sha256`` lists what a reuse verifies), so a cache hit
neither reads nor downloads them, and ``fmnist rerun`` does not compare them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import mlflow

from .store import _client

CHECKPOINTS_DIR = "checkpoints"


def log_checkpoint_files(run_id: str, paths: list[str | os.PathLike], subdir: str) -> None:
    """Upload ``paths`` to ``checkpoints/<subdir>/`` of run ``run_id`` (active here or not), in that order,
    each replacing the file of the same name there."""
    client = _client()
    for p in paths:
        client.log_artifact(run_id, str(p), f"{CHECKPOINTS_DIR}/{subdir}")


def checkpoint_files(run_id: str) -> list[str]:
    """The artifact paths under ``checkpoints/`` of a run (``checkpoints/last/last.pt`` ...), sorted."""
    client = _client()
    out, todo = [], [CHECKPOINTS_DIR]
    while todo:
        for f in client.list_artifacts(run_id, todo.pop()):
            (todo if f.is_dir else out).append(f.path)
    return sorted(out)


def download_checkpoint_file(run_id: str, path: str, dst: str | os.PathLike) -> Path | None:
    """``checkpoints/<path>`` of run ``run_id`` copied into the folder ``dst`` (under its own name); None when
    the run has no such artifact. The copy lands whole or not at all (temp file + rename)."""
    parent, name = f"{CHECKPOINTS_DIR}/{path}".rsplit("/", 1)
    if name not in {Path(f.path).name for f in _client().list_artifacts(run_id, parent) if not f.is_dir}:
        return None
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=dst, prefix=".download-")
    try:
        got = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{parent}/{name}", dst_path=tmp)
        os.replace(got, dst / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst / name
