"""Classification metrics shared by classify and finetune: accuracy with its interval, per-class figures,
and the test predictions every later comparison is made from."""

from __future__ import annotations

import math
import re

import numpy as np
from scipy.special import erf
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix, f1_score

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
CI_METHOD = "wilson"  # what test_accuracy_ci_low / _high are: the Wilson score interval, 95%


def slug(name: str) -> str:
    """A class name as a metric-key suffix: 'T-shirt/top' -> 't_shirt_top'."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of (true, predicted) class pairs, rows = true class, over classes 0..n_classes-1."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.size == 0:  # sklearn refuses empty input; no images is an all-zero matrix
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    if min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n_classes:
        # sklearn would drop labels outside ``labels`` silently: a wrong class count must fail instead
        raise ValueError(f"labels outside 0..{n_classes - 1} in a {n_classes}-class confusion matrix")
    return confusion_matrix(y_true, y_pred, labels=range(n_classes)).astype(np.int64, copy=False)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes) -> dict:
    """accuracy, macro_f1, per-class accuracy (recall) and the confusion matrix (rows = true class).

    macro_f1 averages over the classes present in ``y_true`` only; a present class never predicted scores 0.
    """
    cm = confusion(y_true, y_pred, len(classes))
    support = cm.sum(axis=1)
    tp = np.diag(cm).astype(float)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    present = np.flatnonzero(support > 0)
    macro_f1 = (float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
                if present.size else 0.0)
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": macro_f1,
        "per_class_accuracy": {c: float(r) for c, r in zip(classes, recall)},
        "confusion": cm,
    }


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion ``correct / n`` (95% at the default ``z``).

    Unlike the normal approximation it stays inside [0, 1] and keeps its coverage near 0% and 100%.
    """
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n > 0, got correct={correct}, n={n}")
    # scipy takes a confidence level, not z: the two-sided level whose quantile is z (0.95 for Z95)
    level = 0.95 if z == Z95 else float(erf(z / math.sqrt(2)))
    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def accuracy_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """test_accuracy with its 95% interval (``CI_METHOD``), over the test images."""
    correct, n = int(np.sum(np.asarray(y_true) == np.asarray(y_pred))), len(y_true)
    low, high = wilson_interval(correct, n)
    return {"test_accuracy": correct / n, "test_accuracy_ci_low": low, "test_accuracy_ci_high": high}


def class_probabilities(model, x: np.ndarray) -> np.ndarray | None:
    """Class probabilities of a fitted sklearn model on ``x``, or None for a model without them.

    libsvm's SVC (probability=False) has none: its decision values would cost a second pass over the test set.
    """
    if not hasattr(model, "predict_proba"):  # sklearn hides it where the estimator cannot (available_if)
        return None
    return np.asarray(model.predict_proba(x), dtype=np.float32)


def predictions_arrays(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None,
                       test_index: np.ndarray | None = None, test_split: str = "") -> dict:
    """What ``predictions.npz`` holds: each image's index in the dataset's test split (``test_index``; default
    0..n-1, the whole split), that split's digest, label, predicted label, and class scores when there are any."""
    index = np.arange(len(y_true)) if test_index is None else test_index
    out = {"test_index": np.asarray(index, dtype=np.int64), "label": np.asarray(y_true, dtype=np.int64),
           "predicted": np.asarray(y_pred, dtype=np.int64), "test_split": np.asarray(test_split)}
    if scores is not None:
        out["scores"] = np.asarray(scores, dtype=np.float32)
    return out
