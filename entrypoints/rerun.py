"""MLflow entry point ``rerun``: parses params, calls the library (see ``fmnist.cli.rerun``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs without `pip install` too

from fmnist.cli import run_cli  # noqa: E402
from fmnist.cli.rerun import rerun  # noqa: E402

if __name__ == "__main__":
    run_cli(rerun, prog_name="rerun")
