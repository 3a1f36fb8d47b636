"""The scattering search as a graph: one ``scatnet-search`` parent run, one ``scatnet-candidate`` cell (a child run,
cached on its own) per candidate.

Candidates are scored on a validation split of the training set only (``fmnist.search``); the parent
holds ``tuning.csv``, a bar chart of the validation accuracies, the top candidate in ``fmnist.search_best`` and
the one-standard-error choice (the study's setting) in ``fmnist.search_chosen``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import click

from .. import cache, tracking
from ..data import Dataset
from ..errors import ChoiceError
from ..search import CANDIDATES, Candidate, score_candidate
from .base import RunContext, Step, data_params
from .params import Common, param
from ..tags import N_FIT_PARAM, N_VAL_PARAM, SEED_PARAM

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


ROW_PARAMS = ("J", "L", "log", "pixels", "pca", "C", "virtual", "of_support", "ensemble", N_FIT_PARAM, N_VAL_PARAM)


class ScatnetCandidate(Step):
    name = "scatnet-candidate"
    Params = CandidateParams

    def code(self, p: CandidateParams) -> str:
        return cache.step_code_version(__name__, "fmnist.search", "fmnist.features.scatnet", "fmnist.classifiers.svm")

    def label(self, p: CandidateParams) -> str:
        return f"{p.candidate}: {p.spec.name}"

    def run_name(self, p: CandidateParams) -> str:
        return f"candidate {self.label(p)}"

    def run_params(self, p: CandidateParams, ds: Dataset) -> dict[str, Any]:
        return {"candidate": p.candidate, **data_params(ds), SEED_PARAM: p.seed,
                "n_train": p.n_train, "val_fraction": p.val_fraction}

    def resources(self, p: CandidateParams) -> dict[str, float]:
        return {"num_cpus": 1, "cost": 60.0 * p.n_train / 12000}

    def run(self, p: CandidateParams, ds: Dataset, inputs: dict, ctx: RunContext) -> dict[str, Any]:
        return score_candidate(ds, p.spec, n_train=p.n_train, val_fraction=p.val_fraction, seed=p.seed,
                               progress=p.progress)

    def log(self, p: CandidateParams, ds: Dataset, r: dict[str, Any]) -> dict[str, str]:
        tracking.log_params({k: r[k] for k in ROW_PARAMS})
        tracking.log_metrics({"val_accuracy": r["val_accuracy"], "seconds": r["seconds"], "dim": r["dim"],
                              "n_virtual": r["n_virtual"]})
        return {}

    def load(self, info: dict[str, Any], p: CandidateParams, ds: Dataset) -> dict[str, Any]:
        """The row, as logged: the spec's own values, the split sizes and the scores."""
        m = info["metrics"]
        return {**asdict(p.spec), "candidate": p.spec.name, "dim": int(m["dim"]), "val_accuracy": m["val_accuracy"],
                "seconds": m["seconds"], "n_virtual": int(m["n_virtual"]), "n_fit": int(info["params"][N_FIT_PARAM]),
                "n_val": int(info["params"][N_VAL_PARAM])}


CANDIDATE = ScatnetCandidate()


