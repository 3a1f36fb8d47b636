"""How well a 2-D embedding separates the classes, in numbers rather than by eye.

- ``knn_accuracy``: a k-NN classifier on the 2-D coordinates, scored on held-out points (stratified
  k-fold within the sample; the embedding itself never sees the labels).
- ``trustworthiness``: sklearn's, between the *original* features (before any PCA) and the 2-D view:
  1.0 when every 2-D neighbour is also a neighbour in feature space. Quadratic in n, so computed on a
  stratified subsample of at most ``TRUST_MAX_N`` points.
- ``silhouette``: sklearn's silhouette of the class labels in 2-D (-1..1; higher = tighter, better
  separated class clusters), on at most ``SILHOUETTE_MAX_N`` points.
"""

from __future__ import annotations

import numpy as np

from .data import stratified_indices

KNN_K = 5
KNN_FOLDS = 5
TRUST_K = 5
TRUST_MAX_N = 5000
SILHOUETTE_MAX_N = 10000

SETTINGS = {"knn_k": KNN_K, "knn_folds": KNN_FOLDS, "trustworthiness_k": TRUST_K,
            "trustworthiness_max_n": TRUST_MAX_N, "silhouette_max_n": SILHOUETTE_MAX_N}


def knn_accuracy(coords: np.ndarray, y: np.ndarray, *, k: int = KNN_K, folds: int = KNN_FOLDS, seed: int = 0) -> float:
    """Mean held-out accuracy of a k-NN classifier in the embedding (stratified k-fold)."""
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier

    counts = np.bincount(y)
    smallest = counts[counts > 0].min()
    folds = max(2, min(folds, len(y)))
    # Stratify when every class can appear in every fold; otherwise plain folds still hold points out.
    split = (StratifiedKFold if smallest >= folds else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    correct = 0
    for tr, te in split.split(coords, y):
        clf = KNeighborsClassifier(n_neighbors=min(k, len(tr))).fit(coords[tr], y[tr])
        correct += int((clf.predict(coords[te]) == y[te]).sum())
    return correct / len(y)


def trustworthiness(x: np.ndarray, coords: np.ndarray, y: np.ndarray, *, k: int = TRUST_K,
                    max_n: int = TRUST_MAX_N, seed: int = 0) -> float:
    """sklearn trustworthiness of the 2-D view w.r.t. the original features, on <= ``max_n`` points."""
    from sklearn.manifold import trustworthiness as tw

    idx = stratified_indices(y, max_n, seed) if len(y) > max_n else np.arange(len(y))
    k = min(k, (len(idx) - 1) // 2 - 1)  # sklearn requires k < n / 2
    if k < 1:
        return float("nan")
    return float(tw(np.asarray(x[idx], dtype=np.float32), coords[idx], n_neighbors=k))


def silhouette(coords: np.ndarray, y: np.ndarray, *, max_n: int = SILHOUETTE_MAX_N, seed: int = 0) -> float:
    """Silhouette score of the class labels in 2-D, on <= ``max_n`` points (stratified)."""
    from sklearn.metrics import silhouette_score

    idx = stratified_indices(y, max_n, seed) if len(y) > max_n else np.arange(len(y))
    n_labels = len(np.unique(y[idx]))
    if not 2 <= n_labels <= len(idx) - 1:
        return float("nan")
    return float(silhouette_score(coords[idx], y[idx]))


def separation_metrics(x: np.ndarray, coords: np.ndarray, y: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """knn_accuracy, trustworthiness and silhouette for one embedding of features ``x`` with labels ``y``."""
    y = np.asarray(y)
    return {
        "knn_accuracy": knn_accuracy(coords, y, seed=seed),
        "trustworthiness": trustworthiness(x, coords, y, seed=seed),
        "silhouette": silhouette(coords, y, seed=seed),
    }
