"""Liveness checks the tracking module and the server share: processes and health endpoints."""

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from fmnist.liveness import health_problem, pid_alive
from fmnist.server import free_port


@pytest.mark.slow
def test_pid_alive_live_zombie_and_gone():
    assert pid_alive(os.getpid())
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not pid_alive(p.pid)
    p.wait()
    assert not pid_alive(p.pid)


def test_pid_alive_without_a_process(monkeypatch):
    import psutil

    assert not pid_alive(-1) and not pid_alive(0)  # no process has these ids
    pid = max(psutil.pids()) + 100000  # beyond any pid in use
    assert not pid_alive(pid)

    def denied(pid):
        raise psutil.AccessDenied(pid)

    monkeypatch.setattr(psutil, "Process", denied)  # someone else's process, not ours to inspect: it exists
    assert pid_alive(1)


def test_health_problem_ok_error_and_down():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{srv.server_port}"
        assert health_problem(uri, timeout=5) is None
        assert health_problem(uri + "/", timeout=5) is None
        assert health_problem(uri + "/nope", timeout=5) == "Service Unavailable"
    finally:
        srv.shutdown()
        srv.server_close()
    assert health_problem(f"http://127.0.0.1:{free_port()}", timeout=2)  # nobody listens: a reason
