"""MLflow entry point ``finetune``: parses params, calls the library (see ``fmnist.cli.finetune``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs without `pip install` too

from fmnist.cli import run_cli  # noqa: E402
from fmnist.cli.finetune import finetune  # noqa: E402

if __name__ == "__main__":
    run_cli(finetune, prog_name="finetune")
