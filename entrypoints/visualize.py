"""MLflow entry point ``visualize``: parses params, calls the library (see ``fmnist.cli.visualize``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs without `pip install` too

from fmnist.cli import run_cli  # noqa: E402
from fmnist.cli.visualize import visualize  # noqa: E402

if __name__ == "__main__":
    run_cli(visualize, prog_name="visualize")
