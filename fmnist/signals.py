"""SIGTERM handled like Ctrl-C, even where Python swallows the exception the handler raises."""

from __future__ import annotations


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, batch schedulers, container stops), handled like Ctrl-C: every run
    still RUNNING ends KILLED on the way out."""


# How SIGTERM is told from Ctrl-C (click and Ray re-raise it as other exceptions), and why ``check`` exists:
# a signal that lands inside a weakref or __del__ callback has its exception printed and dropped by Python.
signalled: list[int] = []


def on_sigterm(signum, frame) -> None:
    signalled.append(signum)
    raise Terminated("terminated (SIGTERM)")


def check() -> None:
    """Raise ``Terminated`` if SIGTERM arrived: called at safe points (between cells, between batches)."""
    if signalled:
        raise Terminated("terminated (SIGTERM)")
