"""MLflow entry point ``scatnet-search``: parses params, calls the library (see ``fmnist.cli.search``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs without `pip install` too

from fmnist.cli import run_cli  # noqa: E402
from fmnist.cli.search import scatnet_search  # noqa: E402

if __name__ == "__main__":
    run_cli(scatnet_search, prog_name="scatnet_search")
