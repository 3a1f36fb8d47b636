"""Property-based: the IDX reader only ever raises DataError on malformed input, and never trusts a
lying header enough to allocate for it."""

import gzip
import struct
import tracemalloc

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmnist.data import IMAGES_MAGIC, LABELS_MAGIC, DataError, parse_idx

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_images(n, rows, cols, rng=np.random.default_rng(0)):
    return struct.pack(">IIII", IMAGES_MAGIC, n, rows, cols) + rng.integers(0, 256, n * rows * cols,
                                                                            dtype=np.uint8).tobytes()


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([IMAGES_MAGIC, LABELS_MAGIC]))
def test_random_bytes_raise_only_data_error(buf, magic):
    try:
        arr = parse_idx(buf, magic)
    except DataError as e:
        assert "\n" not in str(e)
    else:  # the rare valid buffer: shape consistent with its header and length
        assert arr.dtype == np.uint8 and arr.size == len(buf) - (4 + 4 * (magic & 0xFF))


@FUZZ
@given(dims=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
       body=st.integers(0, 4096))
def test_lying_headers_never_allocate(dims, body):
    buf = struct.pack(">IIII", IMAGES_MAGIC, *dims) + b"\x01" * body
    tracemalloc.start()
    try:
        arr = parse_idx(buf, IMAGES_MAGIC)
    except DataError as e:
        assert any(m in str(e) for m in ("wrong count", "implausible", "empty"))
    else:
        assert arr.size == body
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 1 << 20  # never more than a megabyte, whatever the header claims


@FUZZ
@given(n=st.integers(1, 5), cut=st.integers(0, 10_000))
def test_truncated_bodies_are_reported(n, cut):
    buf = _valid_images(n, 28, 28)
    cut = min(cut, len(buf) - 1)
    try:
        parse_idx(buf[:cut], IMAGES_MAGIC)
    except DataError as e:
        assert any(s in str(e) for s in ("too short", "truncated", "wrong count"))
    else:
        raise AssertionError("a truncated buffer was accepted")


@FUZZ
@given(n=st.integers(1, 3), flip=st.integers(0, 20))
def test_corrupt_gzip_is_a_data_error(tmp_path_factory, n, flip):
    from pathlib import Path

    from fmnist.data import _read_bytes

    blob = bytearray(gzip.compress(_valid_images(n, 28, 28)))
    pos = min(10 + flip, len(blob) - 9)
    blob[pos] ^= 0xFF
    p = Path(tmp_path_factory.mktemp("gz")) / "x-idx3-ubyte.gz"
    p.write_bytes(bytes(blob))
    try:
        _read_bytes(p)
    except DataError as e:
        assert "bad gzip" in str(e)
