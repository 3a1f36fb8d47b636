"""The scattering search as a step: one ``scatnet-search`` parent run, one child run per candidate.

Candidates are scored on a validation split of the training set only (``fmnist.search``); the parent
holds ``tuning.csv``, a bar chart of the validation accuracies, the top candidate in ``fmnist.search_best`` and
the one-standard-error choice (the study's setting) in ``fmnist.search_chosen``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import click

from .. import cache, plots, tracking
from ..data import Dataset
from ..errors import ChoiceError
from ..search import CANDIDATES, Candidate, best, chosen, search
from .base import RunContext, Step, get_or_run, verify_artifacts
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


class ScatnetSearch(Step):
    name = "scatnet-search"
    Params = SearchParams

    def key(self, p: SearchParams, ds: Dataset) -> str:
        params = {"candidates": [c.name for c in p.selected()], "n_train": p.n_train, "val_fraction": p.val_fraction,
                  "seed": p.seed}
        code = cache.step_code_version(__name__, "fmnist.search", "fmnist.features.scatnet", "fmnist.classifiers.svm")
        return cache.cache_key(self.name, params, ds.digest, code)

    def run_params(self, p: SearchParams, ds: Dataset) -> dict[str, Any]:
        return {"dataset": ds.name, "subset": ds.subset or "all", "seed": p.seed, "n_train": p.n_train,
                "val_fraction": p.val_fraction, "n_candidates": len(p.selected())}

    def run(self, p: SearchParams, ds: Dataset, inputs: dict, ctx: RunContext) -> list[dict[str, Any]]:
        return search(ds, p.selected(), n_train=p.n_train, val_fraction=p.val_fraction, seed=p.seed,
                      progress=p.progress)

    def log(self, p: SearchParams, ds: Dataset, rows: list[dict[str, Any]]) -> dict[str, str]:
        import pandas as pd

        for i, r in enumerate(rows, 1):
            with tracking.run(f"candidate {i}: {r['candidate']}", step="scatnet-candidate"):
                tracking.log_params({k: r[k] for k in ("J", "L", "log", "pixels", "pca", "C", "n_fit", "n_val")})
                tracking.log_metrics({"val_accuracy": r["val_accuracy"], "seconds": r["seconds"], "dim": r["dim"]})
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
        return {}

    def load(self, run_id: str, p: SearchParams, ds: Dataset) -> list[dict[str, Any]]:
        import pandas as pd

        verify_artifacts(run_id)
        return pd.read_csv(tracking.artifact_local_path(run_id, "tuning.csv")).to_dict("records")


SCATNET_SEARCH = ScatnetSearch()


def scatnet_search(**kw) -> list[dict[str, Any]]:
    """Run (or reuse) the search; returns its rows (the log names the best and the chosen one)."""
    p = SearchParams(**kw)
    p.selected()  # a bad candidate list fails before the data is read
    out = get_or_run(SCATNET_SEARCH, p)
    win, pick = best(out.result), chosen(out.result)
    log.info("scatnet search (run %s%s): best %s (val_accuracy %.4f); chosen within one standard error: %s (%.4f)",
             out.run_id, ", cached" if out.cached else "", win["candidate"], win["val_accuracy"], pick["candidate"],
             pick["val_accuracy"])
    return out.result
