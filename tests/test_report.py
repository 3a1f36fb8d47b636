"""Report queries against a store filled with runs shaped like the study's (names from the contract)."""

import math
import time

import mlflow
import numpy as np
import pytest

from fmnist import report


def _run(step, params, metrics, tags=None, status="FINISHED", history=None):
    mlflow.set_experiment("fmnist")
    with mlflow.start_run() as r:
        mlflow.set_tags({"fmnist.step": step, **(tags or {})})
        mlflow.log_params({"dataset": "fashion-mnist", **params})
        mlflow.log_metrics(metrics)
        for key, values in (history or {}).items():
            for step_i, v in enumerate(values, start=1):
                mlflow.log_metric(key, v, step=step_i)
    if status != "FINISHED":
        mlflow.MlflowClient().set_terminated(r.info.run_id, status)
    time.sleep(0.01)  # distinct start times: "latest" is well defined
    return r.info.run_id


ACC = {("logreg", "raw"): 0.85, ("svm", "raw"): 0.90, ("logreg", "scatnet"): 0.88, ("svm", "scatnet"): 0.91,
       ("rf", "raw"): 0.87}


@pytest.fixture
def study(store):
    _run("classify", {"model": "svm", "feature": "raw"}, {"test_accuracy": 0.10, "fit_seconds": 1})  # older
    for (m, f), a in ACC.items():
        _run("classify", {"model": m, "feature": f}, {"test_accuracy": a, "fit_seconds": 10 * a},
             tags={"fmnist.feature_label": f})
    _run("classify", {"model": "lda", "feature": "raw"}, {"test_accuracy": 0.99}, status="FAILED")
    _run("classify", {"model": "lda", "feature": "raw"}, {"test_accuracy": 0.97}, status="RUNNING")
    for f, m, knn in (("raw", "pca", 0.5), ("raw", "umap", 0.75), ("scatnet", "umap", 0.8)):
        _run("visualize", {"feature": f, "method": m, "n_samples": 500},
             {"knn_accuracy": knn, "trustworthiness": 0.9, "silhouette": 0.2, "embed_seconds": 1.0})
    _run("finetune", {"mode": "full", "weights_used": "none (random init)", "epochs": 2, "image_size": 32},
         {"test_accuracy": 0.92, "macro_f1": 0.91, "best_val_accuracy": 0.925, "best_epoch": 2},
         history={"train_loss": [1.0, 0.5], "val_accuracy": [0.8, 0.925]})
    return store


def test_comparison_table_has_report_form(study):
    t = report.comparison_table()
    assert list(t.index) == ["logreg", "svm", "rf", "Average"]  # lda only FAILED/RUNNING: absent
    assert list(t.columns) == ["raw", "scatnet", "Average"]
    assert t.loc["svm", "raw"] == pytest.approx(90.0)  # latest FINISHED run wins over the older one
    assert math.isnan(t.loc["rf", "scatnet"])
    assert t.loc["logreg", "Average"] == pytest.approx((85 + 88) / 2)
    assert t.loc["Average", "raw"] == pytest.approx((85 + 90 + 87) / 3)
    fit = report.fit_time_table()
    assert fit.loc["svm", "scatnet"] == pytest.approx(9.1)


def test_sota_table_ranks_our_best_rows(study):
    s = report.sota_table()
    ours = s[s["family"] == "this study"]
    assert len(ours) == 4  # best cell per model (3) + one fine-tune mode
    assert list(s["accuracy"]) == sorted(s["accuracy"], reverse=True)
    assert list(s["rank"]) == list(range(1, len(s) + 1))
    svm_row = ours[ours["method"].str.startswith("SVM")].iloc[0]
    assert svm_row["accuracy"] == pytest.approx(91.0) and "scatnet" in svm_row["method"]
    assert (s["source"].str.len() > 0).all()


def test_separation_finetune_curves_findings(study):
    sep = report.separation_table()
    assert list(zip(sep["feature"], sep["method"])) == [("raw", "pca"), ("raw", "umap"), ("scatnet", "umap")]
    ft = report.finetune_table()
    assert ft.loc[0, "test_accuracy"] == pytest.approx(92.0)
    # counts read as counts: "2", not "2.0" (MLflow keeps metrics as floats and params as text)
    assert [str(ft[c].dtype) for c in ("best_epoch", "epochs", "image_size")] == ["Int64"] * 3
    assert (ft.loc[0, "best_epoch"], ft.loc[0, "epochs"], ft.loc[0, "image_size"]) == (2, 2, 32)
    curves = report.learning_curves()
    assert set(curves["metric"]) == {"train_loss", "val_accuracy"}
    assert curves[curves["metric"] == "val_accuracy"]["value"].tolist() == [0.8, 0.925]
    text = " ".join(report.findings())
    assert "scatnet" in text and "SVM on scatnet with 91.00%" in text and "umap on scatnet (80.0%)" in text
    assert "92.00%" in text


def test_empty_store_gives_blanks_not_errors(store):
    assert report.comparison_table().empty and report.separation_table().empty
    assert report.finetune_table().empty and report.learning_curves().empty
    assert report.findings() == ["No finished runs found yet: run the study (`make run`) first."]
    assert (report.sota_table()["family"] != "this study").all()


@pytest.mark.slow
def test_notebook_executes_headlessly_against_a_relative_store(study, tmp_path, monkeypatch):
    """The kernel runs elsewhere: a relative default store (sqlite:///mlflow.db) must still be found."""
    from fmnist.steps.report import report_step

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri("sqlite:///mlflow.db")  # the default, relative to cwd (= tmp_path)
    out = report_step(output=str(tmp_path / "out" / "report.html"))
    html = out.read_text()
    assert "Test accuracy" in html and "91.00" in html and "SVM on scatnet" in html
    import nbformat

    outputs = [o for c in nbformat.read(out.with_suffix(".ipynb"), 4).cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    printed = " ".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    assert "runs yet" not in printed and "Creating initial MLflow database" not in printed
    (r,) = mlflow.search_runs(experiment_names=["fmnist"], output_format="list",
                              filter_string="tags.`fmnist.step` = 'report'")
    assert {a.path for a in mlflow.MlflowClient().list_artifacts(r.info.run_id, "report")} == {
        "report/report.html", "report/report.ipynb"}


@pytest.mark.slow
def test_report_is_reused_until_a_run_changes(study, tmp_path):
    """Rendering twice with no run changed executes the notebook once; a new run, or a deleted file's
    checksum failing, renders it again."""
    from fmnist.steps.report import ReportParams, render_or_reuse

    p = ReportParams(output=str(tmp_path / "a" / "report.html"))
    first = render_or_reuse(p)
    again = render_or_reuse(ReportParams(output=str(tmp_path / "b" / "report.html")))
    assert not first.cached and again.cached and again.run_id == first.run_id
    assert (tmp_path / "b" / "report.html").read_text() == (tmp_path / "a" / "report.html").read_text()
    assert (tmp_path / "b" / "report.ipynb").is_file()
    _run("classify", {"model": "lda", "feature": "scatnet"}, {"test_accuracy": 0.5})  # the store changed
    third = render_or_reuse(p)
    assert not third.cached and third.run_id != first.run_id
    reports = mlflow.search_runs(experiment_names=["fmnist"], output_format="list",
                                 filter_string="tags.`fmnist.step` = 'report'")
    assert len(reports) == 2


@pytest.mark.slow
def test_html_is_written_for_readers(study, tmp_path):
    """No code and no prompts in the HTML (the executed notebook keeps them), no warning blocks, summary first."""
    import nbformat

    from fmnist.steps.report import report_step

    out = report_step(output=str(tmp_path / "report.html"))
    html = out.read_text()
    import re

    assert "In&nbsp;[" not in html and "In [" not in html  # no prompts
    assert not re.search(r'class="[^"]*jp-InputArea-editor', html) and "hl-ipython3" not in html  # no code
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in html  # no warning blocks
    assert "Warning" not in html and "Traceback" not in html
    assert "Fashion-MNIST: features, 2-D views" in html
    assert html.index("Summary") < html.index("1. Test accuracy") < html.index("4. State of the art")
    assert "Best on scatnet: SVM, 91.00%" in html and "ResNet-18 fine-tuned (the full network) from a random initialisation, no ImageNet weights." in html
    code = [c for c in nbformat.read(out.with_suffix(".ipynb"), 4).cells if c.cell_type == "code"]
    assert code and all(c.source for c in code)  # authors keep the code


def test_sota_ranks_full_test_set_runs_and_lists_subset_runs_apart(store):
    _run("classify", {"model": "svm", "feature": "scatnet", "subset": "all"},
         {"test_accuracy": 0.92, "n_train": 60000}, tags={"fmnist.feature_label": "scatnet"})
    _run("classify", {"model": "lda", "feature": "raw", "subset": "2000"},
         {"test_accuracy": 0.99, "n_train": 1800}, tags={"fmnist.feature_label": "raw"})
    s = report.sota_table()
    ours = s[s["family"] == "this study"]
    assert list(ours["method"]) == ["SVM on scatnet (this study)"] and ours["trained_on"].iloc[0] == "60,000 train images"
    apart = report.subset_rows()
    assert list(apart["method"]) == ["LDA on raw (this study)"] and apart["trained_on"].iloc[0] == "1,800 train images"
    assert set(report.reference_results("mnist")["method"]) >= {"DENSER", "ResNet18 (flips + translation + rotation)"}
    assert report.reference_results("kmnist").empty


def test_per_class_confusions_curves_and_datasets_side_by_side(store):
    from fmnist.evaluation import slug

    classes = report.class_names("fashion-mnist", 10)
    per = {f"test_accuracy_{slug(c)}": 0.5 + 0.05 * i for i, c in enumerate(classes)}
    _run("classify", {"model": "svm", "feature": "raw"}, {"test_accuracy": 0.9, **per},
         tags={"fmnist.feature_label": "raw"})
    _run("classify", {"model": "svm", "feature": "raw", "dataset": "mnist"}, {"test_accuracy": 0.97},
         tags={"fmnist.feature_label": "raw"})
    _run("finetune", {"mode": "full", "weights_used": "none (random init)", "epochs": 1},
         {"test_accuracy": 0.8}, history={"val_accuracy": [0.8]})
    pc = report.per_class_table()
    assert list(pc.columns) == classes and pc.loc["SVM on raw", "Trouser"] == pytest.approx(55.0)
    assert report.learning_curves(min_epochs=2).empty and not report.learning_curves().empty  # one epoch: a dot
    cm = np.zeros((3, 3), int)
    cm[0, 1], cm[1, 0], cm[2, 0], cm[1, 2] = 5, 4, 7, 1
    pairs = report.most_confused(cm, ["a", "b", "c"], k=2)
    assert pairs[["class_a", "class_b", "confusions"]].values.tolist() == [["a", "b", 9], ["a", "c", 7]]
    cross = report.cross_dataset_table()
    assert cross.loc["svm", ("fashion-mnist", "raw")] == pytest.approx(90.0)
    assert cross.loc["svm", ("mnist", "raw")] == pytest.approx(97.0)


def test_named_params_and_declared_columns_are_what_steps_write():
    """``fmnist.tags`` names the params steps write and readers read, and each step declares the columns the report
    keeps of its runs (``report_columns``): every name is a param of some run in the golden run trees, and every
    declared column is on that step's runs there."""
    import json

    from fmnist import tags
    from golden import GOLDEN

    runs = [r for path in sorted(GOLDEN.glob("*.json")) for r in json.loads(path.read_text())]
    written = {k for r in runs for k in r["params"]}
    named = {v for k, v in vars(tags).items() if k.endswith("_PARAM")}
    # scatnet-search's candidates have no golden tree: test_search reads them back
    assert named - written == {tags.N_FIT_PARAM}
    assert any(k.startswith(tags.HP_PARAM_PREFIX) for k in written)
    # the golden studies measure classify cells under shift, not fine-tunes: test_shift_step reads those back
    unseen = {"shift": {tags.param_col(tags.MODE_PARAM), tags.param_col(tags.WEIGHTS_PARAM)}}
    for name, step in report.READ.items():
        of_step = [r for r in runs if r["tags"].get(tags.STEP_TAG) == name]
        assert of_step and set(step.report_cell) <= {c.partition(".")[2] for c in step.report_columns}
        for col in set(step.report_columns) - unseen.get(name, set()):
            kind, _, key = col.partition(".")
            assert "*" in key or any(key in r[kind] for r in of_step), f"{name} runs never write {col}"


def test_a_loaded_step_holds_the_columns_its_step_declares(study):
    import fnmatch

    rs = report.load()
    for name, step in report.READ.items():
        if name == "shift":  # none in this store: test_shift_step checks them
            continue
        cols = rs.step(name).columns
        assert len(cols) and all(any(fnmatch.fnmatchcase(c, k) for k in (*report.RUN_COLUMNS, *step.report_columns))
                                 for c in cols), (name, list(cols))
    assert "metrics.fit_seconds" in rs.step("classify") and "tags.mlflow.runName" not in rs.step("classify")
    assert "tags.mlflow.runName" in report.runs("classify")  # without runs: every column, as search_runs has them
