"""The scattering search as a graph: one ``scatnet-search`` parent run, one ``scatnet-candidate`` cell (a child run,
cached on its own) per candidate.

Candidates are scored on a validation split of the training set only (``fmnist.search``); the parent
holds ``tuning.csv``, a bar chart of the validation accuracies, the top candidate in ``fmnist.search_best`` and
the one-standard-error choice (the study's setting) in ``fmnist.search_chosen``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

import click

from .. import cache, plots, tracking
from ..data import Dataset
from ..errors import ChoiceError
from ..search import CANDIDATES, Candidate, best, chosen, score_candidate
from .base import RunContext, Step
from .graph import Parent, build, run_graph
from .params import Common, param

log = logging.getLogger("fmnist")


@dataclass(frozen=True)
class SearchParams(Common):
    candidates: str = param("all", f"all, or a comma list of candidate numbers 1..{len(CANDIDATES)} "
                                   "(see fmnist.search.CANDIDATES).")
    n_train: int = param(12000, "Training images each candidate is fitted on (a stratified subset of the "
                                "training split).", type=click.IntRange(min=100))
    val_fraction: float = param(0.1, "Share of the training set held out for validation.",
                                type=click.FloatRange(0, 1, min_open=True, max_open=True))

    def selected(self) -> list[Candidate]:
        if self.candidates.strip().lower() == "all":
            return list(CANDIDATES)
        out = []
        for tok in self.candidates.split(","):
            tok = tok.strip()
            if not tok.isdigit() or not 1 <= int(tok) <= len(CANDIDATES):
                raise ChoiceError(f"unknown candidate {tok!r}; choose all or numbers 1..{len(CANDIDATES)}")
            out.append(CANDIDATES[int(tok) - 1])
        return out


@dataclass(frozen=True)
class CandidateParams(Common):
    """One candidate of the search (a cell of its graph)."""

    candidate: int = param(1, f"Candidate number 1..{len(CANDIDATES)}.", cli=False)
    n_train: int = param(SearchParams.n_train, "Training images the candidate is fitted on.", cli=False)
    val_fraction: float = param(SearchParams.val_fraction, "Share of the training set held out.", cli=False)

    @property
    def spec(self) -> Candidate:
        return CANDIDATES[self.candidate - 1]


ROW_PARAMS = ("J", "L", "log", "pixels", "pca", "C", "n_fit", "n_val")


class ScatnetCandidate(Step):
    name = "scatnet-candidate"
    Params = CandidateParams

    def key(self, p: CandidateParams, ds: Dataset) -> str:
        params = {"candidate": p.spec.name, "n_train": p.n_train, "val_fraction": p.val_fraction, "seed": p.seed}
        return cache.cache_key(self.name, params, ds.digest, self.code(p))

    def code(self, p: CandidateParams) -> str:
        return cache.step_code_version(__name__, "fmnist.search", "fmnist.features.scatnet", "fmnist.classifiers.svm")

    def label(self, p: CandidateParams) -> str:
        return f"{p.candidate}: {p.spec.name}"

    def run_name(self, p: CandidateParams) -> str:
        return f"candidate {self.label(p)}"

    def run_params(self, p: CandidateParams, ds: Dataset) -> dict[str, Any]:
        return {"candidate": p.candidate, "dataset": ds.name, "subset": ds.subset or "all", "seed": p.seed,
                "n_train": p.n_train, "val_fraction": p.val_fraction}

    def resources(self, p: CandidateParams) -> dict[str, float]:
        return {"num_cpus": 1, "cost": 60.0 * p.n_train / 12000}

    def run(self, p: CandidateParams, ds: Dataset, inputs: dict, ctx: RunContext) -> dict[str, Any]:
        return score_candidate(ds, p.spec, n_train=p.n_train, val_fraction=p.val_fraction, seed=p.seed,
                               progress=p.progress)

    def log(self, p: CandidateParams, ds: Dataset, r: dict[str, Any]) -> dict[str, str]:
        tracking.log_params({k: r[k] for k in ROW_PARAMS})
        tracking.log_metrics({"val_accuracy": r["val_accuracy"], "seconds": r["seconds"], "dim": r["dim"]})
        return {}

    def load(self, info: dict[str, Any], p: CandidateParams, ds: Dataset) -> dict[str, Any]:
        """The row, as logged: the spec's own values, the split sizes and the scores."""
        m = info["metrics"]
        return {**asdict(p.spec), "candidate": p.spec.name, "dim": int(m["dim"]), "val_accuracy": m["val_accuracy"],
                "seconds": m["seconds"], "n_fit": int(info["params"]["n_fit"]), "n_val": int(info["params"]["n_val"])}


CANDIDATE = ScatnetCandidate()


def scatnet_search(*, executor: str = "serial", ray_address: str = "", **kw) -> list[dict[str, Any]]:
    """Run (or reuse) every selected candidate as a cell of one graph under a ``scatnet-search`` parent, which holds
    ``tuning.csv``, ``search.png`` and the best and the chosen candidate; returns the rows in candidate order."""
    p = SearchParams(**kw)
    picked = p.selected()  # a bad candidate list fails before the data is read
    tracking.check_store()
    ds = p.load()
    common = {f.name: getattr(p, f.name) for f in fields(Common)}
    cells = [CandidateParams(candidate=CANDIDATES.index(c) + 1, n_train=p.n_train, val_fraction=p.val_fraction,
                             **common) for c in picked]
    rows: list[dict[str, Any]] = []

    def summary(run) -> None:
        by_cell = {r.cell: r.run_id for r in run.ok(CANDIDATE.name)}
        infos = tracking.runs_info(list(by_cell.values()))
        rows.extend(CANDIDATE.load(infos[by_cell[CANDIDATE.label(c)]], c, ds) for c in cells
                    if CANDIDATE.label(c) in by_cell)
        if rows:
            _log_search(rows)

    parent = Parent("scatnet-search", "scatnet-search",
                    {"dataset": ds.name, "subset": ds.subset or "all", "seed": p.seed, "n_train": p.n_train,
                     "val_fraction": p.val_fraction, "n_candidates": len(cells)}, summary=summary, optional=False)
    run = run_graph(build([(CANDIDATE, c) for c in cells], lambda _: ds), parent, data=lambda _: ds,
                    executor=executor, ray_address=ray_address, progress=p.progress)
    win, pick = best(rows), chosen(rows)
    log.info("scatnet search (run %s): best %s (val_accuracy %.4f); chosen within one standard error: %s (%.4f)",
             run.parent_run_id, win["candidate"], win["val_accuracy"], pick["candidate"], pick["val_accuracy"])
    return rows


def _log_search(rows: list[dict[str, Any]]) -> None:
    """The table, the bar chart and the picks, onto the search's parent run."""
    import pandas as pd

    win, pick = best(rows), chosen(rows)
    tracking.log_table(pd.DataFrame(rows), "tuning.csv")
    fig = plots.bar_figure([r["candidate"] for r in rows], [r["val_accuracy"] for r in rows],
                           title="scatnet search: validation accuracy (RBF SVM)", highlight=rows.index(pick))
    try:
        tracking.log_figure(fig, "search.png")
    finally:
        plots.close(fig)
    tracking.log_metrics({"best_val_accuracy": win["val_accuracy"], "chosen_val_accuracy": pick["val_accuracy"]})
    tracking.set_tags({"fmnist.search_best": win["candidate"], "fmnist.search_chosen": pick["candidate"]})
