"""The scattering search: candidates scored on a validation split of the training set, logged as child runs."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from fmnist import tracking
from fmnist.classifiers import build_classifier
from fmnist.errors import ChoiceError
from fmnist.search import CANDIDATES, Candidate, best, chosen, search
from fmnist.commands import scatnet_search
from fmnist.steps.search import SearchParams


def test_search_scores_candidates_without_the_test_set(tiny):
    blind = replace(tiny, x_test=None, y_test=None)  # any read of the test split would fail
    rows = search(blind, [Candidate(pca=20), Candidate(pixels=True, pca=20), Candidate(log=False, pca=10)],
                  n_train=100, val_fraction=0.1, progress=False)
    assert [r["candidate"] for r in rows] == ["J=2 L=8 log pca=20 C=10", "J=2 L=8 log +pixels pca=20 C=10",
                                              "J=2 L=8 nolog pca=10 C=10"]
    for r in rows:
        assert r["n_fit"] == 100 and r["n_val"] == 20
        assert 0.3 < r["val_accuracy"] <= 1.0  # 10 learnable blob classes: far above chance
    assert [r["dim"] for r in rows] == [20, 20, 10]


def test_virtual_examples_and_the_ensemble_are_candidates(tiny):
    from fmnist.search import score

    blind = replace(tiny, x_test=None, y_test=None)
    rows = search(blind, [Candidate(pca=20, virtual="flip"), Candidate(pca=20, virtual="shift1", of_support=True),
                          Candidate(pca=20, ensemble=True)], n_train=100, val_fraction=0.1, progress=False)
    assert [r["candidate"] for r in rows] == ["J=2 L=8 log pca=20 C=10 +virtual flip",
                                              "J=2 L=8 log pca=20 C=10 +virtual shift1 of SVs",
                                              "J=2 L=8 log pca=20 C=10 +logreg"]
    assert rows[0]["n_virtual"] == 100 and rows[2]["n_virtual"] == 0  # a copy of each fit row, none of the val rows
    assert 0 < rows[1]["n_virtual"] < 400 and rows[1]["n_virtual"] % 4 == 0  # four moves of each support vector
    assert all(0.3 < r["val_accuracy"] <= 1.0 for r in rows)
    x, y = np.ones((10, 4), np.float32), np.arange(10) % 2
    with pytest.raises(ValueError, match="never from the validation rows"):  # a copy of a validation image
        score(Candidate(pca=0, virtual="flip"), x, np.zeros((10, 2, 2), np.uint8), y, 8,
              virtual=lambda rows: (x[:1], np.zeros((1, 2, 2), np.uint8), np.array([8])))


def test_best_takes_the_highest_and_the_earlier_on_ties():
    rows = [{"candidate": "a", "val_accuracy": 0.9}, {"candidate": "b", "val_accuracy": 0.95},
            {"candidate": "c", "val_accuracy": 0.95}]
    assert best(rows)["candidate"] == "b"
    assert best([]) == {}


def test_chosen_is_the_first_within_one_standard_error():
    rows = [{"candidate": "narrow", "val_accuracy": 0.890, "n_val": 6000},
            {"candidate": "mid", "val_accuracy": 0.905, "n_val": 6000},
            {"candidate": "wide", "val_accuracy": 0.908, "n_val": 6000}]  # SE of 0.908 on 6k: 0.0037
    assert chosen(rows)["candidate"] == "mid"
    rows[1]["val_accuracy"] = 0.903
    assert chosen(rows)["candidate"] == "wide"
    assert chosen([]) == {}


def test_candidate_list_is_checked_before_any_work():
    assert SearchParams(candidates="1, 3").selected() == [CANDIDATES[0], CANDIDATES[2]]
    with pytest.raises(ChoiceError, match=f"choose all or numbers 1..{len(CANDIDATES)}"):
        SearchParams(candidates="1,99").selected()


def test_search_is_a_graph_of_cached_candidates(store, real_data_dir):
    import mlflow

    kw = dict(data_dir=str(real_data_dir), n_train=300, progress=False)
    rows = scatnet_search(candidates="1,2", **kw)
    assert [r["pca"] for r in rows] == [100, 200]
    (parent,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                   filter_string="tags.`fmnist.step` = 'scatnet-search'")
    kids = tracking.child_runs(parent.info.run_id)
    assert [k["tags"][tracking.STEP_TAG] for k in kids] == ["scatnet-candidate"] * 2
    assert {k["params"]["pca"] for k in kids} == {"100", "200"}
    assert all(0 <= k["metrics"]["val_accuracy"] <= 1 and k["tags"].get("fmnist.cache_key") for k in kids)
    win = best(rows)
    assert parent.data.tags["fmnist.search_best"] == win["candidate"]
    assert parent.data.tags["fmnist.search_chosen"] == chosen(rows)["candidate"]
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(win["val_accuracy"])
    assert tracking.artifact_local_path(parent.info.run_id, "search.png").stat().st_size > 1000
    # each candidate is cached on its own: a wider search reuses both and scores only the new one
    again = scatnet_search(candidates="1,2,3", **kw)
    assert again[:2] == rows and again[2]["pca"] == 300
    newest = mlflow.search_runs(search_all_experiments=True, output_format="list", order_by=["start_time DESC"],
                                filter_string="tags.`fmnist.step` = 'scatnet-search'")[0]
    steps = {r["cell"]: r["status"] for r in pd.read_csv(tracking.artifact_local_path(newest.info.run_id,
                                                                                      "steps.csv")).to_dict("records")}
    assert list(steps.values()) == ["cached", "cached", "ran"]
    assert len(tracking.child_runs(newest.info.run_id)) == 1


def test_svm_pca_width_follows_the_feature_and_fits_small_data():
    from fmnist.classifiers.svm import PCA_DIMS
    from fmnist.features import FEATURES

    wide = build_classifier("svm", feature="scatnet")
    assert wide.pipeline.named_steps["pca"].n_components == FEATURES.get("scatnet").fn.svm_pca_dims == 300
    for name in FEATURES.names():  # declared beside the feature's registration, or the SVM's default
        dims = build_classifier("svm", feature=name).pipeline.named_steps["pca"].n_components
        assert dims == getattr(FEATURES.get(name).fn, "svm_pca_dims", PCA_DIMS)
    assert build_classifier("svm", feature="raw").pipeline.named_steps["pca"].n_components == PCA_DIMS
    rng = np.random.default_rng(0)
    x, y = rng.random((60, 784 + 500)).astype(np.float32) + 0.01, np.arange(60) % 3  # pixels, then coefficients
    wide.pipeline.fit(x, y)  # 300 components asked, 60 samples: capped, not an error
    assert wide.pipeline.named_steps["pca"].n_components_ == 60
