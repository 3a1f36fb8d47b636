"""``fmnist rerun RUN_ID``: run a logged result again and say whether it reproduces."""

from __future__ import annotations

import os

import click

from ..steps.params import from_cli, options
from ..commands.rerun import RerunParams


@click.command()
@click.argument("run", required=False, default="")
@options(RerunParams)
def rerun(run: str, **kw) -> None:
    """Recompute a FINISHED run (or every cell of a study) and compare metric by metric; exit 0 only when
    every metric and checksummed artifact reproduces."""
    from .. import tracking
    from ..errors import FmnistError, ParamError
    from ..commands import rerun as rr

    p = from_cli(RerunParams, {**kw, "run_id": run or kw["run_id"]})
    if not p.run_id:
        raise ParamError("give the run to rerun: fmnist rerun RUN_ID (or --run-id)")
    if not tracking.run_exists(p.run_id):
        raise FmnistError(f"no run {p.run_id!r} in {tracking.tracking_uri().split('?')[0]}")
    info = tracking.get_run_info(p.run_id)
    os.environ["MLFLOW_EXPERIMENT_ID"] = info["experiment_id"]  # the rerun lands beside the original
    if info["tags"].get(tracking.STEP_TAG) == "study":
        records = rr.rerun_study(p.run_id, executor=p.executor, address=p.ray_address, only=p.cells,
                                 allow_drift=p.allow_drift, progress=p.progress)
        for r in records:
            click.echo(f"{r.step} {r.cell}: " + ("reproduces" if r.ok else f"DIFFERS: {r.error}")
                       + (f" (new run {r.run_id})" if r.run_id else ""))
        bad = [r for r in records if not r.ok]
        click.echo(f"{len(records) - len(bad)} of {len(records)} cells reproduce")
        if bad:
            raise SystemExit(1)
        return
    r = rr.rerun_run(p.run_id, p.allow_drift)
    for d in r.drift:
        click.echo(f"drift: {d}")
    click.echo(f"{r.cell}: run {r.run_id} rerun as {r.new_run_id}")
    click.echo(rr.table(r))
    if not r.ok:
        raise SystemExit(1)
