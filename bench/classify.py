"""Fit + predict time and test accuracy of every classifier (tune=false) on raw and scatnet features.

    flock /tmp/fmnist-cpu.lock python bench/classify.py [--data-dir DIR] [--features raw,scatnet]
        [--models all] [--baseline-features raw] [--svc-baseline-n 60000]

Uses the full training set (60k) and test set (10k) and the same pipelines as ``fmnist classify
--tune false`` (one fit on all training images, no validation fit). Then, for comparison, the plain
scikit-learn defaults a user would write by hand on the same features: LogisticRegression(),
LinearDiscriminantAnalysis(), SVC(), RandomForestClassifier(). Target: the 4 x 2 grid in < 20 min on
2 CPU cores.
"""

from __future__ import annotations

import time
import warnings

import click
import numpy as np

from _data import bench_data_dir, data_dir_option  # bench/ is sys.path[0] when run as python bench/x.py
from fmnist.classifiers import CLASSIFIERS, build_classifier, fit_classifier
from fmnist.data import load_dataset, stratified_indices
from fmnist.features import FEATURES, extract_features


def _baselines():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    return {"logreg": LogisticRegression(), "lda": LinearDiscriminantAnalysis(), "svm": SVC(),
            "rf": RandomForestClassifier()}


def _row(feature, model, what, n_train, fit_s, pred_s, acc, note=""):
    print(f"{feature:8} {model:7} {what:34} {n_train:6d} {fit_s:8.1f} {pred_s:8.1f} {acc * 100:7.2f}  {note}",
          flush=True)


@click.command()
@data_dir_option
@click.option("--features", default="raw,scatnet", show_default=True)
@click.option("--models", default="all", show_default=True)
@click.option("--baseline-features", default="raw", show_default=True,
              help="Features to also time the hand-written scikit-learn defaults on ('' for none).")
@click.option("--svc-baseline-n", type=int, default=60000, show_default=True,
              help="Training images for the SVC() baseline (it is the slow one; fewer = stratified subset).")
@click.option("--subset", type=int, default=None, help="Stratified subset of each split (quick trial runs).")
def main(data_dir, features, models, baseline_features, svc_baseline_n, subset):
    ds = load_dataset(data_dir=bench_data_dir(data_dir), subset=subset)
    print(f"train {len(ds.y_train)}, test {len(ds.y_test)}; tune=false pipelines (fmnist.classifiers) "
          f"vs plain scikit-learn defaults", flush=True)
    t_all = time.perf_counter()
    rows = []
    for feature in FEATURES.expand(features):
        t = time.perf_counter()
        x_train = extract_features(feature, ds.x_train, progress=False)
        x_test = extract_features(feature, ds.x_test, progress=False)
        p = FEATURES.get(feature).params
        print(f"\n{feature} {p or ''}: {x_train.shape[1]}-d, extracted in {time.perf_counter() - t:.1f}s", flush=True)
        print(f"{'feature':8} {'model':7} {'pipeline':34} {'n_train':>6} {'fit_s':>8} {'pred_s':>8} {'acc_%':>7}")
        for model in CLASSIFIERS.expand(models):
            spec = build_classifier(model, tune=False, seed=0, feature=feature)
            res = fit_classifier(spec, x_train, ds.y_train, tune=False, val_fraction=0.0, seed=0, name=model)
            t = time.perf_counter()
            acc = float(np.mean(res.model.predict(x_test) == ds.y_test))
            pred_s = time.perf_counter() - t
            what = "+".join(name for name, _ in res.model.steps)
            note = ""
            if model == "rf":  # forests grow with the data: what logging the model costs
                import pickle

                note = f"model {len(pickle.dumps(res.model)) / 2**20:.0f} MB pickled"
            _row(feature, model, f"fmnist: {what}", len(ds.y_train), res.fit_seconds, pred_s, acc, note)
            rows.append((feature, model, res.fit_seconds + pred_s))
            if feature in baseline_features.split(",") and model in _baselines():
                est = _baselines()[model]
                idx = np.arange(len(ds.y_train))
                if model == "svm" and svc_baseline_n < len(idx):
                    idx = stratified_indices(ds.y_train, svc_baseline_n, 0)
                t = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # LogisticRegression() stops at max_iter=100 and says so
                    est.fit(x_train[idx], ds.y_train[idx])
                fit_s = time.perf_counter() - t
                t = time.perf_counter()
                acc = float(np.mean(est.predict(x_test) == ds.y_test))
                _row(feature, model, f"sklearn default: {type(est).__name__}()", len(idx), fit_s,
                     time.perf_counter() - t, acc)
    grid = sum(s for *_, s in rows)
    print(f"\nfmnist grid ({len(rows)} cells, tune=false): fit+predict {grid / 60:.1f} min "
          f"(target < 20 min); whole bench {(time.perf_counter() - t_all) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
