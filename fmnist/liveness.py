"""Liveness checks shared by the tracking module and the team server (which does not import mlflow):
is a process alive, does a tracking server answer its health check."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    # A zombie (exited, not yet reaped by its parent) is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): kill(0) is all we know
        return True


def health_problem(uri: str, timeout: float) -> str | None:
    """None when ``<uri>/health`` answers HTTP 200, else why not (a one-line reason)."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))
