"""Where the test suite's time goes: run it (or read a finished run) and print the figures.

    python bench/suite.py                 # the whole suite (what `make test` runs), then the summary
    python bench/suite.py -- -m "not slow"  # any pytest arguments after --
    python bench/suite.py --read          # only print the summary of the last run (test-artifacts/)

Runs pytest with ``--durations=0`` and a JUnit XML report (test-artifacts/junit.xml); tests/timing.py, the
suite's own plugin, writes test-artifacts/timing.json. Prints the total wall time, the 25 slowest tests, the
seconds per test file, per expensive fixture and per kind of child process, and the machine (the ``lscpu``
model line and the cores). Take figures with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
sys.path.insert(0, str(ROOT / "tests"))

from _data import machine  # noqa: E402  (bench/ is sys.path[0])
from timing import format_summary  # noqa: E402


def junit_counts(path: Path) -> str:
    suites = ET.parse(path).getroot()
    suite = suites if suites.tag == "testsuite" else suites[0]
    n, f, e, s = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    return f"{n - f - e - s} passed, {f} failed, {e} errors, {s} skipped (junit: {path.relative_to(ROOT)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--read", action="store_true", help="print the last run's summary; run nothing")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    a = ap.parse_args()
    rc, wall = 0, None
    junit = ARTIFACTS / "junit.xml"
    if not a.read:
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, "-m", "pytest", "--durations=0", f"--junitxml={junit}",
                              *a.pytest_args], cwd=ROOT)
        wall = time.perf_counter() - t0
    s = json.loads((ARTIFACTS / "timing.json").read_text())
    print(f"\n== the suite on {machine()}")
    if wall is not None:
        print(f"pytest process wall time {wall:.1f} s (exit {rc})")
    if junit.exists():
        print(junit_counts(junit))
    if a.read:  # a run just made printed it already (tests/timing.py, at the end of pytest's output)
        print("\n".join(format_summary(s)))
    return rc


if __name__ == "__main__":
    sys.exit(main())
