"""Every registered classifier on small synthetic features: defaults, tuning, the validation protocol."""

import itertools

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.pipeline import Pipeline

from fmnist.classifiers import CLASSIFIERS, ClassifierSpec, build_classifier, fit_classifier
from fmnist.classifiers.svm import gamma_scale
from fmnist.data import train_val_split
from fmnist.errors import ChoiceError, ParamError


@pytest.fixture(scope="module")
def xy():
    x, y = make_classification(n_samples=400, n_features=30, n_informative=12, n_redundant=4, n_classes=10,
                               n_clusters_per_class=1, class_sep=1.5, random_state=0)
    return x.astype(np.float32), y.astype(np.int64)


def test_registry_lists_the_four_models():
    assert set(CLASSIFIERS.names()) >= {"logreg", "lda", "svm", "rf"}
    with pytest.raises(ChoiceError, match="unknown model 'knn'; choose one of: .*logreg.*svm"):
        CLASSIFIERS.get("knn")
    assert CLASSIFIERS.expand("all") == CLASSIFIERS.names()
    with pytest.raises(ChoiceError, match="unknown model 'nope'"):
        CLASSIFIERS.expand("lda,nope")


@pytest.mark.parametrize("name", CLASSIFIERS.names())
def test_defaults_fit_and_predict(name, xy):
    x, y = xy
    spec = build_classifier(name, tune=False, seed=0, n_jobs=1)
    assert isinstance(spec, ClassifierSpec) and isinstance(spec.pipeline, Pipeline) and spec.hp
    assert not spec.grid  # tune=false: fixed defaults, nothing searched
    before = spec.values()
    res = fit_classifier(spec, x[:300], y[:300], tune=False, val_fraction=0.2, seed=0, name=name)
    assert res.chosen == before and res.trials == []
    assert res.n_train == 300 and res.n_val == 60 and res.n_tune_train == 240
    assert 0.3 < res.val_accuracy <= 1.0  # 10 classes: chance is 0.1
    pred = res.model.predict(x[300:])
    assert pred.shape == (100,) and set(pred) <= set(range(10))
    assert np.mean(pred == y[300:]) > 0.3
    assert res.fit_seconds > 0


@pytest.mark.parametrize("name", CLASSIFIERS.names())
def test_tuning_picks_the_best_validation_candidate(name, xy):
    x, y = xy
    spec = build_classifier(name, tune=True, seed=0, n_jobs=1)
    assert spec.grid and set(spec.grid) <= set(spec.hp)
    res = fit_classifier(spec, x[:300], y[:300], tune=True, val_fraction=0.2, seed=0, name=name)
    sizes = [len(v(np.random.default_rng(0).random((4, 3)))) if callable(v) else len(v) for v in spec.grid.values()]
    assert len(res.trials) == int(np.prod(sizes))
    accs = [t["val_accuracy"] for t in res.trials]
    first_best = res.trials[int(np.argmax(accs))]
    assert res.val_accuracy == max(accs)
    assert {k: first_best[k] for k in spec.grid} == {k: res.chosen[k] for k in spec.grid}
    params = res.model.get_params()
    for k, v in res.chosen.items():  # the final model carries the chosen values
        assert params[spec.hp[k]] == v
    assert np.mean(res.model.predict(x[300:]) == y[300:]) > 0.3


def test_no_validation_split_means_one_fit(xy):
    x, y = xy
    res = fit_classifier(build_classifier("lda", tune=False), x, y, tune=False, val_fraction=0.0)
    assert res.val_accuracy is None and res.n_val == 0
    with pytest.raises(ParamError, match="val_fraction"):
        fit_classifier(build_classifier("lda", tune=True), x, y, tune=True, val_fraction=0.0)


def test_svm_gamma_grid_is_relative_to_scale(xy):
    x, _ = xy
    grid = build_classifier("svm", tune=True).grid["gamma"](x)
    assert grid == pytest.approx([gamma_scale(x) / 2, gamma_scale(x), gamma_scale(x) * 2])
    assert gamma_scale(x) == pytest.approx(1 / (x.shape[1] * x.var()))




def test_tuning_only_ever_sees_training_rows(xy, monkeypatch):
    """Validation rows come from the training set passed in; tuning subsamples stay inside the train part."""
    from fmnist.classifiers import tuning

    monkeypatch.setattr(tuning, "cpu_share", lambda: 1)  # the fits must run here, where they are spied on
    x, y = xy
    seen = []
    spec = build_classifier("logreg", tune=True, seed=0)
    spec.tune_max_train = 150
    est = spec.pipeline.steps[-1][1]
    cls = type(est)
    orig_fit, orig_predict = cls.fit, cls.predict

    def fit(self, X, Y, *a, **k):
        seen.append(("fit", len(X)))
        return orig_fit(self, X, Y)

    def predict(self, X):  # named: sklearn's scorers call the predict method by its __name__
        seen.append(("predict", len(X)))
        return orig_predict(self, X)

    monkeypatch.setattr(cls, "fit", fit)
    monkeypatch.setattr(cls, "predict", predict)
    res = fit_classifier(spec, x[:300], y[:300], tune=True, val_fraction=0.2, seed=0, name="logreg")
    tr, va = train_val_split(y[:300], 0.2, 0)
    assert len(set(tr) & set(va)) == 0 and len(tr) + len(va) == 300
    n_trials = len(spec.grid["C"])
    # every candidate: fit on the (capped) train part, predict the validation part; then one full refit
    assert seen == [("fit", 150), ("predict", len(va))] * n_trials + [("fit", 300)]
    assert res.n_tune_train == 150 and res.n_val == len(va)


@pytest.mark.parametrize("shrinkage", [0.01, "auto", None])
def test_cholesky_lda_matches_sklearns_lsqr_lda(shrinkage):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from fmnist.classifiers.lda import CholeskyLDA

    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 150))  # more dimensions than samples: singular unless shrunk
    y = np.arange(120) % 4
    ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage).fit(x, y)
    ours = CholeskyLDA(solver="lsqr", shrinkage=shrinkage).fit(x, y)
    scale = np.abs(ref.coef_).max()
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-8 * scale)
    assert (ours.predict(x) == ref.predict(x)).all()
    assert type(build_classifier("lda").pipeline.named_steps["lda"]) is CholeskyLDA
