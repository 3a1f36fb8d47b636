"""Scattering-representation search: candidates scored on a validation split of the training set only.

Each candidate is a scattering configuration (J, L), a coefficient treatment (log or not), optional
``sqrt`` pixels beside it, PCA dimensions and the RBF SVM's C. ``score_candidate`` returns one row per candidate
(the test set is never read); ``fmnist scatnet-search`` runs each as a cell of a graph, a child run of one parent.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from .data import Dataset, stratified_indices, train_val_split
from .errors import ParamError

log = logging.getLogger("fmnist")


@dataclass(frozen=True)
class Candidate:
    J: int = 2
    L: int = 8
    log: bool = True  # log(x + 1e-3) before standardising
    pixels: bool = False  # standardised sqrt pixels concatenated to the coefficients
    pca: int = 100  # principal components ahead of the RBF kernel
    C: float = 10.0

    @property
    def name(self) -> str:
        return (f"J={self.J} L={self.L} {'log' if self.log else 'nolog'}{' +pixels' if self.pixels else ''} "
                f"pca={self.pca} C={self.C:g}")


# What the screening tried, in order: PCA width first (the study's SVM kept 100 components), then the
# coefficient treatment, pixels beside the coefficients, J, and C.
CANDIDATES: tuple[Candidate, ...] = (
    Candidate(pca=100), Candidate(pca=200), Candidate(pca=300), Candidate(pca=500),
    Candidate(log=False, pca=200), Candidate(pixels=True, pca=300), Candidate(J=3, pca=200),
    Candidate(pca=300, C=5.0), Candidate(pca=300, C=30.0),
)


def _standardise(a: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit(a[fit_rows]).transform(a).astype(np.float32)


def score(c: Candidate, coeffs: np.ndarray, images: np.ndarray, y: np.ndarray, n_fit: int,
          seed: int = 0) -> dict[str, Any]:
    """Fit the candidate on the first ``n_fit`` rows and return its accuracy on the rest (the validation rows)."""
    from sklearn.decomposition import PCA
    from sklearn.svm import SVC

    from .classifiers.svm import CACHE_MB, gamma_scale
    from .features.scatnet import log_scattering

    t0 = time.perf_counter()
    fit = np.arange(n_fit)
    z = _standardise(log_scattering(coeffs) if c.log else coeffs, fit)
    if c.pixels:
        pix = np.sqrt(images.reshape(len(images), -1) / np.float32(255.0)).astype(np.float32)
        z = np.hstack([z, _standardise(pix, fit)])
    if c.pca and c.pca < z.shape[1]:
        z = PCA(c.pca, svd_solver="randomized", random_state=seed).fit(z[fit]).transform(z).astype(np.float32)
    svc = SVC(C=c.C, kernel="rbf", gamma=gamma_scale(z[fit]), cache_size=CACHE_MB, random_state=seed)
    svc.fit(z[fit], y[fit])
    val_acc = float(np.mean(svc.predict(z[n_fit:]) == y[n_fit:]))
    return {**asdict(c), "candidate": c.name, "dim": int(z.shape[1]), "val_accuracy": val_acc,
            "seconds": time.perf_counter() - t0}


_coeffs: dict[tuple, np.ndarray] = {}  # scattering coefficients of the search's rows, by configuration


def _rows(ds: Dataset, n_train: int, val_fraction: float, seed: int) -> tuple[np.ndarray, int, int]:
    """Indices of the fit rows (a stratified ``n_train`` of the training part) then the validation rows."""
    tr, va = train_val_split(ds.y_train, val_fraction, seed=seed)
    if n_train < len(tr):
        tr = tr[stratified_indices(ds.y_train[tr], n_train, seed)]
    return np.concatenate([tr, va]), len(tr), len(va)


def score_candidate(ds: Dataset, c: Candidate, *, n_train: int = 12000, val_fraction: float = 0.1, seed: int = 0,
                    progress: bool = True) -> dict[str, Any]:
    """One candidate scored on a stratified ``n_train``-image subset of the training split and on the whole
    validation split carved from it (``val_fraction``); the test set is never read. The coefficients are
    extracted once per process per scattering configuration (candidates differing in PCA or C share them)."""
    from .features.scatnet import scatnet

    idx, n_fit, n_val = _rows(ds, n_train, val_fraction, seed)
    images, y = ds.x_train[idx], ds.y_train[idx]
    k = (ds.digest, n_train, val_fraction, seed, c.J, c.L)
    if k not in _coeffs:
        _coeffs[k] = scatnet(images, J=c.J, L=c.L, max_order=2, progress=progress)
        while len(_coeffs) > 2:
            del _coeffs[next(iter(_coeffs))]
    row = {**score(c, _coeffs[k], images, y, n_fit, seed), "n_fit": n_fit, "n_val": n_val}
    log.info("scatnet search: %s -> val_accuracy %.4f (%.0fs)", c.name, row["val_accuracy"], row["seconds"])
    return row


def search(ds: Dataset, candidates: Iterable[Candidate] = CANDIDATES, *, n_train: int = 12000,
           val_fraction: float = 0.1, seed: int = 0, progress: bool = True) -> list[dict[str, Any]]:
    """Every candidate's ``score_candidate`` row, in order."""
    candidates = list(candidates)
    if not candidates:
        raise ParamError("scatnet search needs at least one candidate")
    return [score_candidate(ds, c, n_train=n_train, val_fraction=val_fraction, seed=seed, progress=progress)
            for c in candidates]


def best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest validation accuracy; ties keep the earlier (cheaper) candidate."""
    return max(rows, key=lambda r: r["val_accuracy"]) if rows else {}


def chosen(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The one-standard-error rule: the first candidate (the list runs cheapest first) whose validation
    accuracy is within one binomial standard error of the best's, so validation noise cannot buy width."""
    top = best(rows)
    if not top:
        return {}
    se = math.sqrt(top["val_accuracy"] * (1 - top["val_accuracy"]) / max(int(top.get("n_val", 1)), 1))
    return next(r for r in rows if r["val_accuracy"] >= top["val_accuracy"] - se)
