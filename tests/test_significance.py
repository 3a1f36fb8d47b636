"""Intervals and paired tests against known values, and the significance table on a store built for it."""

from __future__ import annotations

import json
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from fmnist import cache, report
from fmnist.evaluation import accuracy_metrics, predictions_arrays, wilson_interval
from fmnist.significance import holm, mcnemar_exact


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (81, 263), (9204, 10000), (1, 2), (500, 1000)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_textbook_values():
    # Newcombe (1998), Table I: 81/263 -> 0.2553-0.3662; 0/10 -> 0-0.2775 (Wilson score, 95%).
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=5e-5)
    # On 10,000 test images a 92% accuracy is known to about +/- 0.53 points.
    m = accuracy_metrics(np.zeros(10000, int), np.r_[np.zeros(9200, int), np.ones(800, int)])
    assert m["test_accuracy"] == 0.92
    assert m["test_accuracy_ci_high"] - m["test_accuracy_ci_low"] == pytest.approx(0.0106, abs=2e-4)
    with pytest.raises(ValueError):
        wilson_interval(3, 0)


# (only_a, only_b) -> the p-value of the hand-written test binomtest replaced, 2 * binom.cdf(min, n, 1/2) capped at 1
MCNEMAR = {(10, 2): 0.03857421875, (0, 0): 1.0, (5, 5): 1.0, (0, 7): 0.015625, (30, 12): 0.007915897334896727,
           (400, 350): 0.07350777405843484, (1, 0): 1.0, (0, 1): 1.0, (80, 0): 1.6543612251060553e-24,
           (3, 4): 1.0, (1000, 900): 0.023108845108901193, (2000, 1900): 0.11289365225934829}


@pytest.mark.parametrize("only_a,only_b", list(MCNEMAR))
def test_mcnemar_exact_is_a_binomial_test_on_the_discordant_pairs(only_a, only_b):
    both = 50
    a = np.r_[np.ones(both + only_a, bool), np.zeros(only_b, bool)]
    b = np.r_[np.ones(both, bool), np.zeros(only_a, bool), np.ones(only_b, bool)]
    t = mcnemar_exact(a, b)
    assert (t.only_a, t.only_b) == (only_a, only_b)
    expected = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert t.p_value == pytest.approx(expected, rel=1e-12)
    assert t.p_value == pytest.approx(MCNEMAR[only_a, only_b], rel=1e-12, abs=1e-300)  # as before binomtest
    assert t.p_value <= 1.0


def test_mcnemar_textbook_value():
    # 10 vs 2 discordant pairs: p = 2 * P(X <= 2 | n=12, 1/2) = 2 * (1 + 12 + 66) / 4096.
    t = mcnemar_exact(np.r_[np.ones(10, bool), np.zeros(2, bool)], np.r_[np.zeros(10, bool), np.ones(2, bool)])
    assert t.p_value == pytest.approx(158 / 4096)
    with pytest.raises(ValueError, match="different test sets"):
        mcnemar_exact(np.ones(3, bool), np.ones(4, bool))


def test_holm():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.6]).tolist() == pytest.approx([1.0, 1.0])  # capped at 1, monotone
    assert holm([]).tolist() == []


def _cell(step: str, params: dict, label: np.ndarray, predicted: np.ndarray, tmp_path, digest: str = "d1") -> str:
    mlflow.set_experiment("fmnist")
    with mlflow.start_run() as r:
        path = tmp_path / r.info.run_id / "predictions.npz"
        sha = cache.save_arrays(path, **predictions_arrays(label, predicted))
        mlflow.log_artifact(str(path))
        mlflow.set_tags({"fmnist.step": step, "fmnist.feature_label": params.get("feature", ""),
                         "fmnist.data_digest": digest,
                         "fmnist.artifacts_sha256": json.dumps({"predictions.npz": sha})})
        mlflow.log_params({"dataset": "fashion-mnist", **params})
        mlflow.log_metrics(accuracy_metrics(label, predicted))
    time.sleep(0.01)
    return r.info.run_id


def test_significance_table_marks_a_constructed_difference_and_not_an_identical_pair(store, tmp_path):
    rng = np.random.default_rng(0)
    label = rng.integers(0, 10, 1000)
    best = label.copy()
    best[:50] = (label[:50] + 1) % 10                      # 95.0%
    close = best.copy()
    close[60] = (label[60] + 1) % 10                        # 94.9%: one image apart, no evidence either way
    worse = best.copy()
    worse[100:180] = (label[100:180] + 1) % 10              # 87.0%: 80 images only the best gets right
    _cell("classify", {"model": "svm", "feature": "scatnet"}, label, best, tmp_path)
    _cell("classify", {"model": "logreg", "feature": "scatnet"}, label, close, tmp_path)
    _cell("classify", {"model": "logreg", "feature": "raw"}, label, close, tmp_path)  # identical to the one above
    _cell("classify", {"model": "svm", "feature": "raw"}, label, worse, tmp_path)
    _cell("classify", {"model": "lda", "feature": "raw"}, label[:500], label[:500], tmp_path, digest="other")

    sig = report.significance_table()
    assert list(sig.columns) == report.SIGNIFICANCE_COLUMNS
    vs = sig[sig["family"] == "vs best"].set_index("b")
    assert set(vs["a"]) == {"SVM on scatnet"}  # the 100% on 500 other images is not paired with these
    assert set(vs.index) == {"Logistic regression on scatnet", "Logistic regression on raw", "SVM on raw"}
    near, diff = vs.loc["Logistic regression on scatnet"], vs.loc["SVM on raw"]
    assert (near["only_a"], near["only_b"], near["p_value"], near["significant"]) == (1, 0, 1.0, False)
    assert (diff["only_a"], diff["only_b"]) == (80, 0) and diff["significant"]
    assert diff["p_holm"] == pytest.approx(3 * 2 * 0.5 ** 80)  # Holm: the smallest of 3 p-values, times 3
    per_model = sig[sig["family"] == "features per model"].set_index("a")
    assert per_model["b"].to_dict() == {"Logistic regression on raw": "Logistic regression on scatnet",
                                        "SVM on raw": "SVM on scatnet"}
    same = per_model.loc["Logistic regression on raw"]
    assert (same["only_a"], same["only_b"], same["p_value"], same["significant"]) == (0, 0, 1.0, False)
    assert per_model.loc["SVM on raw", "significant"]
    assert report.tied_with_best() == ["SVM on scatnet", "Logistic regression on raw",
                                       "Logistic regression on scatnet"]
    text = " ".join(report.findings())
    assert "not significantly more accurate than Logistic regression on raw, Logistic regression on scatnet" in text
    assert "SVM: scatnet over raw." in text
    assert "Logistic regression: no feature set significantly better than another." in text
    assert "(95% CI" in text
    # scatnet has the highest average, but under logistic regression it is not significantly ahead of raw.
    assert "Highest average over classifiers: scatnet" in text and "averages only" in text


def test_answer_first_and_one_reading_per_render(store, tmp_path, monkeypatch):
    """The summary of the tests (verdict per cell, winner per classifier) agrees with the pairwise table, and
    ``report.load`` reads each run's predictions once, when a table first needs them: the others read nothing."""
    from fmnist.steps import base

    rng = np.random.default_rng(1)
    label = rng.integers(0, 10, 1000)
    best = label.copy()
    best[:50] = (label[:50] + 1) % 10                   # 95.0%
    close = best.copy()
    close[60] = (label[60] + 1) % 10                     # 94.9%: tied with the best
    worse = best.copy()
    worse[100:180] = (label[100:180] + 1) % 10           # 87.0%
    ids = [_cell("classify", {"model": "svm", "feature": "scatnet"}, label, best, tmp_path),
           _cell("classify", {"model": "svm", "feature": "raw"}, label, worse, tmp_path),
           _cell("classify", {"model": "logreg", "feature": "scatnet"}, label, close, tmp_path),
           _cell("classify", {"model": "logreg", "feature": "raw"}, label, close, tmp_path)]
    reads = []
    real = base.verify_artifacts
    monkeypatch.setattr(base, "verify_artifacts",  # a run id, or the run's info as already read
                        lambda run: reads.append(run if isinstance(run, str) else run["run_id"]) or real(run))
    searches = []
    monkeypatch.setattr(report.tracking, "search_runs",
                        lambda *a, real=report.tracking.search_runs, **k: searches.append(a[0]) or real(*a, **k))
    runs = report.load()
    assert reads == [] and searches == []  # nothing read before a table needs it
    assert report.comparison_table(runs=runs).loc["svm", "scatnet"] == pytest.approx(95.0)
    assert reads == [] and len(searches) == 1  # accuracies: the classify runs, no predictions
    summ = report.significance_summary(runs=runs)
    assert sorted(reads) == sorted(ids)  # one reading of the store: each run's predictions once
    wins = report.feature_winners(runs=runs)
    report.summary(runs=runs), report.tied_with_best(runs=runs), report.best_cell(runs=runs)
    report.significance_table(runs=runs), report.results_markdown(runs=runs)
    assert sorted(reads) == sorted(ids)  # the tables read nothing more
    assert list(summ["cell"]) == ["SVM on scatnet", "Logistic regression on raw", "Logistic regression on scatnet",
                                  "SVM on raw"]
    assert list(summ["verdict"]) == ["best", "tied with the best", "tied with the best", "significantly worse"]
    assert summ["accuracy"].tolist() == pytest.approx([95.0, 94.9, 94.9, 87.0])
    assert (summ["ci_low"] < summ["accuracy"]).all() and (summ["accuracy"] < summ["ci_high"]).all()
    assert wins.to_dict("records") == [
        {"model": "Logistic regression", "best": "scatnet", "accuracy": pytest.approx(94.9), "ahead_of": "",
         "tied_with": "raw"},
        {"model": "SVM", "best": "scatnet", "accuracy": pytest.approx(95.0), "ahead_of": "raw", "tied_with": ""}]
    report.significance_table()
    assert len(reads) == 2 * len(ids)  # a table given no runs reads the store itself

    # docs/results.md is these tables as Markdown (scripts/results_page.py writes it from a study's store)
    page = report.results_markdown(about="From one study run: `x`.").splitlines()
    assert page[:3] == ["# Results", "", "From one study run: `x`."]
    assert "| model | raw | scatnet | Average |" in page
    lo, hi = summ.loc[0, "ci_low"], summ.loc[0, "ci_high"]
    assert f"| SVM on scatnet | 95.00 | [{lo:.2f}, {hi:.2f}] | best |  |" in page
    assert any(r.startswith("| SVM on raw | 87.00 |") and "| significantly worse |" in r for r in page)
    assert "| SVM | scatnet | 95.00 | raw |  |" in page


def test_tables_are_pure_functions_of_hand_made_runs(monkeypatch):
    """No store at all: the comparison table, the paired tests and the findings from a ``Runs`` made by hand."""
    from fmnist import tracking

    monkeypatch.setattr(tracking, "search_runs", lambda *a, **k: pytest.fail("the store was read"))
    label = np.arange(600) % 10
    worse = label.copy()
    worse[:90] = (label[:90] + 1) % 10  # 85% against 100%
    rows, preds = [], {}
    for i, (feature, predicted) in enumerate((("scatnet", label), ("raw", worse))):
        run_id = f"run{i}"
        rows.append({"run_id": run_id, "params.model": "svm", "params.feature": feature,
                     "metrics.test_accuracy": float(np.mean(predicted == label)), "params.subset": "all"})
        preds[run_id] = {"test_index": np.arange(600), "label": label, "predicted": predicted, "test_split": "s",
                         "data_digest": "d"}
    runs = report.Runs("fmnist", "fashion-mnist", {"classify": pd.DataFrame(rows)}, predictions=preds)
    table = report.comparison_table(runs=runs, averages=False)
    assert table.loc["svm", "scatnet"] == 100 and table.loc["svm", "raw"] == pytest.approx(85)
    sig = report.significance_table(runs=runs)
    assert list(sig["family"]) == ["vs best", "features per model"] and sig["significant"].all()
    assert (sig["n_test"] == 600).all() and sig.loc[0, "only_a"] == 90
    assert "SVM: scatnet over raw." in " ".join(report.findings(runs=runs))
    # a table given runs is about the runs' dataset, whatever its own default
    other = report.sota_table(runs=report.Runs("fmnist", "mnist", runs.steps, predictions=preds))["method"]
    assert "DENSER" in set(other) and not any(m.startswith("WRN40-4") for m in other)
