"""Where the suite's time goes: a pytest plugin that ends every run with a short summary.

It prints the total wall time, the slowest tests (setup + call + teardown), the set-up time of each fixture
that took over a second, and the wall time spent in child processes by kind (``fmnist`` CLI, ``mlflow run``,
the team server's script, Ray, ``mlflow ui``), overlapping processes counted once. The same
figures go to ``test-artifacts/timing.json`` (``bench/suite.py`` reads them).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

OUT = Path(__file__).resolve().parent.parent / "test-artifacts" / "timing.json"
SLOWEST = 25

_t0 = time.perf_counter()
_tests: dict[str, float] = defaultdict(float)
_fixtures: dict[str, list[float]] = defaultdict(list)
_procs: dict[str, list[tuple[float, float]]] = defaultdict(list)
_log: list[tuple[float, str, str]] = []  # (seconds, test, command) of every child process
_current = [""]
_unmarked: set[str] = set()  # tests not marked slow that started a child process
_slow: set[str] = set()
# What library code itself runs in passing (platform and git look-ups): not a reason to mark a test slow.
INCIDENTAL = ("git", "lscpu", "uname", "ldconfig")


def process_kind(args) -> str:
    """What a child process is, from its argv."""
    argv = [str(a) for a in (args if isinstance(args, (list, tuple)) else [args])]
    name = Path(argv[0]).name if argv else ""
    sub = argv[1] if len(argv) > 1 else ""
    if name == "mlflow":
        return "mlflow run" if sub == "run" else f"mlflow {sub}"
    if name == "fmnist":
        return "fmnist CLI"
    if name.endswith(".sh"):
        return name
    if name == "ray":
        return "ray start"
    return name or "?"


def _install_process_clock() -> None:
    """Time each child from its start to the moment its exit status is collected."""
    init, handle = subprocess.Popen.__init__, subprocess.Popen._handle_exitstatus

    def timed_init(self, args, *a, **k):
        self._fmnist_timing = (process_kind(args), time.perf_counter(), _current[0], _short(args))
        init(self, args, *a, **k)

    def timed_exit(self, *a, **k):
        out = handle(self, *a, **k)
        kind, start, test, cmd = getattr(self, "_fmnist_timing", (None, 0.0, "", ""))
        if kind is not None:
            _procs[kind].append((start, time.perf_counter()))
            _log.append((time.perf_counter() - start, test, cmd))
            if test and test not in _slow and kind not in INCIDENTAL:
                _unmarked.add(test)
            self._fmnist_timing = (None, 0.0, "", "")
        return out

    subprocess.Popen.__init__, subprocess.Popen._handle_exitstatus = timed_init, timed_exit


def _short(args) -> str:
    argv = [str(a) for a in (args if isinstance(args, (list, tuple)) else [args])]
    return " ".join([Path(argv[0]).name, *argv[1:6]])[:160] if argv else ""


def _union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def pytest_configure(config) -> None:
    _install_process_clock()


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    t = time.perf_counter()
    yield
    _fixtures[f"{fixturedef.argname} ({fixturedef.scope})"].append(time.perf_counter() - t)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current[0] = item.nodeid
    if item.get_closest_marker("slow"):
        _slow.add(item.nodeid)
    yield
    _current[0] = ""


def pytest_runtest_logreport(report) -> None:
    _tests[report.nodeid] += report.duration


def _modules() -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for node, sec in _tests.items():
        out[node.split("::")[0]] += sec
    return out


def summary() -> dict:
    return {"wall_seconds": time.perf_counter() - _t0, "tests": len(_tests),
            "slowest": sorted(_tests.items(), key=lambda kv: -kv[1])[:SLOWEST],
            "modules": dict(sorted(_modules().items(), key=lambda kv: -kv[1])),
            "fixtures": {k: [len(v), sum(v)] for k, v in sorted(_fixtures.items(), key=lambda kv: -sum(kv[1]))
                         if sum(v) >= 1.0},
            "processes": {k: [len(v), _union(v)] for k, v in sorted(_procs.items(), key=lambda kv: -_union(kv[1]))},
            "process_log": sorted(_log, reverse=True), "unmarked": sorted(_unmarked)}


def format_summary(s: dict) -> list[str]:
    lines = [f"total wall time {s['wall_seconds']:.1f} s over {s['tests']} tests; "
             f"slowest {len(s['slowest'])} (setup + call + teardown):"]
    lines += [f"  {sec:7.1f} s  {node}" for node, sec in s["slowest"]]
    lines.append("per test file:")
    lines += [f"  {sec:7.1f} s  {name}" for name, sec in s["modules"].items()]
    lines.append("fixture set-up (count, seconds), those over 1 s:")
    lines += [f"  {sec:7.1f} s  {n:4d}x  {name}" for name, (n, sec) in s["fixtures"].items()]
    lines.append("child processes by kind (count, wall seconds with overlaps counted once):")
    lines += [f"  {sec:7.1f} s  {n:4d}x  {kind}" for kind, (n, sec) in s["processes"].items()]
    if s.get("unmarked"):  # `make test-fast` is for what needs no child process: mark these slow
        lines.append(f"not marked slow, yet started a child process ({len(s['unmarked'])}):")
        lines += [f"  {node}" for node in s["unmarked"]]
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _tests or hasattr(config, "workerinput"):
        return
    s = summary()
    terminalreporter.section("where the time went")
    for line in format_summary(s):
        terminalreporter.write_line(line)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(s, indent=1))
