"""Paired significance on shared test images: McNemar's exact test, and Holm's correction across a table."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import binom


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
    p = 1.0 if n == 0 else min(1.0, 2.0 * float(binom.cdf(min(only_a, only_b), n, 0.5)))
    return McNemar(only_a, only_b, p)


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
