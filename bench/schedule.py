"""What a cluster would buy: list-schedule a finished study's measured cells on N workers.

    python bench/schedule.py [--run-id PARENT] [--workers 1,2,4,8,16,32]

Reads ``steps.csv`` of the study (the newest ``fmnist.step=study`` run of the experiment unless
``--run-id``), takes each cell's measured seconds (only cells that ran, not cached ones), rebuilds the
graph (classify and visualize cells wait for their feature's extract) and prints the predicted wall time
per number of workers, the speed-up and the critical path, which no number of workers beats.
"""

from __future__ import annotations

import click

from fmnist import tracking
from fmnist.engine.schedule import critical_path, list_schedule


def study_cells(run_id: str | None, experiment: str) -> tuple[dict[str, float], dict[str, tuple[str, ...]]]:
    import pandas as pd

    if run_id is None:
        runs = tracking.search_runs("tags.`fmnist.step` = 'study' and attributes.status = 'FINISHED'", [experiment])
        for candidate in runs["run_id"] if not runs.empty else []:  # newest first; an all-cached rerun says nothing
            ran = pd.read_csv(tracking.artifact_local_path(candidate, "steps.csv"))["status"].eq("ran").sum()
            if ran > 1:
                run_id = candidate
                break
        if run_id is None:
            raise SystemExit(f"no FINISHED study in experiment {experiment!r} computed its cells (all cached?)")
    steps = pd.read_csv(tracking.artifact_local_path(run_id, "steps.csv"))
    steps = steps[(steps["step"] != "report") & (steps["status"] == "ran")]
    seconds = {f"{r.step} {r.cell}": float(r.seconds) for r in steps.itertuples()}
    after = {c: _extract_of(c, seconds) for c in seconds if c.startswith(("classify ", "visualize "))}
    print(f"study {run_id}: {len(seconds)} cells that ran, {sum(seconds.values()):.0f} s of work")
    return seconds, after


def _extract_of(cell: str, seconds: dict[str, float]) -> tuple[str, ...]:
    """The extract cell a classify/visualize cell waited for: ``classify raw/lda@seed=1`` -> ``extract raw@seed=1``
    (seeds on the full data share the first seed's extract); none when it was cached, not run."""
    feature, _, rest = cell.split(" ", 1)[1].partition("/")
    seed = rest[rest.index("@"):] if "@" in rest else ""
    for name in (f"extract {feature}{seed}", *(c for c in seconds if c.startswith(f"extract {feature}@"))):
        if name in seconds:
            return (name,)
    return ()


@click.command()
@click.option("--run-id", default=None, help="The study's parent run [default: the newest FINISHED study].")
@click.option("--experiment", default="fmnist", show_default=True)
@click.option("--workers", default="1,2,4,8,16,32", show_default=True)
def main(run_id, experiment, workers):
    seconds, after = study_cells(run_id, experiment)
    one = list_schedule(seconds, after, 1)
    print(f"{'workers':>7} {'predicted wall s':>17} {'speed-up':>9}")
    for n in (int(w) for w in workers.split(",")):
        t = list_schedule(seconds, after, n)
        print(f"{n:7d} {t:17.0f} {one / t:8.1f}x")
    length, path = critical_path(seconds, after)
    print(f"critical path {length:.0f} s: {' -> '.join(path)}")


if __name__ == "__main__":
    main()
