"""Shift kinds: deterministic for a seed, graded, and one-line errors (real test images, no store)."""

import numpy as np
import pytest

from fmnist import shifts
from fmnist.errors import FmnistError


@pytest.fixture(scope="module")
def tiny_real():
    """The committed slice of the real data (1,000 train / 600 test images)."""
    from conftest import REAL_DATA
    from fmnist.data import load_dataset

    return load_dataset(data_dir=REAL_DATA)


@pytest.fixture(scope="module")
def images(tiny_real):
    return tiny_real.x_test[:64]


@pytest.mark.parametrize("kind", shifts.SHIFTS.names())
def test_each_level_is_deterministic_and_grows_with_the_level(kind, images):
    changed = []
    for level in shifts.levels(kind):
        a, b = shifts.apply(images, kind, level, seed=3), shifts.apply(images, kind, level, seed=3)
        assert a.dtype == np.uint8 and a.shape == images.shape
        assert a.tobytes() == b.tobytes()  # the same seed: byte-identical images, every model sees the same
        changed.append(np.abs(a.astype(int) - images).mean())
    assert 0 < changed[0] < changed[1] < changed[2]  # graded: each level moves the images further
    assert shifts.level_name(kind, shifts.levels(kind)[1]).startswith(f"{kind}_")


def test_a_seed_draws_per_image_and_leaves_other_draws_alone(images):
    import torch

    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    noisy = shifts.apply(images, "noise", 0.1, seed=1)
    assert torch.rand(1) == before  # its own stream: the caller's torch draws are untouched
    assert noisy.tobytes() != shifts.apply(images, "noise", 0.1, seed=2).tobytes()
    moved = shifts.apply(images, "translate", 2, seed=1)
    # four directions drawn per image: some moved left or right, some up or down
    horizontal = [np.array_equal(m[:, 2:], i[:, :-2]) or np.array_equal(m[:, :-2], i[:, 2:])
                  for m, i in zip(moved, images)]
    assert 0 < sum(horizontal) < len(images)
    assert shifts.level_name("translate", 2) == "translate_2px" and shifts.level_name("rotate", 10) == "rotate_10deg"
    assert shifts.level_name("noise", 0.1) == "noise_0.1"


def test_bad_kind_or_level_is_one_line_naming_the_choices(images):
    with pytest.raises(FmnistError, match=r"unknown shift kind 'shear'; choose one of: translate, rotate"):
        shifts.apply(images, "shear", 1, seed=0)
    with pytest.raises(FmnistError, match=r"level 4 is out of range for translate; choose one of: 1, 2, 3"):
        shifts.apply(images, "translate", 4, seed=0)


def test_a_model_on_raw_pixels_loses_accuracy_under_a_3px_translation(tiny_real):
    """A sanity check of the family, not a tuned threshold."""
    from sklearn.neighbors import NearestCentroid

    flat = lambda x: x.reshape(len(x), -1) / 255.0  # noqa: E731
    model = NearestCentroid().fit(flat(tiny_real.x_train), tiny_real.y_train)
    clean = model.score(flat(tiny_real.x_test), tiny_real.y_test)
    moved = model.score(flat(shifts.apply(tiny_real.x_test, "translate", 3, seed=0)), tiny_real.y_test)
    assert moved < clean - 0.1


def test_the_sample_nests_and_every_set_is_scored_with_an_interval(tiny_real):
    idx = shifts.shift_sample(tiny_real.y_test, 100, seed=0)
    assert set(idx) <= set(shifts.shift_sample(tiny_real.y_test, 300, seed=0))  # models on any sample meet these
    assert np.bincount(tiny_real.y_test[idx], minlength=10).tolist() == [10] * 10
    images, labels = tiny_real.x_test[idx], tiny_real.y_test[idx]
    got = shifts.shifted_sets(images, seed=0, kinds="translate,noise")
    assert list(got) == ["none", "translate_1px", "translate_2px", "translate_3px", "noise_0.05", "noise_0.1",
                         "noise_0.2"]
    assert got["none"] is images
    predicted = {name: labels if name == "none" else (labels + 1) % 10 for name in got}  # all right, all wrong
    rows = shifts.accuracy_rows(predicted, labels, kinds="translate,noise")
    assert [(r["kind"], r["level"], r["accuracy"], r["images"]) for r in rows[:2]] == [
        ("none", None, 1.0, 100), ("translate", 1, 0.0, 100)]
    assert all(r["ci_low"] - 1e-9 <= r["accuracy"] <= r["ci_high"] + 1e-9 and r["ci_high"] > r["ci_low"] for r in rows)
    m = shifts.shift_metrics(rows)
    assert m["shift/none"] == 1.0 and m["shift/translate_2px"] == 0.0 and m["shift/mean"] == 0.0


def test_the_pictures_show_every_kind_and_level(images):
    from fmnist.plots import close
    from fmnist.shifts.figures import curve_figure, examples_figure

    fig = examples_figure(images, seed=0)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 4 * len(shifts.SHIFTS.names()) and "rotate_15deg" in titles and "as is" in titles
    close(fig)
    rows = shifts.accuracy_rows({n: np.zeros(3, int) for n, *_ in shifts.sets()}, np.zeros(3, int))
    fig = curve_figure(rows, "raw / logreg")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == shifts.SHIFTS.names()
    close(fig)


def _shift_runs():
    """A hand-made ``Runs``: three classify cells and a fine-tune under every shift (200 images each), scatnet
    keeping every image under geometric shifts and losing 60 under noise, raw pixels the other way round."""
    import pandas as pd

    from fmnist import report

    label = np.arange(200) % 10
    wrong = lambda k: np.where(np.arange(200) < k, (label + 1) % 10, label)  # noqa: E731  the first k wrong
    loses = {"scatnet": {"noise": 60}, "raw": {"translate": 50, "rotate": 40, "scale": 70, "elastic": 30}}
    cells = [("scatnet", "svm", 0.92), ("scatnet", "lda", 0.90), ("raw", "svm", 0.89), ("finetune", "full", 0.91)]
    shift_rows, classify_rows, preds = [], [], {}
    for i, (feature, model, test_acc) in enumerate(cells):
        scored, run = f"scored{i}", f"shift{i}"
        p = {f"p_{name}": wrong(loses.get(feature, {}).get(kind, 0) + (5 if model == "lda" else 0))
             for name, kind, _ in shifts.sets()}
        preds[run] = {"label": label, "test_index": np.arange(1000, 1200), **p}
        row = {"run_id": run, "params.shift_n": "200", "params.kinds": "all", "tags.fmnist.scored_run": scored,
               **{f"metrics.shift/{k[2:]}": float(np.mean(v == label)) for k, v in p.items()}}
        if feature == "finetune":
            row.update({"params.scored_step": "finetune", "params.mode": model})
        else:
            row.update({"params.scored_step": "classify", "params.feature": feature, "params.model": model})
            classify_rows.append({"run_id": scored, "params.feature": feature, "params.model": model,
                                  "metrics.test_accuracy": test_acc})
        shift_rows.append(row)
    steps = {"shift": pd.DataFrame(shift_rows), "classify": pd.DataFrame(classify_rows)}
    return report.Runs("fmnist", "fashion-mnist", steps, shift_predictions=preds)


def test_the_report_compares_each_feature_set_s_best_cell_under_shift():
    from fmnist import report

    rs = _shift_runs()
    lines = report.shift_lines(runs=rs)
    # per feature set its best classifier (by the scored run's test accuracy), then the best fine-tune
    assert list(dict.fromkeys(lines["cell"])) == ["SVM on raw", "SVM on scatnet", "ResNet-18 fine-tune full"]
    kept = report.shift_kept_table(runs=rs)
    assert list(kept.columns) == ["as is", "translate_2px", "rotate_10deg", "scale_0.8", "elastic_16", "noise_0.1",
                                  "blur_1px", "mean under shift"]
    assert kept.loc["SVM on raw", "translate_2px"] == pytest.approx(75.0)  # 50 of 200 lost
    assert kept.loc["SVM on scatnet", "noise_0.1"] == pytest.approx(70.0)
    assert list(kept.index)[-1] == "ResNet-18 fine-tune full"
    sig = report.shift_significance(runs=rs).set_index("kind")
    assert (sig["a"] == "SVM on scatnet").all() and (sig["b"] == "SVM on raw").all()
    assert sig.loc["translate", "only_a"] == 50 and sig.loc["translate", "only_b"] == 0
    assert sig.loc["translate", "loss_b"] == pytest.approx(25.0) and sig.loc["translate", "loss_a"] == 0
    assert sig.loc["noise", "verdict"] == "raw loses less" and sig.loc["blur", "verdict"] == "no significant difference"
    assert list(sig.loc[sig["significant"], "verdict"].index) == ["translate", "rotate", "scale", "elastic", "noise"]
    assert sig["p_holm"].ge(sig["p_value"]).all()
    said = " ".join(report.findings(runs=rs))
    assert "Under shift (200 test images, 18 transformed sets)" in said
    assert ("scatnet loses significantly less under translate, rotate, scale, elastic; raw loses significantly "
            "less under noise; no significant difference under blur") in said
