"""MLflow entry point ``main``: the whole study (see ``fmnist.cli.study``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs without `pip install` too

from fmnist.cli import run_cli  # noqa: E402
from fmnist.cli.study import study  # noqa: E402

if __name__ == "__main__":
    run_cli(study, prog_name="study")
