"""One shape for every step: params -> key -> get_or_run, through a one-cell graph (reuse verified FINISHED runs)."""

from dataclasses import fields, replace

import mlflow
import pytest

from fmnist.classifiers import CLASSIFIERS
from fmnist.cli import run_cli
from fmnist.embeddings import EMBEDDINGS
from fmnist.features import FEATURES
from fmnist.steps.base import ARTIFACTS_TAG
from fmnist.steps.graph import run_step
from fmnist.steps.classify import CLASSIFY, ClassifyParams
from fmnist.steps.extract import EXTRACT, ExtractParams
from fmnist.steps.finetune import FINETUNE, FinetuneParams
from fmnist.steps.all import STEPS
from fmnist.steps.visualize import VISUALIZE, VisualizeParams

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SMALL_SCAT = {"J": 1, "L": 2, "max_order": 1}


def _runs(step=None):
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return [r for r in runs if step is None or r.data.tags.get("fmnist.step") == step]


@pytest.mark.parametrize("name", sorted(STEPS))
def test_every_step_has_the_shape(name):
    step = STEPS[name]
    p = step.Params()
    assert all(f.default is not None or f.name in ("subset", "n_samples") for f in fields(p))
    with pytest.raises(Exception):  # frozen: params are values
        p.seed = 1  # type: ignore[misc]
    assert callable(step.run) and callable(step.log) and callable(step.key)


@pytest.mark.parametrize("feature", FEATURES.names())
def test_extract_key_covers_params_and_data_not_runtime(feature, tiny):
    from fmnist.data import synthetic_dataset

    p = ExtractParams(feature=feature, weights="none", image_size=32, **SMALL_SCAT)
    k = EXTRACT.key(p, tiny)
    assert EXTRACT.key(replace(p, device="cpu", batch_size=7, progress=False, force=True), tiny) == k
    assert EXTRACT.key(p, synthetic_dataset(200, 100, seed=9)) != k
    own = FEATURES.get(feature).params
    for name in own:  # every param the feature declares changes its key
        changed = {"J": 2, "L": 3, "max_order": 2, "image_size": 48, "weights": "none"}[name]
        if changed != getattr(p, name):
            assert EXTRACT.key(replace(p, **{name: changed}), tiny) != k, name
    others = [n for n in ("J", "L", "image_size") if n not in own]
    for name in others:  # a param of another feature does not
        assert EXTRACT.key(replace(p, **{name: getattr(p, name) + 1}), tiny) == k, name


@pytest.mark.parametrize("model", CLASSIFIERS.names())
def test_classify_key_holds_val_fraction_tune_and_seed(model, tiny):
    p = ClassifyParams(feature="raw", model=model)
    k = CLASSIFY.key(p, tiny)
    assert len({k, CLASSIFY.key(replace(p, val_fraction=0.2), tiny), CLASSIFY.key(replace(p, tune=False), tiny),
                CLASSIFY.key(replace(p, seed=1), tiny)}) == 4
    assert CLASSIFY.key(replace(p, n_jobs=1, device="cpu", force=True), tiny) == k


@pytest.mark.parametrize("method", EMBEDDINGS.names())
def test_visualize_key_holds_its_method_params(method, tiny):
    p = VisualizeParams(feature="raw", method=method, n_samples=60)
    k = VISUALIZE.key(p, tiny)
    assert VISUALIZE.key(replace(p, n_samples=80), tiny) != k
    own = EMBEDDINGS.get(method).params
    for name in own:
        bumped = {"perplexity": 10.0, "n_neighbors": 8, "min_dist": 0.3, "lle_neighbors": 7, "pca_dims": 20}[name]
        assert VISUALIZE.key(replace(p, **{name: bumped}), tiny) != k, name


def test_finetune_key_holds_training_params_not_runtime(tiny):
    p = FinetuneParams(weights="none", epochs=1, image_size=32)
    k = FINETUNE.key(p, tiny)
    assert FINETUNE.key(replace(p, device="cpu", num_workers=2, resume="never", progress=False), tiny) == k
    assert len({k, FINETUNE.key(replace(p, val_fraction=0.2), tiny), FINETUNE.key(replace(p, lr=0.1), tiny),
                FINETUNE.key(replace(p, mode="last_layer"), tiny)}) == 4


def test_cli_classify_twice_reuses_then_force_recomputes(store, tiny, monkeypatch, capsys):
    from fmnist.cli import cli

    monkeypatch.setattr(ClassifyParams, "load", lambda self: tiny)
    monkeypatch.setattr(ExtractParams, "load", lambda self: tiny)
    args = ["classify", "--feature", "raw", "--model", "lda", "--tune", "false", "--no-progress"]
    with pytest.raises(SystemExit) as e:
        run_cli(cli, args)
    assert e.value.code == 0
    (first,) = _runs("classify")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        run_cli(cli, args)
    assert f"reusing FINISHED run {first.info.run_id}" in capsys.readouterr().err
    assert len(_runs("classify")) == 1 and len(_runs("extract")) == 1
    with pytest.raises(SystemExit):
        run_cli(cli, [*args, "--force", "true"])
    runs = _runs("classify")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert runs[0].data.metrics["test_accuracy"] == first.data.metrics["test_accuracy"]  # deterministic model
    assert len(_runs("extract")) == 1  # force is the step's own: its inputs still come from the cache


def test_an_altered_artifact_is_never_reused(store, tiny):
    p = VisualizeParams(feature="raw", method="pca", n_samples=60)
    a = run_step(VISUALIZE, p, tiny)
    assert not a.cached and "embedding.csv" in mlflow.get_run(a.run_id).data.tags[ARTIFACTS_TAG]
    from fmnist import tracking

    path = tracking.artifact_local_path(a.run_id, "embedding.csv")
    path.write_text(path.read_text().replace("0", "1", 1))  # bit rot / a partial copy
    b = run_step(VISUALIZE, p, tiny)
    assert not b.cached and b.run_id != a.run_id
    c = run_step(VISUALIZE, p, tiny)
    assert c.cached and c.run_id == b.run_id
    assert c.result["coords"].shape == (60, 2)


def test_a_failed_step_ends_failed_and_is_not_reused(store, tiny, monkeypatch):
    import fmnist.steps.classify as cl

    def boom(*a, **k):
        raise RuntimeError("injected")

    monkeypatch.setattr(cl, "fit_cell", boom)
    p = ClassifyParams(feature="raw", model="lda", tune=False, progress=False)
    with pytest.raises(RuntimeError):
        run_step(CLASSIFY, p, tiny)
    (failed,) = _runs("classify")
    assert failed.info.status == "FAILED" and "injected" in failed.data.tags["fmnist.error"]
    assert "fmnist.cache_key" not in failed.data.tags
    monkeypatch.undo()
    out = run_step(CLASSIFY, p, tiny)
    assert not out.cached and out.run_id != failed.info.run_id


def test_finetune_is_cached_like_every_step(store, tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("FMNIST_CHECKPOINT_DIR", str(tmp_path / "ck"))
    p = FinetuneParams(weights="none", epochs=1, image_size=16, batch_size=32, device="cpu", progress=False)
    a = run_step(FINETUNE, p, tiny)
    b = run_step(FINETUNE, p, tiny)
    assert not a.cached and b.cached and b.run_id == a.run_id
    assert b.result["test_accuracy"] == pytest.approx(a.result["test_accuracy"])


def _bumped(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + 1
    if isinstance(v, float):
        return v / 2 if v else 0.5  # (0: an off switch, e.g. ema)
    return None  # strings name registry entries: the per-step key tests change those


@pytest.mark.parametrize("name", sorted(n for n in STEPS if n != "report"))  # the report's key is its inputs
def test_a_key_is_made_of_the_fields_marked_key_and_nothing_else(name, tiny):
    """No step lists its key by hand: every field marked ``key=True`` changes it, every runtime field does not."""
    step = STEPS[name]
    one = {"feature": "raw", "model": "lda", "method": "pca", "weights": "none", "image_size": 32, "n_samples": 60,
           "scored": '{"step": "classify", "params": {"feature": "raw", "model": "lda"}}'}
    p = step.Params(**{k: v for k, v in one.items()
                       if k in {f.name for f in fields(step.Params)}})
    k = step.key(p, tiny)
    for f in fields(p):
        new = _bumped(getattr(p, f.name))
        if new is None or f.metadata.get("key", True) not in (True, False):
            continue
        changed = step.key(replace(p, **{f.name: new}), tiny)
        assert (changed != k) == f.metadata.get("key", True), f.name
