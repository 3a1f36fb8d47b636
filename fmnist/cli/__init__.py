"""The ``fmnist`` command (click). Entry points under ``entrypoints/`` call these same commands."""

from __future__ import annotations

import logging
import os
import signal
import sys

import click

from .. import signals
from ..errors import FmnistError


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners and notebooks swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging() -> None:
    log = logging.getLogger("fmnist")
    if not log.handlers:  # only our logger: kymatio and friends log chatter on the root logger
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("[fmnist] %(message)s"))
        log.addHandler(h)
        log.setLevel(logging.INFO)
        log.propagate = False


def _fail(message: str, code: int, status: str = "FAILED") -> None:
    message = " ".join(message.split())
    click.echo(f"fmnist: error: {message}", err=True)
    from .. import tracking

    run_id = tracking.launcher_run_id()
    if run_id:  # `mlflow run` created the run but our code may never have opened it (e.g. a bad -P value)
        try:
            tracking.end_if_running(run_id, status, message)
        except Exception as e:  # the store itself may be what failed
            click.echo(f"fmnist: could not mark run {run_id} {status}: {type(e).__name__}", err=True)
    sys.exit(code)


def run_cli(command: click.Command, args: list[str] | None = None, prog_name: str | None = None) -> None:
    """Run a click command; every error is one line on stderr and a non-zero exit."""
    setup_logging()
    if not sys.stderr.isatty():  # a log file gets no redrawn bar per artifact download
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    signal.signal(signal.SIGTERM, signals.on_sigterm)
    try:
        rv = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except (click.Abort, KeyboardInterrupt):  # click turns KeyboardInterrupt (and our Terminated) into Abort
        if signals.signalled:
            _fail("terminated (SIGTERM); any run it had open ended KILLED", 143, "KILLED")
        _fail("interrupted; any run it had open ended KILLED", 130, "KILLED")
    except click.ClickException as e:
        _fail(e.format_message(), e.exit_code or 2)
    except FmnistError as e:
        _fail(str(e), 1)
    except Exception as e:  # anything unexpected (disk full, store errors): still one line
        if os.environ.get("FMNIST_DEBUG"):
            raise
        from .. import tracking

        refused = tracking.refusal(e)
        if refused:
            _fail(refused, 1)
        msg = str(e).strip().splitlines()
        _fail(f"{type(e).__name__}: {msg[0] if msg else ''} (set FMNIST_DEBUG=1 for the traceback)", 1)
    if signals.signalled:  # it arrived after the last safe point: the runs finished, but the caller asked to stop
        _fail("terminated (SIGTERM) after its last step had finished", 143, "KILLED")
    sys.exit(rv if isinstance(rv, int) else 0)


@click.group()
@click.version_option(package_name="fmnist")
def cli() -> None:
    """Feature extraction and transfer learning on Fashion-MNIST, tracked with MLflow."""


from .classify import classify  # noqa: E402
from .extract import extract  # noqa: E402
from .finetune import finetune  # noqa: E402
from .report import report  # noqa: E402
from .rerun import rerun  # noqa: E402
from .search import scatnet_search  # noqa: E402
from .serve import predict, register, serve  # noqa: E402
from .shift import shift  # noqa: E402
from .study import study  # noqa: E402
from .ui import ui  # noqa: E402
from .visualize import visualize  # noqa: E402

cli.add_command(classify)
cli.add_command(extract)
cli.add_command(finetune)
cli.add_command(report)
cli.add_command(rerun)
cli.add_command(predict)
cli.add_command(register)
cli.add_command(scatnet_search)
cli.add_command(serve)
cli.add_command(shift)
cli.add_command(study)
cli.add_command(ui)
cli.add_command(visualize)


def main() -> None:
    run_cli(cli, prog_name="fmnist")
