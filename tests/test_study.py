"""The study: profiles, one parent with child runs, every step cached, failures isolated and retried."""

import sys

import mlflow
import pandas as pd
import pytest

from fmnist.errors import ChoiceError
from fmnist.study import get_profile

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_profiles_and_overrides():
    q = get_profile("quick")
    assert q.subset == 2000 and q.finetune["epochs"] == 1 and not q.tune
    assert get_profile("quick", subset=300).subset == 300 and get_profile("quick", subset=300).n_samples == 300
    assert get_profile("quick", full_data=True).subset is None
    assert get_profile("full", epochs=3).finetune["epochs"] == 3 and get_profile("full").subset is None
    with pytest.raises(ChoiceError, match="choose one of: quick, full"):
        get_profile("medium")


def test_full_profile_fine_tunes_at_a_cpu_size_on_a_cpu_only():
    from fmnist.finetune import FitConfig

    full = get_profile("full")
    assert full.finetune_for("cuda") == {}  # a GPU gets the finetune defaults
    cpu = full.finetune_for("cpu")
    assert cpu["image_size"] < FitConfig().image_size and cpu["epochs"] < FitConfig().epochs
    FitConfig(**cpu).validate()
    # explicit epochs win on every device
    assert get_profile("full", epochs=2).finetune_for("cpu")["epochs"] == 2
    assert get_profile("full", epochs=2).finetune_for("cuda")["epochs"] == 2
    assert get_profile("quick").finetune_for("cpu") == get_profile("quick").finetune_for("cuda")


def test_finetune_cache_key_follows_the_weights_auto_resolves_to(tmp_path, monkeypatch):
    import torch

    from fmnist.data import synthetic_dataset
    from fmnist.steps.finetune import FinetuneParams, finetune_key
    from fmnist.weights import build_resnet18, resolve_weights

    monkeypatch.setenv("FMNIST_OFFLINE", "1")
    ds = synthetic_dataset(60, 30, seed=0)

    def key(**kw):
        return finetune_key(FinetuneParams(**{"epochs": 1, "image_size": 32, "val_fraction": 0.1, **kw}), ds)

    # Offline without ImageNet weights, auto means random init: the same fine-tune as weights=none.
    assert resolve_weights("auto").kind == "none"
    assert key(mode="full", weights="auto") == key(mode="full", weights="none")
    path = tmp_path / "resnet18.pth"
    torch.save(build_resnet18(resolve_weights("none"), num_classes=10).state_dict(), path)
    keys = {key(mode="full", weights=w) for w in ("none", str(path))}
    keys.add(key(mode="last_layer", weights="none"))
    keys.add(key(mode="full", weights="none", epochs=2))
    assert len(keys) == 4


SMALL = dict(profile="quick", features="raw,scatnet", models="lda,logreg", methods="pca", finetune=True,
             epochs=1, weights="none", device="cpu", progress=False)


@pytest.fixture
def tiny_study(store, tiny, monkeypatch, tmp_path):
    import fmnist.steps.study as st

    monkeypatch.setattr(st, "load_dataset", lambda *a, **k: tiny)
    return dict(SMALL, report_output=str(tmp_path / "report.html"))


def _children(parent):
    return mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def test_failure_is_isolated_then_only_it_is_retried(tiny_study, monkeypatch):
    import fmnist.steps.study as st
    from fmnist.errors import FmnistError
    from fmnist.steps import visualize as vis

    real = vis.embed_and_measure

    def broken(x, y, method, **kw):
        if x.shape[1] != 784:  # scatnet's view fails, raw's works
            raise RuntimeError("injected failure")
        return real(x, y, method, **kw)

    monkeypatch.setattr(vis, "embed_and_measure", broken)
    with pytest.raises(FmnistError, match="1 step\\(s\\) failed.*visualize scatnet/pca"):
        st.run_study(**tiny_study)
    (parent,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                   filter_string="tags.`fmnist.step` = 'study'")
    assert parent.info.status == "FAILED" and "visualize scatnet/pca" in parent.data.tags["fmnist.failed_steps"]
    (child,) = [r for r in _children(parent.info.run_id) if r.info.status == "FAILED"]
    assert child.data.tags["fmnist.step"] == "visualize" and "injected failure" in child.data.tags["fmnist.error"]
    assert len([r for r in _children(parent.info.run_id) if r.info.status == "FINISHED"]) == 9
    monkeypatch.setattr(vis, "embed_and_measure", real)
    recs = st.run_study(**tiny_study)
    status = {(r.step, r.cell): r.status for r in recs}
    assert status[("visualize", "scatnet/pca")] == "ran"
    assert status[("visualize", "raw/pca")] == "cached"
    assert all(s == "cached" for (step, _), s in status.items() if step in ("extract", "classify", "finetune"))


def test_second_run_hits_the_cache_for_every_step(tiny_study):
    import fmnist.steps.study as st
    from fmnist import report

    first = st.run_study(**tiny_study)
    assert {r.status for r in first if r.step != "report"} == {"ran"}
    assert len([r for r in first if r.step == "classify"]) == 4 and len([r for r in first if r.step == "finetune"]) == 2
    second = st.run_study(**tiny_study)
    assert {r.status for r in second if r.step != "report"} == {"cached"}
    assert [r.run_id for r in first if r.step != "report"] == [r.run_id for r in second if r.step != "report"]
    # the report's table equals the runs' own metrics
    table = report.comparison_table(experiment="fmnist", dataset="synthetic")
    for r in first:
        if r.step == "classify":
            f, m = r.cell.split("/")
            assert table.loc[m, f] == pytest.approx(100 * mlflow.get_run(r.run_id).data.metrics["test_accuracy"])
    parents = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                 filter_string="tags.`fmnist.step` = 'study'")
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    first_parent = parents[-1].info.run_id
    assert len(_children(first_parent)) == 2 + 4 + 2 + 2  # extract, classify, visualize, finetune
    steps = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=first_parent, artifact_path="steps.csv"))
    assert list(steps["step"].unique()) == ["extract", "classify", "visualize", "finetune", "report"]
    assert any(a.path == "report" for a in mlflow.MlflowClient().list_artifacts(first_parent))


def test_changing_one_param_reruns_only_what_depends_on_it(tiny_study):
    import fmnist.steps.study as st

    first = {(r.step, r.cell): r for r in st.run_study(**tiny_study)}
    third = st.run_study(**dict(tiny_study, epochs=2))  # only the fine-tunes depend on epochs
    for r in third:
        if r.step == "finetune":
            assert r.status == "ran" and r.run_id != first[(r.step, r.cell)].run_id
        elif r.step != "report":
            assert r.status == "cached" and r.run_id == first[(r.step, r.cell)].run_id, (r.step, r.cell)
    assert {mlflow.get_run(r.run_id).data.params["epochs"] for r in third if r.step == "finetune"} == {"2"}


@pytest.mark.slow
def test_main_entry_point_on_real_subset(real_data_dir, store, tmp_path):
    sys.path.insert(0, str(tmp_path.parent))
    from test_e2e_extract import mlflow_run  # noqa: E402

    # methods=all and epochs=0 (the profile's) are resolved by the study: logged as methods_used/epochs_used
    params = {"subset": 300, "features": "raw,scatnet", "models": "lda,rf", "methods": "all", "epochs": 0,
              "weights": "none", "data_dir": real_data_dir, "report_output": tmp_path / "out" / "report.html"}
    p = mlflow_run("main", params, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Test accuracy" in html and "Traceback" not in html and "Error" not in html.split("Findings")[-1][:2000]
    from fmnist import report

    table = report.comparison_table(experiment="fmnist")
    assert list(table.index) == ["lda", "rf", "Average"] and list(table.columns) == ["raw", "scatnet", "Average"]
    cells = report.latest_cells("classify", ["model", "feature"], experiment="fmnist")
    for _, c in cells.iterrows():
        assert table.loc[c["model"], c["feature"]] == pytest.approx(100 * c["metrics.test_accuracy"])
    again = mlflow_run("main", params, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    (latest, _) = mlflow.search_runs(experiment_names=["fmnist"], output_format="list",
                                     filter_string="tags.`fmnist.step` = 'study'")
    steps = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=latest.info.run_id, artifact_path="steps.csv"))
    assert set(steps.loc[steps["step"] != "report", "status"]) == {"cached"}
    assert latest.data.params["methods"] == "all" and latest.data.params["methods_used"] == "pca,tsne,lle,umap"
    assert latest.data.params["epochs"] == "0" and latest.data.params["epochs_used"] == "1"
