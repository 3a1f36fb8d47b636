"""The study: profiles, one parent with child runs, every step cached, failures isolated and retried."""

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from fmnist.errors import ChoiceError, ParamError
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

    from fmnist.finetune.train import FAST_RECIPE
    from fmnist.steps.finetune import FinetuneParams

    full = get_profile("full")
    assert full.finetune_for("cuda") == {"recipe": "fast"}  # a GPU gets the fast recipe, with its settings
    fast = FinetuneParams(**full.finetune_for("cuda"))
    assert {k: getattr(fast, k) for k in FAST_RECIPE} == FAST_RECIPE
    assert FinetuneParams(recipe="fast", epochs=3).epochs == 3  # a setting given wins over the recipe's
    cpu = full.finetune_for("cpu")
    assert cpu["recipe"] == "standard" and FinetuneParams(**cpu).batch_size == FitConfig().batch_size
    assert cpu["image_size"] < FitConfig().image_size and cpu["epochs"] < FitConfig().epochs
    FitConfig(**cpu).validate()
    # explicit epochs win on every device
    assert get_profile("full", epochs=2).finetune_for("cpu")["epochs"] == 2
    assert get_profile("full", epochs=2).finetune_for("cuda")["epochs"] == 2
    assert get_profile("quick").finetune_for("cpu") == get_profile("quick").finetune_for("cuda")


def test_finetune_cache_key_follows_the_weights_auto_resolves_to(tmp_path, monkeypatch):
    import torch

    from fmnist.data import synthetic_dataset
    from fmnist.steps.finetune import FINETUNE, FinetuneParams
    from fmnist.weights import build_resnet18, resolve_weights

    monkeypatch.setenv("FMNIST_OFFLINE", "1")
    ds = synthetic_dataset(60, 30, seed=0)

    def key(**kw):
        return FINETUNE.key(FinetuneParams(**{"epochs": 1, "image_size": 32, "val_fraction": 0.1, **kw}), ds)

    # Offline without ImageNet weights, auto means random init: the same fine-tune as weights=none.
    assert resolve_weights("auto").kind == "none"
    assert key(mode="full", weights="auto") == key(mode="full", weights="none")
    path = tmp_path / "resnet18.pth"
    torch.save(build_resnet18(resolve_weights("none"), num_classes=10).state_dict(), path)
    keys = {key(mode="full", weights=w) for w in ("none", str(path))}
    keys.add(key(mode="last_layer", weights="none"))
    keys.add(key(mode="full", weights="none", epochs=2))
    assert len(keys) == 4


SMALL = dict(profile="quick", features="raw,scatnet", models="lda,logreg", methods="pca", finetune=True, shift=False,
             epochs=1, weights="none", device="cpu", progress=False)


@pytest.fixture
def tiny_study(store, tiny, monkeypatch, tmp_path):
    import fmnist.commands.study as st

    monkeypatch.setattr(st, "load_dataset", lambda *a, **k: tiny)
    return dict(SMALL, report_output=str(tmp_path / "report.html"))


@pytest.fixture(scope="module")
def _finished(tmp_path_factory, _migrated_store, tiny):
    """The tiny study run once, in a store of its own: (its database, its records)."""
    import fmnist.commands.study as st
    from conftest import copy_store, reset_store, use_store

    d = tmp_path_factory.mktemp("finished-study")
    uri = copy_store(_migrated_store, d)
    with pytest.MonkeyPatch.context() as m:
        m.chdir(d)  # the artifacts beside the database, where copy_store finds them
        use_store(uri, m)
        m.setattr(st, "load_dataset", lambda *a, **k: tiny)
        try:
            records = st.run_study(**dict(SMALL, report_output=str(d / "report.html")))
        finally:
            reset_store()
    return d / "mlflow.db", records


@pytest.mark.slow  # it pays for the finished tiny study, as the other tests of it do
def test_the_study_leaves_the_golden_run_tree(_finished):
    from golden import assert_golden

    assert_golden("study-serial", f"sqlite:///{_finished[0]}")  # every step once: tests/golden/study-serial.json


@pytest.fixture
def finished_study(_finished, tiny_study, tmp_path, monkeypatch):
    """``tiny_study``'s params on a copy of a store where that study has already run once; its records."""
    from conftest import copy_store, use_store

    db, records = _finished
    use_store(copy_store(db, tmp_path), monkeypatch)  # replaces the empty store tiny_study made
    return tiny_study, records


def _children(parent):
    return mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string=f"tags.mlflow.parentRunId = '{parent}'")


@pytest.mark.slow  # two tiny studies (about 20 s): the whole suite, not the inner loop
def test_failure_is_isolated_then_only_it_is_retried(tiny_study, monkeypatch):
    import fmnist.commands.study as st
    from fmnist.errors import FmnistError
    from fmnist.steps import visualize as vis

    real = vis.embed_and_measure

    def broken(x, y, method, **kw):
        if x.shape[1] != 784:  # scatnet's view fails, raw's works
            raise RuntimeError("injected failure")
        return real(x, y, method, **kw)

    monkeypatch.setattr(vis, "embed_and_measure", broken)
    tiny_study = dict(tiny_study, report=False)  # not about the report: the cells only
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


@pytest.mark.slow
def test_second_run_hits_the_cache_for_every_step(finished_study):
    import fmnist.commands.study as st
    from fmnist import report

    tiny_study, first = finished_study
    assert {r.status for r in first if r.step != "report"} == {"ran"}
    assert len([r for r in first if r.step == "classify"]) == 4 and len([r for r in first if r.step == "finetune"]) == 2
    second = st.run_study(**tiny_study)
    assert {r.status for r in second} == {"cached"}  # the report too: no run changed since the first
    cells = ("report", "register")  # neither is a cell of its own: the report's run is new, register's is the parent
    assert [r.run_id for r in first if r.step not in cells] == [r.run_id for r in second if r.step not in cells]
    # the best cell per feature (and of fine-tuning) is registered once: the champion; the cached re-run adds none.
    # Its names carry the dataset: fmnist-<feature> is Fashion-MNIST's, this study's data is "synthetic"
    assert report.registry_table().empty
    reg = report.registry_table(dataset="synthetic").set_index("model")
    assert list(reg.index) == ["synthetic-finetune", "synthetic-raw", "synthetic-scatnet"] and set(reg["versions"]) == {1}
    for group in ("raw", "scatnet", "finetune"):
        cands = [r.run_id for r in first if (r.step == "finetune" if group == "finetune" else
                                             r.step == "classify" and r.cell.startswith(group + "/"))]
        best = max(cands, key=lambda i: mlflow.get_run(i).data.metrics["test_accuracy"])
        assert reg.loc[f"synthetic-{group}", "champion run"] == best
        assert reg.loc[f"synthetic-{group}", "champion"].startswith("v1: ") and reg.loc[f"synthetic-{group}", "challenger"] == ""
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
    assert list(steps["step"].unique()) == ["extract", "classify", "visualize", "finetune", "register", "report"]
    assert all(any(a.path == "report" for a in mlflow.MlflowClient().list_artifacts(p.info.run_id))
               for p in parents)  # a reused report is logged onto the new parent as well


@pytest.mark.slow
def test_changing_one_param_reruns_only_what_depends_on_it(finished_study):
    import fmnist.commands.study as st

    tiny_study, records = finished_study
    first = {(r.step, r.cell): r for r in records}
    third = st.run_study(**dict(tiny_study, epochs=2, report=False))  # only the fine-tunes depend on epochs
    for r in third:
        if r.step == "finetune":
            assert r.status == "ran" and r.run_id != first[(r.step, r.cell)].run_id
        elif r.step == "register":  # the new fine-tunes' best is a new version; nothing else changed
            assert r.status == "ran"
        elif r.step != "report":
            assert r.status == "cached" and r.run_id == first[(r.step, r.cell)].run_id, (r.step, r.cell)
    assert {mlflow.get_run(r.run_id).data.params["epochs"] for r in third if r.step == "finetune"} == {"2"}
    from fmnist import report

    reg = report.registry_table(dataset="synthetic").set_index("model")
    assert reg.loc["synthetic-finetune", "versions"] == 2 and reg.loc["synthetic-raw", "versions"] == 1
    from fmnist import tracking

    newest = tracking.model_versions("synthetic-finetune")[0]  # champion only if significantly better than v1
    assert newest.version == "2" and mlflow.get_run(newest.run_id).data.params["epochs"] == "2"
    # on 100 shared test images: too few to compare (at least 500), so the challenger, and it says so
    assert newest.aliases == ("challenger",) and newest.tags["fmnist.compared_on"] == "100"
    assert "share 100 test images, fewer than the 500" in newest.tags["fmnist.promotion"]
    # report=False: no report step, nothing written where it would go
    assert "report" not in {r.step for r in third} and not Path(tiny_study["report_output"]).exists()


def test_two_seeds_give_mean_and_std_cells(store, monkeypatch, tmp_path):
    """Each seed draws its own data and is its own cached cells; the report shows mean +/- std over seeds."""
    import fmnist.commands.study as st
    from fmnist import report
    from fmnist.data import synthetic_dataset

    drawn = []

    def load(*a, seed=0, **k):
        drawn.append(seed)
        return synthetic_dataset(n_train=200, n_test=100, seed=seed)

    monkeypatch.setattr(st, "load_dataset", load)
    kw = dict(SMALL, features="raw", models="lda,logreg", finetune=False, report=False)  # the report's API reads it
    recs = st.run_study(**kw, seeds="3,4")
    assert sorted(set(drawn)) == [3, 4]
    cells = sorted(r.cell for r in recs if r.step == "classify")
    assert cells == ["raw/lda@seed=3", "raw/lda@seed=4", "raw/logreg@seed=3", "raw/logreg@seed=4"]
    assert len({r.run_id for r in recs if r.step == "extract"}) == 2  # other images per seed: two extracts
    acc = {r.cell: mlflow.get_run(r.run_id).data.metrics["test_accuracy"] for r in recs if r.step == "classify"}
    assert {mlflow.get_run(r.run_id).data.params["seed"] for r in recs if r.step == "classify"} == {"3", "4"}

    summary = report.seed_summary(experiment="fmnist", dataset="synthetic").set_index(["model", "feature"])
    lda = summary.loc[("lda", "raw")]
    pair = [acc["raw/lda@seed=3"], acc["raw/lda@seed=4"]]
    assert lda["n"] == 2 and lda["mean"] == pytest.approx(sum(pair) / 2)
    assert lda["std"] == pytest.approx(abs(pair[0] - pair[1]) / 2 ** 0.5)  # ddof=1 over two values
    text = report.comparison_display(experiment="fmnist", dataset="synthetic")
    assert text.loc["lda", "raw"] == f"{100 * lda['mean']:.2f} ± {100 * lda['std']:.2f} (n=2)"
    assert report.comparison_table(experiment="fmnist", dataset="synthetic").loc["lda", "raw"] == pytest.approx(
        100 * lda["mean"])
    again = st.run_study(**kw, seeds="3,4")  # each seed is its own cached cell
    assert {r.status for r in again if r.step != "report"} == {"cached"}
    one = st.run_study(**kw, seeds="3")  # one seed: the cells keep their plain names, and show an interval
    assert sorted(r.cell for r in one if r.step == "classify") == ["raw/lda", "raw/logreg"]
    with pytest.raises(ParamError, match="seeds='1,1'"):
        st.run_study(**kw, seeds="1,1")


@pytest.mark.slow
@pytest.mark.parametrize("dataset,published", [("mnist", "DENSER"), ("kmnist", None)])
def test_the_report_is_about_the_study_dataset(store, monkeypatch, tmp_path, dataset, published):
    """A study on another dataset of the family: its report's title, tables and published rows are that dataset's."""
    from dataclasses import replace

    import fmnist.commands.study as st
    from fmnist.data import DATASETS, synthetic_dataset

    spec = DATASETS[dataset]
    monkeypatch.setattr(st, "load_dataset", lambda *a, seed=0, **k: replace(
        synthetic_dataset(n_train=200, n_test=100, seed=seed), name=dataset, classes=spec.classes))
    out = tmp_path / "report.html"
    recs = st.run_study(**dict(SMALL, features="raw", models="lda", finetune=False, dataset=dataset,
                               report_output=str(out)))
    (cls,) = [r for r in recs if r.step == "classify"]
    acc = 100 * mlflow.get_run(cls.run_id).data.metrics["test_accuracy"]
    html = out.read_text()
    assert f"{spec.title}: features, 2-D views" in html and "Fashion-MNIST" not in html
    assert f"{acc:.2f}" in html and "No classify runs yet" not in html
    if published:
        assert published in html and "WRN40-4" not in html
    else:
        assert f"No published results for {spec.title}" in html


def section_images(html: str) -> dict[str, int]:
    """Images per section of a rendered report: counted between an <h2> heading and the next."""
    import re

    parts = re.split(r"<h2[^>]*>(.*?)</h2>", html, flags=re.S)
    title = lambda h: re.sub(r"<[^>]+>", "", h).replace("¶", "").strip()  # noqa: E731
    return {title(parts[i]): parts[i + 1].count("<img") for i in range(1, len(parts), 2)}


@pytest.mark.slow
def test_main_entry_point_on_real_subset(real_data_dir, store, tmp_path, monkeypatch, capsys):
    from test_e2e_extract import mlflow_run, mlflow_run_here

    # methods=all and epochs=0 (the profile's) are resolved by the study: logged as methods_used/epochs_used
    params = {"subset": 300, "features": "raw,scatnet", "models": "lda,rf", "methods": "all", "epochs": 0,
              "weights": "none", "data_dir": real_data_dir, "report_output": tmp_path / "out" / "report.html"}
    p = mlflow_run("main", params, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Test accuracy" in html and "Traceback" not in html and "Error" not in html.split('id="Summary"')[-1]
    # Every section's figures reach the page: 1 the paired tests' picture, 2 the per-class heatmap and the best
    # cell's confusion matrix, 3 the shifted images and accuracy under shift, 5 the eight views (2 features x 4 methods); 6 has no curves
    # for 1-epoch runs.
    assert section_images(html) == {"Summary": 0, "1. Test accuracy (%): classifiers x feature sets": 1,
                                    "2. Per class": 2, "3. Under shift": 2,
                                    "4. State of the art, with this study's best rows ranked in": 0,
                                    "5. 2-D views and how well they separate the classes": 8,
                                    "6. Fine-tuning ResNet-18": 0, "7. Registered models": 0}
    # The shift section's tables and its finding: every scored model (2 x 2 classifiers, 2 fine-tunes) on the
    # profile's 200 test images, and the best scatnet cell against the best raw one per kind.
    shift = html.split("3. Under shift")[-1].split("4. State of the art")[0]
    assert "same 200 test images" in shift or "on 200 test images" in shift
    assert all(c in shift for c in ("LDA on raw", "Random forest on scatnet", "ResNet-18 fine-tune last_layer",
                                    "translate_2px", "both right as is", "p (Holm)"))
    assert "Under shift (200 test images, 18 transformed sets)" in html.split("1. Test accuracy")[0]  # the summary
    assert 'href="report.significance.csv"' in html
    # each view's figure links to its page, copied beside the report, within the 1,000-point page's bound
    import re

    pages = set(re.findall(r'href="(views/[^"]+\.html)"', html))
    assert len(pages) == 8 and all((tmp_path / "out" / v).is_file() for v in pages), pages
    assert all((tmp_path / "out" / v).stat().st_size <= 1.5e6 for v in pages)
    sig = pd.read_csv(tmp_path / "out" / "report.significance.csv")
    assert len(sig) == 5 + 2 * 1 and set(sig["family"]) == {"vs best", "features per model"}  # 6 cells; 2 models
    from fmnist import report

    table = report.comparison_table(experiment="fmnist")
    assert list(table.index) == ["lda", "rf", "Average"] and list(table.columns) == ["raw", "scatnet", "Average"]
    cells = report.latest_cells("classify", ["model", "feature"], experiment="fmnist")
    for _, c in cells.iterrows():
        assert table.loc[c["model"], c["feature"]] == pytest.approx(100 * c["metrics.test_accuracy"])
    # Again, launched in-process as `mlflow run` launches it (the launcher itself ran above): all cached.
    again = mlflow_run_here("main", params, monkeypatch)
    assert again == 0, capsys.readouterr().err[-3000:]
    (latest, _) = mlflow.search_runs(experiment_names=["fmnist"], output_format="list",
                                     filter_string="tags.`fmnist.step` = 'study'")
    steps = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=latest.info.run_id, artifact_path="steps.csv"))
    assert set(steps.loc[steps["step"] != "report", "status"]) == {"cached"}
    assert latest.data.params["methods"] == "all" and latest.data.params["methods_used"] == "pca,tsne,lle,umap"
    assert latest.data.params["epochs"] == "0" and latest.data.params["epochs_used"] == "1"
