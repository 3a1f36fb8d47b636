"""``fmnist shift`` on the real slice: the scored models meet the same shifted images, the shifted features are
computed once per feature set, and what the untransformed sample scores is what the scored run predicted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fmnist import tracking

pytestmark = pytest.mark.slow  # a module-wide store of real runs (about 30 s): the whole suite, not the inner loop

MINI = Path(__file__).resolve().parent / "data" / "fashion-mnist-mini"
SHIFT_N = 100


@pytest.fixture(scope="module")
def measured(tmp_path_factory, _migrated_store):
    """Four classifiers on raw pixels and a 1-epoch CPU fine-tune, each measured under shift (SHIFT_N images);
    how many times the shifted images were turned into features. (URI, rows, fine-tune run, extractions)."""
    from conftest import copy_store, reset_store, use_store

    from fmnist.commands.shift import shift
    from fmnist.steps import shift as shift_step
    from fmnist.steps.finetune import finetune

    uri = copy_store(_migrated_store, tmp_path_factory.mktemp("shift"))
    extractions = []
    real = shift_step.extract_features
    with pytest.MonkeyPatch.context() as m:
        use_store(uri, m)
        m.setenv("FMNIST_DATA_DIR", str(MINI))
        m.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        m.setattr(shift_step, "extract_features", lambda name, x, *a, **k: extractions.append(len(x)) or real(
            name, x, *a, **k))
        rows = shift(feature="raw", model="all", tune=False, subset=300, shift_n=SHIFT_N, progress=False)
        ft = finetune(mode="last_layer", epochs=1, image_size=32, weights="none", device="cpu", subset=300,
                      progress=False)["run_id"]
        ft_rows = shift(run=ft, shift_n=SHIFT_N, subset=300, progress=False)
        reset_store()
    return uri, rows, ft, ft_rows, extractions


@pytest.fixture
def store_of(measured, monkeypatch):
    from conftest import use_store

    use_store(measured[0], monkeypatch)
    monkeypatch.setenv("FMNIST_DATA_DIR", str(MINI))
    return measured


def _runs(step: str) -> list[dict]:
    found = tracking.search_runs(f"tags.`fmnist.step` = '{step}'")
    return [tracking.get_run_info(r) for r in found["run_id"]]


def test_four_classifiers_share_one_extraction_of_the_shifted_images(store_of):
    from fmnist.shifts import sets

    _, rows, _, _, extractions = store_of
    assert len(_runs("shift-features")) == 1 and extractions == [SHIFT_N * len(sets())]
    assert {r["cell"] for r in rows} == {f"classify:raw/{m}" for m in ("logreg", "lda", "svm", "rf")}
    shifts = _runs("shift")
    assert len(shifts) == 5 and all(r["status"] == "FINISHED" for r in shifts)
    one = shifts[0]
    assert {"shift/none", "shift/translate_2px", "shift/rotate_10deg", "shift/noise_0.1", "shift/mean"} <= set(
        one["metrics"])
    scored = tracking.get_run_info(one["tags"]["fmnist.scored_run"])
    assert scored["tags"]["fmnist.step"] in ("classify", "finetune")
    import mlflow

    def artifacts(run):
        return {f.path for f in mlflow.MlflowClient().list_artifacts(run["run_id"])}

    assert {"shift.csv", "shift_predictions.npz", "shift.png"} <= artifacts(one)
    assert {"shift_features.npz", "shift_examples.png"} <= artifacts(_runs("shift-features")[0])


@pytest.mark.parametrize("kind", ["classify", "finetune"])
def test_the_untransformed_sample_scores_what_the_scored_run_predicted(store_of, kind):
    from fmnist.steps.base import load_predictions, verify_artifacts

    run = next(r for r in _runs("shift") if r["params"]["scored_step"] == kind)
    scored = load_predictions(run["tags"]["fmnist.scored_run"])
    with np.load(verify_artifacts(run)["shift_predictions.npz"]) as z:
        idx, none = z["test_index"], z["p_none"]
    at = {i: p for i, p in zip(scored["test_index"], scored["predicted"])}
    assert set(idx) <= set(at)  # the shift sample lies inside the run's own test sample (samples nest)
    assert np.array_equal(none, [at[i] for i in idx])
    assert run["metrics"]["shift/none"] == pytest.approx(np.mean(none == z_labels(run)))


def z_labels(run: dict) -> np.ndarray:
    from fmnist.steps.base import verify_artifacts

    with np.load(verify_artifacts(run)["shift_predictions.npz"]) as z:
        return z["label"]


def test_a_model_that_reads_the_pixels_meets_the_shifted_pixels(store_of, tmp_path, monkeypatch):
    """The SVM on scatnet reads the pixels beside the coefficients: under shift, both come from the same images."""
    from conftest import copy_store, use_store

    from fmnist.commands.shift import shift

    use_store(copy_store(Path(store_of[0].removeprefix("sqlite:///")), tmp_path), monkeypatch)  # the module's stays
    from fmnist.shifts import shifted_sets
    from fmnist.steps.base import verify_artifacts

    # small coefficients (J=1, L=2, order 1): the pixels are what this test is about
    shift(feature="scatnet", model="svm", tune=False, subset=300, shift_n=SHIFT_N, progress=False, J=1, L=2,
          max_order=1)
    run = next(r for r in _runs("shift") if r["params"].get("feature") == "scatnet")
    predictor = tracking.load_predictor(tracking.run_model_uri(run["tags"]["fmnist.scored_run"]))
    assert predictor.pixels
    from fmnist.data import load_dataset

    with np.load(verify_artifacts(run)["shift_predictions.npz"]) as z:
        idx, got = z["test_index"], {k[2:]: z[k] for k in z.files if k.startswith("p_")}
    images = load_dataset(data_dir=MINI, download=False).x_test[idx]
    for name, shifted in shifted_sets(images, 0).items():
        assert np.array_equal(got[name], predictor.predict_arrays(shifted)[0]), name


def test_a_second_command_reuses_every_cell(store_of):
    from fmnist.commands.shift import shift

    before = len(tracking.search_runs(""))
    shift(feature="raw", model="lda", tune=False, subset=300, shift_n=SHIFT_N, progress=False)
    assert len(_runs("shift")) == 5 and len(_runs("shift-features")) == 1
    assert len(tracking.search_runs("")) == before  # one cell: no parent, nothing new


@pytest.mark.parametrize("args, says", [
    (["--kinds", "shear"], "unknown shift kind 'shear'; choose one of: translate, rotate"),
    (["--run", "RUN"], "is not a FINISHED classify or finetune run"),
    (["--model", "none"], "nothing to measure; give --model, --finetune or --run"),
])
def test_bad_input_is_one_line_and_leaves_nothing_running(store_of, capsys, args, says):
    from fmnist.cli import cli, run_cli

    extract = _runs("extract")[0]["run_id"]
    before = len(tracking.search_runs(""))
    with pytest.raises(SystemExit) as e:
        run_cli(cli, ["shift", "--subset", "300", "--shift-n", str(SHIFT_N), "--no-progress",
                      *[extract if a == "RUN" else a for a in args]])
    assert e.value.code != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert says in err[-1]
    runs = tracking.search_runs("")
    assert len(runs) == before and "RUNNING" not in set(runs["status"])


def test_the_report_tabulates_every_model_under_every_shift(store_of):
    import fnmatch

    from fmnist import report
    from fmnist.shifts import sets

    rs = report.load(experiment=None)
    for col in report.SHIFT.report_columns:  # what the shift step declares, its runs write
        assert any(fnmatch.fnmatchcase(c, col) for c in report.runs("shift").columns), col
    t = report.shift_table(runs=rs)
    assert set(t["cell"]) == {"Logistic regression on raw", "LDA on raw", "SVM on raw", "Random forest on raw",
                              "ResNet-18 fine-tune last_layer"}
    assert len(t) == 5 * len(sets()) and (t["images"] == SHIFT_N).all()
    row = t[(t["cell"] == "LDA on raw") & (t["set"] == "translate_2px")].iloc[0]
    run = tracking.get_run_info(row["run_id"])
    assert row["kind"] == "translate" and row["level"] == 2
    assert row["accuracy"] == pytest.approx(100 * run["metrics"]["shift/translate_2px"])
    assert row["ci_low"] < row["accuracy"] < row["ci_high"]
    # the report's section: raw pixels' best classifier (by its run's test accuracy) and the fine-tune, every
    # cell at the middle levels; no scattering cell here, so no paired test between feature sets
    classify = report.latest_cells("classify", ["model", "feature"], runs=rs)
    best = classify.loc[classify["metrics.test_accuracy"].idxmax()]
    lines = report.shift_lines(runs=rs)
    assert list(dict.fromkeys(lines["cell"])) == [f"{report.MODEL_NAMES[best['model']]} on raw",
                                                  "ResNet-18 fine-tune last_layer"]
    assert len(report.shift_kept_table(runs=rs)) == 5 and report.shift_significance(runs=rs).empty
