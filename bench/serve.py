"""Serving speed per feature: images/s through the HTTP scoring server at batch 1 and 256, p50/p99 latency
at batch 1, and the same batches through ``mlflow.pyfunc.load_model(...).predict`` in this process.

    python bench/serve.py [--data-dir ...] [--features raw,scatnet,resnet18] [--model logreg]

Each feature gets a classify run (on ``--train`` training images: speed depends on the model's size, not its
accuracy), registered as the study registers it, then served by ``fmnist serve`` on a free loopback port.
Take it with the machine otherwise idle; the server and this process share the cores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import click
import numpy as np

from _data import bench_data_dir, data_dir_option, machine  # bench/ is sys.path[0] when run as python bench/x.py

FMNIST = str(Path(sys.executable).parent / "fmnist")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes) -> float:
    t = time.perf_counter()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as f:
        f.read()
    return time.perf_counter() - t


def _serve(spec: str, env: dict, cwd: Path):
    port = _port()
    proc = subprocess.Popen([FMNIST, "serve", "--model", spec, "--port", str(port)], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
            return proc, f"http://127.0.0.1:{port}/invocations"
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise SystemExit(f"fmnist serve --model {spec} did not come up")
            time.sleep(0.5)


@click.command()
@data_dir_option
@click.option("--features", default="raw,scatnet,resnet18", show_default=True)
@click.option("--model", "model_name", default="logreg", show_default=True)
@click.option("--train", default=5000, show_default=True, help="Training images per classify run.")
@click.option("--requests", "n_requests", default=200, show_default=True, help="Batch-1 requests per feature.")
@click.option("--big", default=256, show_default=True, help="The large batch.")
def main(data_dir, features, model_name, train, n_requests, big):
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    root = Path(tempfile.mkdtemp(prefix="fmnist-bench-serve-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    import mlflow

    from fmnist.data import load_dataset
    from fmnist.commands import classify
    from fmnist.steps.register import register_best

    ds = load_dataset("fashion-mnist", data_dir=str(bench_data_dir(data_dir)), subset=train)
    x = ds.x_test
    one, many = json.dumps({"inputs": x[:1].tolist()}).encode(), json.dumps({"inputs": x[:big].tolist()}).encode()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    print(f"{machine()}; store {root}; {model_name} on {train} training images; batch-1 x {n_requests}, "
          f"batch-{big} x 10")
    print(f"{'feature':9} {'http b1 img/s':>13} {'p50 ms':>7} {'p99 ms':>7} {'inproc b1 img/s':>15} "
          f"{'http b' + str(big) + ' img/s':>15} {'inproc b' + str(big) + ' img/s':>17} {'http/inproc b1':>14} "
          f"{'b' + str(big):>6}")
    for feature in features.split(","):
        extra = {"weights": "none"} if feature == "resnet18" else {}
        (cell,) = classify(feature=feature, model=model_name, ds=ds, tune=False, progress=False, **extra)
        (reg,) = register_best([cell.run_id])
        model = mlflow.pyfunc.load_model(f"models:/{reg.name}@{reg.alias}")
        model.predict(x[:big])  # warm: lazy imports, the network built once
        inproc1 = []
        for i in range(n_requests):
            t = time.perf_counter()
            model.predict(x[i:i + 1])
            inproc1.append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(10):
            model.predict(x[:big])
        inproc_big = 10 * big / (time.perf_counter() - t)
        proc, url = _serve(f"{reg.name}@{reg.alias}", env, root)
        try:
            _post(url, many)  # warm
            lat = np.array([_post(url, one) for _ in range(n_requests)])
            t = time.perf_counter()
            for _ in range(10):
                _post(url, many)
            http_big = 10 * big / (time.perf_counter() - t)
        finally:
            proc.terminate()
            proc.wait(30)
        http1, in1 = 1 / lat.mean(), 1 / np.mean(inproc1)
        print(f"{feature:9} {http1:13.1f} {1000 * np.percentile(lat, 50):7.1f} {1000 * np.percentile(lat, 99):7.1f} "
              f"{in1:15.1f} {http_big:15.1f} {inproc_big:17.1f} {in1 / http1:13.2f}x {inproc_big / http_big:5.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
