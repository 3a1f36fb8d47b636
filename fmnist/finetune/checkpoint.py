"""Training checkpoints, written atomically (temp file + rename) after every epoch into a run's folder.

``last.pt``: everything but the best-validation weights (model, optimizer, scheduler, RNG states, history,
``best_epoch``), replaced every epoch; ``best.pt``: the best-validation weights, rewritten only when they
change; ``state.json``: the epoch, readable without torch. ``last.pt`` is written before ``best.pt``, so a
process killed between the two leaves a consistent pair: the epoch that just improved is ``last.pt``'s own
model. The folder is a local cache: the finetune step also uploads these files to the run's artifacts.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CacheError

CHECKPOINT_FILE = "last.pt"
BEST_FILE = "best.pt"  # {"epoch", "val_accuracy", "state"}: the best-validation weights so far
STATE_FILE = "state.json"  # epoch and key of the checkpoint, readable without torch


def default_checkpoint_root() -> Path:
    """``$FMNIST_CHECKPOINT_DIR``, else ``~/.cache/fmnist/checkpoints`` (independent of the working directory)."""
    env = os.environ.get("FMNIST_CHECKPOINT_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fmnist" / "checkpoints"


def checkpoint_dir(run_id: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root).expanduser() if root else default_checkpoint_root() / run_id


def rng_state() -> dict[str, Any]:
    import torch

    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # a reader sees the old file or the new one, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(folder: str | os.PathLike, state: dict[str, Any], best: dict[str, Any] | None = None) -> Path:
    """Write ``state`` (must hold ``epoch`` and ``key``) to ``folder/last.pt`` and a small ``state.json``, then
    ``best`` ({"epoch", "val_accuracy", "state"}: the best weights, when they changed) to ``best.pt``."""
    import torch

    folder = Path(folder)
    path = folder / CHECKPOINT_FILE
    _atomic(path, lambda f: torch.save(state, f))
    meta = {"epoch": int(state["epoch"]), "key": state.get("key", ""), "epochs": state.get("epochs")}
    _atomic(folder / STATE_FILE, lambda f: f.write(json.dumps(meta).encode()))
    if best is not None:
        _atomic(folder / BEST_FILE, lambda f: torch.save(best, f))
    return path


def _load(path: Path) -> dict[str, Any]:
    import torch

    try:
        # Our own file: it holds numpy/python RNG states, which the weights-only loader refuses.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CacheError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from None


def load_checkpoint(folder: str | os.PathLike) -> dict[str, Any]:
    """``last.pt`` with ``best_state`` (the best-validation weights: its own model when its epoch was the best,
    else ``best.pt``'s) and ``best_file_epoch`` (the epoch ``best.pt`` holds, 0 without one)."""
    folder = Path(folder)
    path = folder / CHECKPOINT_FILE
    if not path.is_file():
        raise CacheError(f"no checkpoint at {path}")
    ck = _load(path)
    best = None
    if (folder / BEST_FILE).is_file():
        try:
            best = _load(folder / BEST_FILE)
        except CacheError:
            if "best_state" not in ck and ck["best_epoch"] != ck["epoch"]:
                raise
    ck["best_file_epoch"] = int(best["epoch"]) if best else 0
    if "best_state" in ck:  # written before the best weights had a file of their own
        return ck
    if best is not None and int(best["epoch"]) == ck["best_epoch"]:
        ck["best_state"] = best["state"]
    elif ck["best_epoch"] == ck["epoch"]:  # its own weights (a kill came before best.pt was written)
        # with an average of the weights, the weights scored and kept are the average's
        ema = ck.get("ema")
        ck["best_state"] = ck["model"] if ema is None else {k.removeprefix("module."): v for k, v in ema.items()
                                                            if k.startswith("module.")}
    else:
        raise CacheError(f"{folder}: the checkpoint needs the best weights of epoch {ck['best_epoch']}, but "
                         f"{BEST_FILE} holds {'none' if best is None else 'epoch ' + str(best['epoch'])}")
    return ck


def checkpoint_epoch(folder: str | os.PathLike) -> int | None:
    """The last completed epoch saved in ``folder`` (from state.json), or None without a checkpoint."""
    folder = Path(folder)
    try:
        if not (folder / CHECKPOINT_FILE).is_file():
            return None
        return int(json.loads((folder / STATE_FILE).read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return None
