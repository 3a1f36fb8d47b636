"""A 2-D view's page (``view.html``): self-contained, and within its size bounds on real images."""

import re

import numpy as np
import pytest

from fmnist.embeddings.page import view_page


@pytest.fixture(scope="module")
def real_images():
    """The committed slice's 1,600 real images (train and test) and labels."""
    from conftest import REAL_DATA
    from fmnist.data import load_dataset

    ds = load_dataset(data_dir=REAL_DATA)
    return np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test]), list(ds.classes)


@pytest.mark.parametrize("n,bound", [(1000, 1.5e6), (5000, 6e6)])  # the quick and full profiles' views
def test_a_page_is_self_contained_and_within_its_size_bound(real_images, n, bound):
    x, y, classes = real_images
    at = np.arange(n) % len(x)  # 5,000 points: the slice's images again, as many bytes as new ones
    coords = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
    page = view_page(coords, y[at], classes, np.arange(n), x[at], "raw / umap")
    assert len(page.encode()) <= bound, len(page.encode())
    # nothing to fetch: no script, stylesheet or image from elsewhere (Bokeh's own JavaScript is inline)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(https?:)?//", page)
    assert page.count("data:image/webp;base64,") == 1 and "Bokeh" in page
    assert all(f"{k} {name}" in page for k, name in enumerate(classes))  # the legend: one entry per class


def test_the_page_s_module_is_not_in_a_view_s_cache_key(monkeypatch):
    """Restyling the page never recomputes a view: its module is not among those the step's code version hashes."""
    from fmnist import cache
    from fmnist.steps.visualize import VISUALIZE, VisualizeParams

    hashed = []
    monkeypatch.setattr(cache, "step_code_version", lambda *modules: hashed.extend(modules) or "v")
    VISUALIZE.code(VisualizeParams(feature="raw", method="umap"))
    assert "fmnist.embeddings" in hashed and "fmnist.embeddings.page" not in hashed
