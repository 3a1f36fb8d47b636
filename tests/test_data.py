import gzip
import hashlib
import shutil
import struct

import numpy as np
import pytest

from conftest import MINI_DATA, MINI_SIZES, REAL_SIZES
from fmnist.data import (
    DATASETS, SPLIT_FILES, data_digest, load_dataset, parse_idx, read_manifest, stratified_indices,
    synthetic_dataset,
)
from fmnist.errors import ChoiceError, DataError, ParamError


def _write_idx(folder, n=20, gz=True, magic_img=0x803, count_img=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        img = struct.pack(">IIII", magic_img, count_img or n, 28, 28) + x.tobytes()
        lab = struct.pack(">II", 0x801, n) + y.tobytes()
        stem_i, stem_l = SPLIT_FILES[f"{split}_images"], SPLIT_FILES[f"{split}_labels"]
        for stem, blob in ((stem_i, img), (stem_l, lab)):
            if gz:
                (folder / f"{stem}.gz").write_bytes(gzip.compress(blob))
            else:
                (folder / stem).write_bytes(blob)
    return folder


@pytest.mark.parametrize("gz", [True, False])
def test_reads_idx_folder_offline(tmp_path, gz):
    # mnist's MD5s do not apply to our fake files: verify_md5=False, as for any home-made folder
    ds = load_dataset("mnist", data_dir=_write_idx(tmp_path / "d", gz=gz), download=False, verify_md5=False)
    assert ds.x_train.shape == (20, 28, 28) and ds.x_train.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and ds.classes == DATASETS["mnist"].classes
    assert len(ds.digest) == 64


def test_md5_mismatch_is_one_line(tmp_path):
    with pytest.raises(DataError, match="MD5 mismatch") as e:
        load_dataset("fashion-mnist", data_dir=_write_idx(tmp_path / "d"), download=False)
    assert "\n" not in str(e.value) and "train-images-idx3-ubyte.gz" in str(e.value)


def _md5sums(folder, names):
    lines = [f"{hashlib.md5((folder / n).read_bytes()).hexdigest()}  {n}" for n in names]
    (folder / "MD5SUMS").write_text("\n".join(lines) + "\n")


def test_manifest_md5s_replace_the_official_ones(tmp_path):
    folder = _write_idx(tmp_path / "d")  # not the official files: only the manifest can vouch for them
    names = sorted(p.name for p in folder.glob("*.gz"))
    _md5sums(folder, names)
    ds = load_dataset("fashion-mnist", data_dir=folder, download=False)
    assert ds.x_train.shape == (20, 28, 28)
    f = folder / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes() + b"\0")  # still reads as gzip; only the MD5 can tell
    with pytest.raises(DataError, match="MD5 mismatch") as e:
        load_dataset("fashion-mnist", data_dir=folder, download=False)
    msg = str(e.value)
    assert "\n" not in msg and "t10k-labels-idx1-ubyte.gz" in msg and "MD5SUMS" in msg
    listed = dict(line.split()[::-1] for line in (folder / "MD5SUMS").read_text().splitlines())
    assert listed[f.name] in msg and hashlib.md5(f.read_bytes()).hexdigest() in msg  # both sums


def test_manifest_covers_only_what_it_lists(tmp_path):
    folder = _write_idx(tmp_path / "d")
    _md5sums(folder, ["train-images-idx3-ubyte.gz"])  # the other three fall back to the official MD5s
    with pytest.raises(DataError, match="MD5 mismatch") as e:
        load_dataset("fashion-mnist", data_dir=folder, download=False)
    assert "train-labels-idx1-ubyte.gz" in str(e.value) and "official fashion-mnist" in str(e.value)
    (folder / "MD5SUMS").write_text("not a checksum line\n")
    with pytest.raises(DataError, match="not an md5sum line"):
        load_dataset("fashion-mnist", data_dir=folder, download=False)


def test_committed_fixture_matches_its_manifest():
    """The slice tests read: its MD5SUMS lists exactly the four files, and they load verified."""
    listed = read_manifest(MINI_DATA)
    assert sorted(listed) == sorted(f"{stem}.gz" for stem in SPLIT_FILES.values())
    ds = load_dataset("fashion-mnist", data_dir=MINI_DATA, download=False)
    assert (len(ds.y_train), len(ds.y_test)) == MINI_SIZES
    assert (MINI_DATA / "LICENSE").read_text().startswith("The MIT License")


def test_wrong_magic(tmp_path):
    folder = _write_idx(tmp_path / "d", magic_img=0x802)
    with pytest.raises(DataError, match="wrong magic number"):
        load_dataset("mnist", data_dir=folder, download=False, verify_md5=False)


def test_wrong_count(tmp_path):
    folder = _write_idx(tmp_path / "d", count_img=25)
    with pytest.raises(DataError, match="wrong count"):
        load_dataset("mnist", data_dir=folder, download=False, verify_md5=False)


def test_truncated_gzip(tmp_path):
    folder = _write_idx(tmp_path / "d")
    f = folder / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DataError, match="bad gzip"):
        load_dataset("mnist", data_dir=folder, download=False, verify_md5=False)


def test_missing_offline_says_where(tmp_path):
    with pytest.raises(DataError, match="put .* in") as e:
        load_dataset("fashion-mnist", data_dir=tmp_path / "empty", download=False)
    assert "FMNIST_DATA_DIR" in str(e.value)


def test_lying_header_does_not_allocate():
    buf = struct.pack(">IIII", 0x803, 2**31, 2**16, 2**16) + b"\0" * 10
    with pytest.raises(DataError, match="implausible item size"):
        parse_idx(buf, 0x803)
    with pytest.raises(DataError, match="wrong count"):
        parse_idx(struct.pack(">IIII", 0x803, 2**31, 28, 28) + b"\0" * 10, 0x803)


def test_unknown_dataset():
    with pytest.raises(ChoiceError, match="fashion-mnist, mnist, kmnist"):
        load_dataset("cifar")


def test_stratified_subset_keeps_proportions_and_order():
    y = np.repeat(np.arange(10), [100, 50, 100, 100, 100, 100, 100, 100, 100, 150])
    idx = stratified_indices(y, 100, seed=3)
    assert len(idx) == 100 and np.all(np.diff(idx) > 0)
    counts = np.bincount(y[idx], minlength=10)
    assert counts[1] == 5 and counts[9] == 15
    assert np.array_equal(idx, stratified_indices(y, 100, seed=3))
    assert not np.array_equal(idx, stratified_indices(y, 100, seed=4))


def test_digest_is_stable_and_sensitive(tiny):
    assert tiny.digest == synthetic_dataset(n_train=200, n_test=100).digest
    x = tiny.x_train.copy()
    x[0, 0, 0] ^= 1
    assert data_digest(x, tiny.y_train, tiny.x_test, tiny.y_test) != tiny.digest


def test_md5s_match_torchvision():
    import torchvision.datasets as tvd

    for spec in DATASETS.values():
        assert dict(getattr(tvd, spec.torchvision_class).resources) == spec.md5


def test_real_data(real_data_dir):
    n_train, n_test = REAL_SIZES  # the committed slice, or the full set via $FMNIST_TEST_DATA_DIR
    ds = load_dataset("fashion-mnist", data_dir=real_data_dir, download=False)  # MD5s verified
    assert ds.x_train.shape == (n_train, 28, 28) and ds.x_test.shape == (n_test, 28, 28)
    assert np.bincount(ds.y_train).tolist() == [n_train // 10] * 10
    assert np.bincount(ds.y_test).tolist() == [n_test // 10] * 10
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    sub = load_dataset("fashion-mnist", data_dir=real_data_dir, subset=400, seed=0)  # < either split
    assert len(sub.x_train) == 400 and len(sub.x_test) == 400
    assert np.bincount(sub.y_train).tolist() == [40] * 10
    assert sub.digest != ds.digest
    with pytest.raises(ParamError, match="too small"):
        load_dataset("fashion-mnist", data_dir=real_data_dir, subset=5)


def test_real_data_in_torchvision_layout(real_data_dir, tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in real_data_dir.iterdir():  # the manifest too: it is what vouches for a slice's files
        if f.suffix == ".gz" or f.name == "MD5SUMS":
            shutil.copy(f, raw / f.name)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path, download=False, subset=100)
    assert ds.source == str(raw)
