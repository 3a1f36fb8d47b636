"""Liveness checks shared by the tracking module and the team server (which does not import mlflow):
is a process alive, does a tracking server answer its health check, does it accept these credentials."""

from __future__ import annotations

import base64
import os
import ssl
import urllib.error
import urllib.request

import psutil


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists on this host and is not a zombie."""
    try:
        # A zombie (exited, not yet reaped by its parent) is dead for our purposes.
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # ZombieProcess included
        return False
    except psutil.AccessDenied:  # someone else's process we may not inspect: it exists
        return True
    except ValueError:  # a negative pid names no process
        return False


def _tls() -> ssl.SSLContext | None:
    """TLS as MLflow's own client does it: the CA in MLFLOW_TRACKING_SERVER_CERT_PATH (e.g. a reverse proxy's own
    CA), or no verification with MLFLOW_TRACKING_INSECURE_TLS=true; else the system's CAs."""
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        return ctx
    cafile = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    return ssl.create_default_context(cafile=cafile) if cafile else None


def health_problem(uri: str, timeout: float) -> str | None:
    """None when ``<uri>/health`` answers HTTP 200, else why not (a one-line reason)."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout, context=_tls()) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))


def http_status(url: str, auth: tuple[str, str] | None, timeout: float, cafile: str | None = None) -> int | None:
    """The HTTP status of a GET (with basic-auth ``auth`` when given; TLS trusting ``cafile`` or as ``_tls``);
    None when nothing answers."""
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        ctx = ssl.create_default_context(cafile=cafile) if cafile else _tls()
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None
