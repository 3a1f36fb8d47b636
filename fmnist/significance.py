"""Paired significance on shared test images: McNemar's exact test, and Holm's correction across a table."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import binomtest


class McNemar(NamedTuple):
    only_a: int  # test images model A got right and model B wrong
    only_b: int
    p_value: float  # two-sided, exact (binomial on the discordant pairs)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's exact test of two classifiers scored on the same test images (boolean "was right" arrays).

    Only the discordant images count: under "equally accurate" each falls either way with probability 1/2.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"the two runs scored different test sets ({a.shape} vs {b.shape} images)")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    # binomtest needs n >= 1: no discordant image is no evidence either way
    p = 1.0 if n == 0 else float(binomtest(only_a, n, 0.5).pvalue)
    return McNemar(only_a, only_b, p)


class Shared(NamedTuple):
    a: np.ndarray  # positions in run A's predictions of the images both runs scored
    b: np.ndarray  # the same images' positions in run B's
    test_index: np.ndarray  # their index in the dataset's test split (positions, for runs logged before it)


def shared_images(a: dict, b: dict) -> Shared:
    """The test images two runs both scored (``fmnist.steps.base.load_predictions``), matched by their index in
    the same test split; none when the splits differ. Runs logged before predictions held that index are
    matched by position, and only with runs on the same data (digest)."""
    none = np.empty(0, dtype=np.int64)
    if a["test_split"] and b["test_split"]:
        if a["test_split"] != b["test_split"]:
            return Shared(none, none, none)
        common, ia, ib = np.intersect1d(a["test_index"], b["test_index"], assume_unique=True, return_indices=True)
    elif a["data_digest"] and a["data_digest"] == b["data_digest"] and len(a["label"]) == len(b["label"]):
        common = ia = ib = np.arange(len(a["label"]))
    else:
        return Shared(none, none, none)
    if not np.array_equal(a["label"][ia], b["label"][ib]):
        raise ValueError("the two runs give the same test images different labels: not the same test split")
    return Shared(ia, ib, common)


def correct_on_shared(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray]:
    """Was-right arrays of two runs over the test images they share (``shared_images``), in one order."""
    s = shared_images(a, b)
    return (a["label"] == a["predicted"])[s.a], (b["label"] == b["predicted"])[s.b]


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out
