"""Every command is a graph: one run tree (inputs beside the cells that read them), each run read once."""

import mlflow
import pandas as pd
import pytest

from fmnist import cache, tracking
from fmnist.data import synthetic_dataset
from fmnist.steps import base
from fmnist.commands import classify
from fmnist.steps.classify import CLASSIFY, ClassifyParams
from fmnist.steps.extract import EXTRACT
from fmnist.steps.graph import build
from golden import assert_golden

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SCAT = {"J": 1, "L": 2, "max_order": 1}
GRID = dict(feature="raw,scatnet", model="lda,logreg")


def _tree(parent_id: str) -> list[tuple[str, str]]:
    """(step, run name) of a parent's children, each checked to have no children of its own."""
    kids = tracking.child_runs(parent_id)
    for k in kids:
        assert tracking.child_runs(k["run_id"]) == [], f"{k['tags']['mlflow.runName']} has runs nested in it"
    return sorted((k["tags"][tracking.STEP_TAG], k["tags"]["mlflow.runName"]) for k in kids)


def _newest(step: str):
    return mlflow.search_runs(search_all_experiments=True, output_format="list", order_by=["start_time DESC"],
                              filter_string=f"tags.`fmnist.step` = '{step}'")[0]


def test_a_grid_command_has_the_study_s_run_tree(store, tiny, monkeypatch):
    import fmnist.commands.study as st

    classify(**GRID, ds=tiny, tune=False, weights="none", progress=False, params=SCAT)
    assert_golden("classify-grid", store)
    grid = _newest("classify-group")
    other = synthetic_dataset(200, 100, seed=5)  # other data: the study computes every cell again
    monkeypatch.setattr(st, "load_dataset", lambda *a, **k: other)
    st.run_study(profile="quick", features=GRID["feature"], models=GRID["model"], methods="none", finetune=False, shift=False,
                 report=False, weights="none", device="cpu", progress=False)
    study = _newest("study")
    assert _tree(grid.info.run_id) == _tree(study.info.run_id) == [
        ("classify", "classify-raw-lda"), ("classify", "classify-raw-logreg"), ("classify", "classify-scatnet-lda"),
        ("classify", "classify-scatnet-logreg"), ("extract", "extract-raw"), ("extract", "extract-scatnet")]
    steps = pd.read_csv(tracking.artifact_local_path(grid.info.run_id, "steps.csv"))
    assert list(steps["cell"]) == ["raw", "raw/lda", "raw/logreg", "scatnet", "scatnet/lda", "scatnet/logreg"]
    assert set(steps["status"]) == {"ran"}


def test_a_one_target_classify_is_its_own_run_beside_its_input(store, tiny):
    (cell,) = classify(feature="raw", model="lda", ds=tiny, tune=False, progress=False)
    assert tracking.get_run_info(cell.run_id)["tags"]["mlflow.runName"] == "classify-raw-lda"
    assert_golden("classify-one", store)


def test_a_cached_grid_is_decided_in_one_read_per_cell_and_loads_nothing(store, tiny, monkeypatch):
    kw = dict(**GRID, ds=tiny, tune=False, weights="none", progress=False, params=SCAT)
    first = classify(**kw)
    calls = {"get_run": 0, "load": 0, "search": 0}
    real_info, real_load, real_find = tracking.get_run_info, cache.load_arrays, tracking.find_cached_run

    def count(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(tracking, "get_run_info", count("get_run", real_info))
    monkeypatch.setattr(cache, "load_arrays", count("load", real_load))
    monkeypatch.setattr(tracking, "find_cached_run", count("search", real_find))
    again = classify(**kw)
    assert [c.run_id for c in again] == [c.run_id for c in first]
    assert [c.metrics["test_accuracy"] for c in again] == [c.metrics["test_accuracy"] for c in first]
    # four probes of the classify cells; the extract cells are not even probed, no run is re-read, no array loaded
    assert calls == {"get_run": 0, "load": 0, "search": 4}
    steps = pd.read_csv(tracking.artifact_local_path(_newest("classify-group").info.run_id, "steps.csv"))
    assert list(steps["cell"]) == ["raw/lda", "raw/logreg", "scatnet/lda", "scatnet/logreg"]
    assert set(steps["status"]) == {"cached"}


def test_a_grid_s_cells_share_one_feature_load(store, tiny, monkeypatch):
    kw = dict(feature="raw", ds=tiny, tune=False, progress=False)
    classify(model="lda", **kw)  # the features exist in the store
    loads = []
    real = cache.load_arrays
    monkeypatch.setattr(cache, "load_arrays", lambda *a, **k: loads.append(a[0]) or real(*a, **k))
    base._memo.clear()
    cells = classify(model="logreg,rf", n_jobs=1, **kw)
    assert [c.model for c in cells] == ["logreg", "rf"]
    assert len(loads) == 1 and str(loads[0]).endswith("features.npz")


def test_graph_has_one_cell_per_key_inputs_first(tiny):
    p = ClassifyParams(feature="raw", model="lda", tune=False)
    graph = build([(CLASSIFY, p), (CLASSIFY, ClassifyParams(feature="raw", model="logreg")), (EXTRACT,
                  p.extract_params())], lambda _: tiny)
    assert [c.id for c in graph.cells] == ["extract raw", "classify raw/lda", "classify raw/logreg"]
    assert [c.after for c in graph.cells] == [(), ("extract raw",), ("extract raw",)]
    assert graph.targets == {"extract raw", "classify raw/lda", "classify raw/logreg"}
    with pytest.raises(Exception, match="unknown model 'knn'"):  # every cell's params are checked building it
        build([(CLASSIFY, ClassifyParams(feature="raw", model="knn"))], lambda _: tiny)


def test_a_failing_cell_fails_the_grid_but_not_its_siblings(store, tiny, monkeypatch):
    import fmnist.steps.classify as cl
    from fmnist.steps.graph import GraphFailed

    real = cl.fit_cell

    def broken(fs, p, run_id, **kw):
        if p.model == "logreg":
            raise RuntimeError("injected")
        return real(fs, p, run_id, **kw)

    monkeypatch.setattr(cl, "fit_cell", broken)
    with pytest.raises(GraphFailed, match=r"1 step\(s\) failed.*classify raw/logreg.*RuntimeError: injected"):
        classify(feature="raw", model="lda,logreg", ds=tiny, tune=False, progress=False)
    parent = _newest("classify-group")
    assert parent.info.status == "FAILED" and parent.data.tags["fmnist.failed_steps"] == "classify raw/logreg"
    runs = {k["tags"]["mlflow.runName"]: k["status"] for k in tracking.child_runs(parent.info.run_id)}
    assert runs == {"extract-raw": "FINISHED", "classify-raw-lda": "FINISHED", "classify-raw-logreg": "FAILED"}
    monkeypatch.setattr(cl, "fit_cell", real)
    cells = classify(feature="raw", model="lda,logreg", ds=tiny, tune=False, progress=False)  # retries only it
    steps = pd.read_csv(tracking.artifact_local_path(_newest("classify-group").info.run_id, "steps.csv"))
    assert dict(zip(steps["cell"], steps["status"])) == {"raw/lda": "cached", "raw": "cached", "raw/logreg": "ran"}
    assert [c.model for c in cells] == ["lda", "logreg"]
