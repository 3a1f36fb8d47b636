"""Scattering-representation search: candidates scored on a validation split of the training set only.

Each candidate is a scattering configuration (J, L), a coefficient treatment (log or not), optional
``sqrt`` pixels beside it, PCA dimensions, the RBF SVM's C, optional virtual examples of the fit rows
(``fmnist.virtual``) and an optional probability average with logistic regression. ``score_candidate`` returns
one row per candidate (the test set is never read); ``fmnist scatnet-search`` runs each as a cell of a graph, a
child run of one parent.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

import numpy as np

from .data import Dataset, data_digest, stratified_indices, train_val_split
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
    virtual: str = ""  # virtual examples of the fit rows ("flip+shift1"; fmnist.virtual.KINDS), fitted beside them
    of_support: bool = False  # copies of the support vectors only, refitted on those and their copies (VSV)
    ensemble: bool = False  # average the SVM's class probabilities with logistic regression's on the coefficients

    @property
    def name(self) -> str:
        return (f"J={self.J} L={self.L} {'log' if self.log else 'nolog'}{' +pixels' if self.pixels else ''} "
                f"pca={self.pca} C={self.C:g}{f' +virtual {self.virtual}' if self.virtual else ''}"
                f"{' of SVs' if self.of_support else ''}"
                f"{' +logreg' if self.ensemble else ''}")


# What the screening tried, in order: PCA width first (the study's SVM kept 100 components), then the
# coefficient treatment, pixels beside the coefficients, J, and C.
CANDIDATES: tuple[Candidate, ...] = (
    Candidate(pca=100), Candidate(pca=200), Candidate(pca=300), Candidate(pca=500),
    Candidate(log=False, pca=200), Candidate(pixels=True, pca=300), Candidate(J=3, pca=200),
    Candidate(pca=300, C=5.0), Candidate(pca=300, C=30.0),
    # Beyond 92.6% (issue: the best non-neural result): on the pixels candidate, virtual examples (of the support
    # vectors, then of every fit row) and a probability average with logistic regression; cheapest first.
    Candidate(pixels=True, pca=300, virtual="shift1", of_support=True),
    Candidate(pixels=True, pca=300, virtual="flip"),
    Candidate(pixels=True, pca=300, virtual="flip+shift1+rotate8", of_support=True),
    Candidate(pixels=True, pca=300, ensemble=True),
)


def _standardise(a: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit(a[fit_rows]).transform(a).astype(np.float32)


Virtual = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def score(c: Candidate, coeffs: np.ndarray, images: np.ndarray, y: np.ndarray, n_fit: int, seed: int = 0,
          virtual: Virtual | None = None) -> dict[str, Any]:
    """Fit the candidate on the first ``n_fit`` rows (and their virtual copies: ``virtual(rows)`` gives the
    coefficients, images and source row of each copy of those rows) and return its accuracy on the rest (the
    validation rows). The scaler and PCA are fitted on the fit rows themselves; the copies only join the SVM's
    training set. ``of_support``: a first fit picks the support vectors; the SVM is refitted on them and their
    copies (DeCoste and Schölkopf's virtual support vectors)."""
    from sklearn.svm import SVC

    from .classifiers.svm import CACHE_MB, gamma_scale

    t0 = time.perf_counter()
    fit, n = np.arange(n_fit), len(coeffs)
    svc = SVC(C=c.C, kernel="rbf", cache_size=CACHE_MB, random_state=seed)
    rows = fit
    if c.virtual and c.of_support:
        z0 = _features(c, coeffs, images, fit, seed)
        rows = np.sort(svc.set_params(gamma=gamma_scale(z0[fit])).fit(z0[fit], y[fit]).support_)
    v_coeffs, v_images, v_src = (virtual(rows) if c.virtual and virtual is not None
                                 else (coeffs[:0], images[:0], np.zeros(0, np.int64)))
    if len(v_src) and v_src.max() >= n_fit:
        raise ValueError("virtual examples must come from the fit rows, never from the validation rows")
    coeffs, images = np.concatenate([coeffs, v_coeffs]), np.concatenate([images, v_images])
    z = _features(c, coeffs, images, fit, seed)
    train = np.concatenate([rows, np.arange(n, len(z))])  # the fit rows (or support vectors) and their copies
    y_train = np.concatenate([y[rows], y[v_src]])
    svc.set_params(gamma=gamma_scale(z[fit]))
    val = slice(n_fit, n)
    if c.ensemble:  # the SVM's probabilities: sigmoid calibration on out-of-fold decisions (libsvm's Platt scaling)
        from sklearn.calibration import CalibratedClassifierCV

        from .classifiers import build_classifier

        svm = CalibratedClassifierCV(svc, ensemble=False).fit(z[train], y_train)
        logreg = build_classifier("logreg", seed=seed, feature="scatnet").pipeline.fit(coeffs[train], y_train)
        proba = (svm.predict_proba(z[val]) + logreg.predict_proba(coeffs[val])) / 2
        predicted = svm.classes_[proba.argmax(1)]
    else:
        predicted = svc.fit(z[train], y_train).predict(z[val])
    val_acc = float(np.mean(predicted == y[val]))
    return {**asdict(c), "candidate": c.name, "dim": int(z.shape[1]), "val_accuracy": val_acc,
            "n_virtual": len(v_src), "seconds": time.perf_counter() - t0}


def _features(c: Candidate, coeffs: np.ndarray, images: np.ndarray, fit: np.ndarray, seed: int) -> np.ndarray:
    """The SVM's input: (log) coefficients standardised, sqrt pixels beside them if asked, then PCA; every
    statistic from the ``fit`` rows."""
    from sklearn.decomposition import PCA

    from .features.scatnet import log_scattering

    z = _standardise(log_scattering(coeffs) if c.log else coeffs, fit)
    if c.pixels:
        pix = np.sqrt(images.reshape(len(images), -1) / np.float32(255.0)).astype(np.float32)
        z = np.hstack([z, _standardise(pix, fit)])
    if c.pca and c.pca < z.shape[1]:
        z = PCA(c.pca, svd_solver="randomized", random_state=seed).fit(z[fit]).transform(z).astype(np.float32)
    return z


_coeffs: dict[tuple, np.ndarray] = {}  # scattering coefficients of the search's rows (and copies), by configuration


def _rows(ds: Dataset, n_train: int, val_fraction: float, seed: int) -> tuple[np.ndarray, int, int]:
    """Indices of the fit rows (a stratified ``n_train`` of the training part) then the validation rows."""
    tr, va = train_val_split(ds.y_train, val_fraction, seed=seed)
    if n_train < len(tr):
        tr = tr[stratified_indices(ds.y_train[tr], n_train, seed)]
    return np.concatenate([tr, va]), len(tr), len(va)


def _scattered(key: tuple, images: Callable[[], np.ndarray], c: Candidate, progress: bool) -> np.ndarray:
    """Coefficients of ``images()`` under the candidate's scattering, once per process per ``key``."""
    from .features.scatnet import scatnet

    if key not in _coeffs:
        _coeffs[key] = scatnet(images(), J=c.J, L=c.L, max_order=2, progress=progress)
        while len(_coeffs) > 3:
            del _coeffs[next(iter(_coeffs))]
    return _coeffs[key]


def score_candidate(ds: Dataset, c: Candidate, *, n_train: int = 12000, val_fraction: float = 0.1, seed: int = 0,
                    progress: bool = True) -> dict[str, Any]:
    """One candidate scored on a stratified ``n_train``-image subset of the training split and on the whole
    validation split carved from it (``val_fraction``); the test set is never read. The coefficients are
    extracted once per process per scattering configuration (candidates differing in PCA or C share them),
    and those of the virtual copies (of the fit rows only) once per configuration and kinds."""
    from .virtual import virtual_images

    idx, n_fit, n_val = _rows(ds, n_train, val_fraction, seed)
    images, y = ds.x_train[idx], ds.y_train[idx]
    k = (ds.digest, n_train, val_fraction, seed, c.J, c.L)
    coeffs = _scattered(k, lambda: images, c, progress)

    def virtual(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        v_images, v_src = virtual_images(images[rows], c.virtual)
        v_coeffs = _scattered((*k, c.virtual, data_digest(rows)), lambda: v_images, c, progress)
        return v_coeffs, v_images, rows[v_src]

    # the copies' extraction happens inside score(): part of the candidate's seconds
    row = {**score(c, coeffs, images, y, n_fit, seed, virtual), "n_fit": n_fit, "n_val": n_val}
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
