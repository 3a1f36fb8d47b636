"""MLflow entry point ``shift``: parses params, calls the library (see ``fmnist.cli.shift``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs without `pip install` too

from fmnist.cli import run_cli  # noqa: E402
from fmnist.cli.shift import shift  # noqa: E402

if __name__ == "__main__":
    run_cli(shift, prog_name="shift")
