import numpy as np
import pytest

from fmnist import cache
from fmnist.errors import CacheError


def test_key_changes_with_every_part():
    base = cache.cache_key("extract", {"J": 2}, "d1", "c1")
    assert base == cache.cache_key("extract", {"J": 2}, "d1", "c1")
    assert len({base, cache.cache_key("extract", {"J": 3}, "d1", "c1"),
                cache.cache_key("extract", {"J": 2}, "d2", "c1"), cache.cache_key("extract", {"J": 2}, "d1", "c2"),
                cache.cache_key("classify", {"J": 2}, "d1", "c1")}) == 5


def test_code_version_tracks_source():
    import fmnist.data as d
    import fmnist.features.raw as r

    v = cache.code_version(d, r)
    assert v == cache.code_version(r, d) and v.startswith("0.") and v != cache.code_version(d)


def test_atomic_save_and_checksum(tmp_path):
    p = tmp_path / "a.npz"
    sha = cache.save_arrays(p, x=np.arange(10.0))
    assert list(tmp_path.iterdir()) == [p]  # no temp file left behind
    np.testing.assert_array_equal(cache.load_arrays(p, sha)["x"], np.arange(10.0))
    p.write_bytes(p.read_bytes()[:-20])  # truncated, as by a killed writer
    with pytest.raises(CacheError, match="checksum mismatch"):
        cache.load_arrays(p, sha)
    with pytest.raises(CacheError, match="unreadable"):
        cache.load_arrays(p)
