"""Cache keys and verified artifact files: the key holds every parameter, the data digest and the code version."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from . import __version__
from .errors import CacheError


def code_version(*modules: ModuleType) -> str:
    """Package version plus a hash of the given modules' source: editing them invalidates the cache."""
    h = hashlib.sha256()
    for m in sorted(modules, key=lambda m: m.__name__):
        h.update(m.__name__.encode())
        h.update(inspect.getsource(m).encode())
    return f"{__version__}+{h.hexdigest()[:12]}"


@lru_cache(maxsize=None)
def step_code_version(*module_names: str) -> str:
    """``code_version`` of the data layer (every step reads through it) plus the named modules; once per process
    (a grid's cells share it: the modules' source does not change under a running process)."""
    import importlib

    return code_version(*(importlib.import_module(m) for m in ("fmnist.data", *module_names)))


def cache_key(step: str, params: dict[str, Any], data_digest: str, code: str) -> str:
    """sha256 of a canonical JSON of everything that determines the step's result."""
    blob = json.dumps({"step": step, "params": params, "data": data_digest, "code": code},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_sha_by_stat: dict[tuple, str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, hashed once per process while it stays unchanged (same inode, size and mtime): a cache
    probe and the load after it read a 1 GB feature file once, not twice."""
    st = os.stat(path)
    stamp = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if stamp not in _sha_by_stat:
        _sha_by_stat[stamp] = file_digest(path, "sha256")
    return _sha_by_stat[stamp]


def save_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> str:
    """Write an .npz atomically (temp file + rename) and return its sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file_sha256(path)


def load_arrays(path: str | os.PathLike, sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read an .npz, refusing it if its sha256 differs from the one recorded when it was written."""
    path = Path(path)
    if sha256:
        got = file_sha256(path)
        if got != sha256:
            raise CacheError(f"{path}: checksum mismatch (got {got[:12]}, recorded {sha256[:12]}); refusing a partial or altered artifact")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:
        raise CacheError(f"{path}: unreadable feature artifact ({type(e).__name__}: {e})") from None
