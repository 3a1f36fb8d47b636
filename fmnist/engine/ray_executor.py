"""Run the graph as Ray core tasks: one task per cell, resources declared, lost workers retried.

``ray.init()`` starts a local instance with every core when no cluster is named; ``address`` (or
``$RAY_ADDRESS``) joins an existing one. The package reaches the workers through Ray's runtime
environment (``py_modules``), so a cluster needs no install of it; its settings travel as environment
variables there, never as task arguments.
"""

from __future__ import annotations

import math
import os
import signal
import socket
from pathlib import Path
from typing import Callable

from ..errors import FmnistError
from .graph import Cell, Progress, Record
from .schedule import Plan

MAX_RETRIES = 2  # a cell whose worker process dies (SIGKILL, OOM, lost node) is tried again this often
# What a worker needs of the driver's environment: the store, its credentials, the data, offline mode.
FORWARDED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
                 "MLFLOW_TRACKING_CLIENT_CERT_PATH", "FMNIST_DATA_DIR", "FMNIST_OFFLINE",
                 "FMNIST_CHECKPOINT_DIR", "TORCH_HOME")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise FmnistError("executor=ray needs Ray: pip install -e '.[ray]' (or `make setup`, which installs "
                          "the ray extra)") from None
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail in one line when a named cluster does not answer (ray.init would retry for minutes)."""
    if not address or address == "auto" or address.startswith("local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as e:
        raise FmnistError(f"Ray cluster at {address} does not answer ({type(e).__name__}: {e}); start it "
                          f"(ray start --head ...) or leave --ray-address empty for a local instance") from None


class RayExecutor:
    name = "ray"
    in_process = False  # cells run in worker processes, perhaps on other machines

    def __init__(self, address: str = "", progress: bool = True):
        self.address = address or os.environ.get("RAY_ADDRESS", "")
        self.progress = progress
        self.ray = _import_ray()
        check_address(self.address)

    def start(self, env: dict[str, str]) -> None:
        """Join the cluster (or start a local instance); every worker gets the package, the driver's
        ``FORWARDED_ENV`` and ``env``."""
        ray = self.ray
        import fmnist

        env = {**{k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}, **env}
        runtime_env = {"py_modules": [str(Path(fmnist.__file__).parent)], "env_vars": env,
                       "excludes": ["__pycache__", "*.pyc"]}
        kw = dict(runtime_env=runtime_env, log_to_driver=False, include_dashboard=False)
        ours = signal.getsignal(signal.SIGTERM)
        if self.address:
            ray.init(address=self.address, **kw)
        else:
            ray.init(num_cpus=os.cpu_count(), **kw)
        if callable(ours):  # ray.init installs a SIGTERM handler that aborts; the CLI's ends runs KILLED first
            signal.signal(signal.SIGTERM, ours)
        self.nodes = [n for n in ray.nodes() if n.get("Alive")]

    @property
    def multi_node(self) -> bool:
        return len(self.nodes) > 1

    @property
    def capacity(self) -> float:
        """CPUs of the whole cluster (what the driver admits cells against)."""
        return sum(n["Resources"].get("CPU", 0) for n in self.nodes) or 1

    def _options(self, cell: Cell) -> dict:
        cpus = max((n["Resources"].get("CPU", 0) for n in self.nodes), default=1) or 1  # the widest node
        gpus = any(n["Resources"].get("GPU", 0) for n in self.nodes)
        return {"num_cpus": min(cell.num_cpus, cpus) if math.isfinite(cell.num_cpus) else cpus,
                "num_gpus": 1 if cell.wants_gpu and gpus else 0, "max_retries": MAX_RETRIES,
                "retry_exceptions": False, "name": cell.id}

    def run(self, cells: list[Cell], work: Callable[[Cell, dict[str, Record]], Record],
            skip: Callable[[Cell, str], Record], desc: str = "cells") -> list[Record]:
        """Start ready cells while their CPUs are free (longest chain first); gather records as they arrive.

        The driver does its own CPU accounting rather than queueing every ready cell in Ray: Ray's queue left
        a core idle with one-core cells runnable, and started the two-core cells, ready at t=0, last.
        """
        ray = self.ray
        remote = ray.remote(_run_in_worker)
        opts = {c.id: self._options(c) for c in cells}
        plan = Plan(cells, self.capacity, {c: o["num_cpus"] for c, o in opts.items()})
        inflight: dict = {}

        def start(cell: Cell) -> None:
            ref = remote.options(**opts[cell.id]).remote(work, cell, plan.upstream(cell), plan.need[cell.id])
            inflight[ref] = cell

        def wait() -> list[tuple[Cell, Record]]:
            finished, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            cells_done = [(ref, inflight.pop(ref)) for ref in finished]
            return [(cell, self._record(ref, cell, skip)) for ref, cell in cells_done]

        bar = Progress(len(cells), self.progress, desc=desc)
        try:
            return plan.drive(start, wait, skip, bar)
        except BaseException:
            for ref in inflight:  # Ctrl-C / SIGTERM: stop every running cell now
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()

    def _record(self, ref, cell: Cell, skip) -> Record:
        try:
            return self.ray.get(ref)
        except Exception as e:  # the worker died more often than MAX_RETRIES, or the task could not run
            rec = skip(cell, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
            rec.status = "failed"
            return rec

    def close(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()  # a local instance goes with it; a cluster only loses this driver


def _run_in_worker(work: Callable[[Cell, dict[str, Record]], Record], cell: Cell, upstream: dict[str, Record],
                   num_cpus: float) -> Record:
    """In the worker: cap threads to the CPU share, say where it runs, then do the cell."""
    import ray

    n = max(int(num_cpus), 1)
    os.environ["FMNIST_NODE_ID"] = ray.get_runtime_context().get_node_id()
    os.environ["FMNIST_EXECUTOR"] = "ray"
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n):
        rec = work(cell, upstream)
    rec.node = os.environ["FMNIST_NODE_ID"]
    return rec
