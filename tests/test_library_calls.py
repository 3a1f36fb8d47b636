"""Library calls where the code was hand-written (scipy's binomtest, sklearn's metrics and GridSearchCV): the same
results as the hand-written code gave, on fixed inputs. The expected literals were computed with that code (McNemar's:
tests/test_significance.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification

from fmnist.classifiers import CLASSIFIERS, build_classifier, fit_classifier, tuning
from fmnist.data import stratified_indices, train_val_split
from fmnist.evaluation import classification_report, confusion, wilson_interval

# (correct, n) -> the hand-written Wilson interval at Z95
WILSON_95 = {
    (0, 1): (0.0, 0.7934506856227626),
    (1, 1): (0.20654931437723745, 1.0),
    (0, 10): (0.0, 0.2775327998628892),
    (10, 10): (0.7224672001371107, 0.9999999999999999),
    (81, 263): (0.2552885198782742, 0.36620957698280004),
    (9204, 10000): (0.9149320375433965, 0.9255450966265386),
    (1, 2): (0.09453120573423074, 0.9054687942657693),
    (500, 1000): (0.4690696003681042, 0.5309303996318958),
    (3, 7): (0.15821985525146975, 0.7495416354723428),
    (9999, 10000): (0.9994337311025987, 0.9999823473263989),
    (1, 10000): (1.765267360112231e-05, 0.0005662688974013381),
    (0, 10000): (0.0, 0.00038399837067659573),
    (10000, 10000): (0.9996160016293234, 1.0),
}


@pytest.mark.parametrize("k,n", list(WILSON_95))
def test_wilson_interval_as_before(k, n):
    lo, hi = wilson_interval(k, n)
    assert (lo, hi) == pytest.approx(WILSON_95[k, n], abs=1e-12)
    assert 0.0 <= lo <= hi <= 1.0
    if k == 0:
        assert lo == 0.0
    if k == n:
        assert hi == pytest.approx(1.0, abs=1e-15)


def test_wilson_interval_other_z_and_bad_counts():
    # z=1 (a 68.3% interval): scipy gets the confidence level, 2 Phi(z) - 1
    assert wilson_interval(81, 263, z=1.0) == pytest.approx((0.2802895910729378, 0.3371346513513047), abs=1e-12)
    assert wilson_interval(3, 7, z=1.0) == pytest.approx((0.2623087779433162, 0.6126912220566838), abs=1e-12)
    for k, n in [(3, 0), (0, 0), (-1, 5), (6, 5)]:
        with pytest.raises(ValueError, match="need 0 <= correct <= n"):
            wilson_interval(k, n)




def test_classification_report_as_before_with_absent_classes():
    # class 4 ("e") is predicted but never true; class 5 ("f") is neither: macro_f1 averages over a-d only
    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 0, 1])
    y_pred = np.array([0, 1, 1, 1, 2, 2, 4, 3, 0, 3, 0, 4])
    r = classification_report(y_true, y_pred, ["a", "b", "c", "d", "e", "f"])
    assert r["accuracy"] == 0.5833333333333334
    assert r["macro_f1"] == pytest.approx(0.6345238095238095, abs=1e-12)
    assert r["per_class_accuracy"] == {"a": 0.6666666666666666, "b": 0.5, "c": 0.5, "d": 0.6666666666666666,
                                       "e": 0.0, "f": 0.0}
    assert r["confusion"].dtype == np.int64
    assert r["confusion"].tolist() == [[2, 1, 0, 0, 0, 0], [0, 2, 1, 0, 1, 0], [0, 0, 1, 0, 1, 0],
                                       [1, 0, 0, 2, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]


def test_classification_report_edge_cases_as_before():
    r = classification_report(np.array([1, 1, 2]), np.array([0, 0, 0]), ["a", "b", "c"])  # nothing right
    assert (r["accuracy"], r["macro_f1"]) == (0.0, 0.0)
    assert r["confusion"].tolist() == [[0, 0, 0], [2, 0, 0], [1, 0, 0]]
    r = classification_report(np.array([], int), np.array([], int), ["a", "b"])  # no images
    assert (r["accuracy"], r["macro_f1"]) == (0.0, 0.0) and r["confusion"].tolist() == [[0, 0], [0, 0]]
    rng = np.random.default_rng(0)
    yt = rng.integers(0, 10, 1000)
    yp = np.where(rng.random(1000) < 0.8, yt, rng.integers(0, 10, 1000))
    yt[yt == 7] = 6  # class 7 absent from y_true, still predicted
    r = classification_report(yt, yp, [str(i) for i in range(10)])
    assert r["accuracy"] == 0.739 and r["macro_f1"] == pytest.approx(0.7967525873616805, abs=1e-12)
    with pytest.raises(ValueError, match="labels outside 0..2"):
        confusion(np.array([0, 3]), np.array([0, 1]), 3)


@pytest.fixture(scope="module")
def xy():
    x, y = make_classification(n_samples=300, n_features=20, n_informative=10, n_redundant=4, n_classes=5,
                               n_clusters_per_class=1, class_sep=1.0, random_state=1)
    return x.astype(np.float32), y.astype(np.int64)


def _todays_search(spec, x, y, tr, va):
    """The hand-written search ``GridSearchCV`` replaced: every candidate in grid order, the first best kept."""
    pipe = spec.pipeline
    x_tr, x_va = x[tr], x[va]
    if len(pipe.steps) > 1:
        pre = clone(pipe[:-1])
        x_tr = pre.fit_transform(x_tr, y[tr])
        x_va = pre.transform(x_va)
    grid = {k: (v(x_tr) if callable(v) else list(v)) for k, v in spec.grid.items()}
    combos = [dict(zip(grid, vals)) for vals in itertools.product(*grid.values())]
    last, est0 = pipe.steps[-1]
    accs, best = [], None
    for values in combos:
        est = clone(est0).set_params(**{spec.hp[k][len(last) + 2:]: v for k, v in values.items()})
        est.fit(x_tr, y[tr])
        acc = float(np.mean(est.predict(x_va) == y[va]))
        accs.append(acc)
        if best is None or acc > best[0]:
            best = (acc, values)
    return combos, accs, best


# two candidates at once (threads): on one model with preprocessing (svm) and one without (lda)
@pytest.mark.parametrize("name, jobs", [(n, 1) for n in CLASSIFIERS.names()] + [("svm", 2), ("lda", 2)])
def test_grid_search_selects_as_the_hand_written_loop(name, jobs, xy, monkeypatch):
    monkeypatch.setattr(tuning, "cpu_share", lambda: jobs)
    x, y = xy
    spec = build_classifier(name, tune=True, seed=0, n_jobs=1)
    if spec.tune_max_train:
        spec.tune_max_train = 150  # the stratified tuning subsample, as on 60k images
    tr, va = train_val_split(y, 0.2, 0)
    if spec.tune_max_train and len(tr) > spec.tune_max_train:
        tr = tr[stratified_indices(y[tr], spec.tune_max_train, 0)]
    today = build_classifier(name, tune=True, seed=0, n_jobs=1)
    tuning._fit_components(today.pipeline, n_samples=int(len(y) * 0.8), n_features=x.shape[1])  # as fit_classifier
    combos, accs, (best_acc, best) = _todays_search(today, x, y, tr, va)

    res = fit_classifier(spec, x, y, tune=True, val_fraction=0.2, seed=0, name=name)
    assert [{k: t[k] for k in spec.grid} for t in res.trials] == combos  # same candidates, same order
    assert [t["val_accuracy"] for t in res.trials] == accs
    assert res.val_accuracy == best_acc
    assert {k: res.chosen[k] for k in spec.grid} == best
    assert res.n_tune_train == len(tr)
    table = res.tuning_table
    assert len(table) == len(combos) and table["split0_test_score"].tolist() == accs
    assert {"val_accuracy", "seconds", "mean_test_score", "rank_test_score", "params"} <= set(table.columns)
    # the refit on the whole training set carries the chosen values
    params = res.model.get_params()
    assert all(params[spec.hp[k]] == v for k, v in best.items())


def test_search_jobs_capped_to_the_cpu_share(monkeypatch):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.svm import SVC

    monkeypatch.setattr(tuning, "cpu_share", lambda: 4)
    assert tuning.search_jobs(SVC(), 9) == 4
    assert tuning.search_jobs(SVC(), 3) == 3
    assert tuning.search_jobs(RandomForestClassifier(n_jobs=-1), 4) == 1  # parallel itself: one at a time
    assert tuning.search_jobs(RandomForestClassifier(n_jobs=1), 4) == 4
    monkeypatch.undo()
    assert 1 <= tuning.cpu_share()
