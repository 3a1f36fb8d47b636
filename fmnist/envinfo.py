"""What a run was computed with: library versions, the device and the CPU (recorded on every step's run)."""

from __future__ import annotations

import os
import platform
import subprocess
from contextlib import contextmanager
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = ("numpy", "scikit-learn", "torch", "kymatio", "mlflow")


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The ``lscpu`` model line (``platform.processor()`` where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
                platform.processor() or "unknown")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def environment(device: str | None = None) -> dict[str, Any]:
    """{python, each package's version, device, device_name, cpu, cpu_count, threads, blas_threads};
    ``device``: what the step resolved (None: steps that use no torch device)."""
    env: dict[str, Any] = {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}}
    env["cpu"], env["cpu_count"] = cpu_model(), os.cpu_count()
    env["device"], env["device_name"] = device or "cpu", _device_name(device)
    env.update(threads())
    return env


def threads() -> dict[str, int]:
    """The thread counts in effect: a BLAS sum or a LBFGS fit splits its work by them, so a result computed
    with 2 threads differs in its last bits from one computed with 1 (a Ray worker caps them to its CPUs)."""
    import torch
    from threadpoolctl import threadpool_info

    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return {"threads": torch.get_num_threads(), "blas_threads": max(blas, default=1)}


@contextmanager
def pinned_threads(recorded: dict[str, Any]):
    """Run with the thread counts a run recorded (where it recorded them), then restore them."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    if recorded.get("threads"):
        torch.set_num_threads(int(recorded["threads"]))
    try:
        if recorded.get("blas_threads"):
            with threadpool_limits(limits=int(recorded["blas_threads"]), user_api="blas"):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(before)


def _device_name(device: str | None) -> str:
    if not device or not str(device).startswith("cuda"):
        return cpu_model()
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def drift(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One ``key: recorded -> now`` per entry that differs."""
    return [f"{k}: {recorded.get(k)} -> {now.get(k)}" for k in sorted(set(recorded) | set(now))
            if str(recorded.get(k)) != str(now.get(k))]
