"""``fmnist shift``: each scored model (a classify grid, fine-tune modes, or one run) on the shifted test sample,
one graph: the scored cells and the shared shift-features cells first (cached like any cell), then one shift
cell per model, siblings under one parent holding ``shift.csv``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

from .. import tracking
from ..data import Dataset
from ..errors import ParamError
from ..finetune import MODES
from ..shifts import SHIFTS
from ..steps.classify import CLASSIFY, ClassifyParams
from ..steps.finetune import FINETUNE, FinetuneParams
from ..steps.graph import GraphRun, Parent, build, run_graph
from ..steps.params import Common, ExecOpts, param
from ..steps.shift import SHIFT, ShiftOpts, ShiftParams, shift_of
from ..tags import SEED_PARAM, SHIFT_N_PARAM
from ..steps.base import data_params
from .grids import classify_cells, given

log = logging.getLogger("fmnist")


@dataclass(frozen=True)
class ShiftCommandParams(ShiftOpts, ClassifyParams):
    model: str = param("all", "all, or a comma list of classifiers (their classify cells, as `fmnist classify` makes "
                              "them with the same options); 'none': fine-tunes only.")
    finetune: str = param("", f"Fine-tune modes to measure too: all, or a comma list of: {', '.join(MODES.names())} "
                              "(each as `fmnist finetune --mode M` makes it with its defaults).")
    run: str = param("", "One scored run (a FINISHED classify or finetune run) to measure instead of a grid.")


def shift_cells(p: ShiftCommandParams) -> list[ShiftParams]:
    """One shift cell per scored model of the command, every name checked before any run opens."""
    SHIFTS.expand(p.kinds)
    common = {f.name: getattr(p, f.name) for f in fields(Common)}
    opts = ShiftOpts(shift_n=p.shift_n, kinds=p.kinds)
    if p.run:
        return [ShiftParams(run=p.run, shift_n=p.shift_n, kinds=p.kinds, **common)]
    cells = []
    if p.model.strip() != "none":
        classify = ClassifyParams(**{f.name: getattr(p, f.name) for f in fields(ClassifyParams)})
        cells += [shift_of(CLASSIFY, c, opts) for c in classify_cells(classify)]
    if p.finetune:
        cells += [shift_of(FINETUNE, FinetuneParams(mode=m, **common), opts)
                  for m in MODES.expand(p.finetune)]
    if not cells:
        raise ParamError("shift: nothing to measure; give --model, --finetune or --run")
    return cells


def shift(p: ShiftCommandParams | None = None, ex: ExecOpts | None = None, *, ds: Dataset | None = None,
          **kw: Any) -> list[dict[str, Any]]:
    """Measure every scored model of ``p`` under shift; one row per (model, set): accuracy with its interval."""
    p, ex = given(ShiftCommandParams, p, ex, kw)
    cells = shift_cells(p)
    tracking.check_store()
    for c in cells:  # a --run that is not a scored run fails here, before the data is read
        c.scored_cell()
    ds = ds if ds is not None else p.load()
    p.check_sample(ds.name, p.data_dir)  # a shift_n larger than the test split, before any run opens
    graph = build([(SHIFT, c) for c in cells], lambda _: ds)
    rows: list[dict[str, Any]] = []

    def summary(run: GraphRun) -> None:
        rows.extend(_rows(run))
        if rows:
            import pandas as pd

            tracking.log_table(pd.DataFrame(rows), "shift.csv")

    parent = Parent("shift", "shift-group", {**data_params(ds), SEED_PARAM: p.seed, SHIFT_N_PARAM: p.shift_n,
                                             "kinds": p.kinds, "cells": len(cells)}, summary=summary)
    run = run_graph(graph, parent, data=lambda _: ds, progress=p.progress, **ex.exec_kw())
    return rows if run.parent_run_id else _rows(run)


def _rows(run: GraphRun) -> list[dict[str, Any]]:
    """Every shift cell's table, one row per set, named by its cell."""
    infos = tracking.runs_info([r.run_id for r in run.ok(SHIFT.name)])
    out = []
    for r in run.ok(SHIFT.name):
        info = infos[r.run_id]
        for name, value in sorted(info["metrics"].items()):
            if name.startswith("shift/"):
                out.append({"cell": r.cell, "set": name.removeprefix("shift/"), "accuracy": value,
                            "run_id": r.run_id})
    return out


__all__ = ["ShiftCommandParams", "shift", "shift_cells"]
