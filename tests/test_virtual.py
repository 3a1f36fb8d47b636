"""Virtual examples: every copy its kinds name, tied to the image it came from, the moves exact."""

import numpy as np
import pytest

from fmnist.errors import ParamError
from fmnist.virtual import KINDS, copies, parse, virtual_images


def _images(n=3):
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        x[i, 8 + i:14 + i, 5:9] = 50 * (i + 1)
    return x


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_copies_every_image_and_names_its_source(kind):
    x = _images()
    v, src = virtual_images(x, kind)
    assert v.dtype == np.uint8 and v.shape[1:] == x.shape[1:] and len(v) == copies(kind) * len(x)
    assert list(src) == list(np.tile(np.arange(len(x)), copies(kind)))
    for img, s in zip(v, src):  # a copy keeps its garment: the same ink, give or take interpolation
        assert abs(int(img.sum()) - int(x[s].sum())) < 0.1 * int(x[s].sum())


def test_the_moves_are_exact():
    x = _images(1)
    (flip,), _ = virtual_images(x, "flip")
    assert np.array_equal(flip, x[0][:, ::-1])
    right, left, down, up = virtual_images(x, "shift1")[0]
    assert np.array_equal(right[:, 1:], x[0][:, :-1]) and np.array_equal(left[:, :-1], x[0][:, 1:])
    assert np.array_equal(down[1:], x[0][:-1]) and np.array_equal(up[:-1], x[0][1:])
    v, src = virtual_images(x, "flip+shift1")
    assert len(v) == 5 and copies("flip+shift1") == 5 and parse(" flip + shift1 ") == ("flip", "shift1")
    assert len(virtual_images(x, "")[0]) == 0


def test_an_unknown_kind_names_the_valid_ones():
    with pytest.raises(ParamError, match="unknown virtual-example kind 'mirror'; choose a '\\+' list of: flip, shift1"):
        parse("flip+mirror")
