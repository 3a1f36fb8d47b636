"""Embedding methods (every registered one), separation metrics and figures on tiny synthetic data."""

import numpy as np
import pytest

from fmnist.embeddings import EMBEDDINGS, embed, method_params
from fmnist.embeddings.figures import embedding_figure, grid_figure
from fmnist.errors import ChoiceError, ParamError
from fmnist.plots import close
from fmnist.separation import knn_accuracy, separation_metrics, silhouette, trustworthiness

CLASSES = [f"class {k}" for k in range(10)]


def blobs(n=120, dim=64, spread=0.3, seed=0):
    """10 Gaussian blobs around random centres: labels 0..9 in turn."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, dim)).astype(np.float32)
    y = np.arange(n) % 10
    return (centres[y] + spread * rng.normal(size=(n, dim))).astype(np.float32), y


@pytest.fixture(scope="module")
def data():
    return blobs()


@pytest.fixture(scope="module")
def embedded(data):
    x, _ = data
    return {m: embed(m, x, seed=0) for m in EMBEDDINGS.names()}


def test_registry_has_the_four_methods():
    assert EMBEDDINGS.names() == ["pca", "tsne", "lle", "umap"]
    for m in ("tsne", "lle", "umap"):
        assert EMBEDDINGS.get(m).params["pca_dims"] == 50


@pytest.mark.parametrize("method", EMBEDDINGS.names())
def test_shape_dtype_and_determinism(method, data, embedded):
    x, _ = data
    a = embedded[method]
    assert a.shape == (len(x), 2) and a.dtype == np.float32 and np.isfinite(a).all()
    assert a.std(axis=0).min() > 0  # not collapsed to a point or a line
    np.testing.assert_array_equal(a, embed(method, x, seed=0))


@pytest.mark.parametrize("method", EMBEDDINGS.names())
def test_metrics_in_range_and_blobs_separate(method, data, embedded):
    x, y = data
    m = separation_metrics(x, embedded[method], y, seed=0)
    assert set(m) == {"knn_accuracy", "trustworthiness", "silhouette"}
    assert 0 <= m["knn_accuracy"] <= 1 and 0 <= m["trustworthiness"] <= 1 and -1 <= m["silhouette"] <= 1
    # Ten well separated blobs: every method beats chance (0.1) by far.
    assert m["knn_accuracy"] > 0.5, m


@pytest.mark.parametrize("method", EMBEDDINGS.names())
def test_png_written(method, data, embedded, tmp_path):
    _, y = data
    fig = embedding_figure(embedded[method], y, CLASSES, feature_label="blobs", method=method,
                           metrics={"knn_accuracy": 0.9, "trustworthiness": 0.95, "silhouette": 0.4})
    assert f"blobs · {method} · n={len(y)}" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == CLASSES
    fig.savefig(tmp_path / "e.png")
    close(fig)
    png = (tmp_path / "e.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_grid_png(data, embedded, tmp_path):
    x, y = data
    cells = [{"feature": f, "feature_label": f, "method": m, "coords": embedded[m], "labels": y,
              "metrics": separation_metrics(x, embedded[m], y)} for f in ("a", "b") for m in EMBEDDINGS.names()]
    fig = grid_figure(cells, ["a", "b"], EMBEDDINGS.names(), CLASSES, title="grid")
    assert len([ax for ax in fig.axes if ax.has_data()]) == 8
    fig.savefig(tmp_path / "g.png")
    close(fig)
    assert (tmp_path / "g.png").stat().st_size > 20_000


def test_seed_changes_stochastic_methods(data, embedded):
    x, _ = data
    assert not np.array_equal(embedded["umap"], embed("umap", x, seed=1))


def test_method_params_defaults_overrides_and_caps():
    assert method_params("umap") == {"n_neighbors": 15, "min_dist": 0.1, "pca_dims": 50}
    assert method_params("tsne", {"perplexity": "5", "n_neighbors": 3}) == {"perplexity": 5.0, "pca_dims": 50}
    assert method_params("pca", {"perplexity": 5}) == {}
    # Too few points for the neighbourhood: lowered to what the method really uses.
    assert method_params("tsne", n_samples=31)["perplexity"] == 10.0
    assert method_params("umap", n_samples=10)["n_neighbors"] == 9
    assert method_params("lle", n_samples=8)["lle_neighbors"] == 7


@pytest.mark.parametrize("method,given,message", [
    ("tsne", {"perplexity": 0}, "perplexity must be > 0"),
    ("umap", {"min_dist": 2}, "min_dist must be in"),
    ("umap", {"n_neighbors": 1}, "n_neighbors must be >= 2"),
    ("lle", {"lle_neighbors": 2}, "lle_neighbors must be >= 3"),
    ("lle", {"pca_dims": 1}, "pca_dims must be 0"),
    ("tsne", {"perplexity": "many"}, "tsne perplexity must be a float, got 'many'"),
])
def test_bad_params(method, given, message):
    with pytest.raises(ParamError, match=message):
        method_params(method, given)


def test_unknown_method_names_choices():
    with pytest.raises(ChoiceError, match="unknown method 'mds'; choose one of: pca, tsne, lle, umap"):
        EMBEDDINGS.expand("pca,mds")


def test_pca_dims_off_and_small_data(data):
    x, _ = data
    a = embed("tsne", x[:, :20], seed=0, params={"pca_dims": 0})
    assert a.shape == (len(x), 2)


def test_knn_accuracy_perfect_and_chance():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 30)
    separated = np.stack([y * 100.0, np.zeros_like(y, dtype=float)], 1) + rng.normal(size=(300, 2))
    assert knn_accuracy(separated, y) == 1.0
    assert knn_accuracy(rng.normal(size=(300, 2)), y) < 0.3
    assert 0 <= knn_accuracy(rng.normal(size=(20, 2)), np.arange(20) % 10) <= 1  # 2 per class still works


def test_trustworthiness_and_silhouette():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 30)
    x2 = np.stack([y * 100.0, np.zeros(300)], 1) + rng.normal(size=(300, 2))
    assert trustworthiness(x2, x2, y) == pytest.approx(1.0)
    assert trustworthiness(np.c_[x2, np.zeros((300, 5))], x2, y, max_n=100) == pytest.approx(1.0)
    assert silhouette(x2, y) > 0.9
    assert silhouette(rng.normal(size=(300, 2)), y) < 0.1
