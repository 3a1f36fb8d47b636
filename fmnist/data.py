"""Datasets of the MNIST family: IDX reading with integrity checks, offline folders, subsets, digests."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .cache import file_digest
from .errors import ChoiceError, DataError, ParamError

SPLIT_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
MANIFEST = "MD5SUMS"  # md5sum-format list beside the files; overrides the official MD5s for what it lists
MAX_ITEM_BYTES = 1 << 24  # one image of at most 16 MB: anything larger is a corrupt header


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    torchvision_class: str  # also the folder torchvision downloads into: <root>/<class>/raw
    classes: tuple[str, ...]
    md5: dict[str, str]  # MD5 of the official .gz files, as torchvision lists them
    title: str = ""  # how a report names it


def dataset_title(name: str) -> str:
    """``fashion-mnist`` -> ``Fashion-MNIST``; a name outside the registry is shown as it is."""
    spec = DATASETS.get(name)
    return spec.title if spec and spec.title else name


DATASETS: dict[str, DatasetSpec] = {
    "fashion-mnist": DatasetSpec(
        "fashion-mnist",
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        "Fashion-MNIST",
    ),
    "mnist": DatasetSpec(
        "mnist",
        "MNIST",
        tuple(str(i) for i in range(10)),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "MNIST",
    ),
    "kmnist": DatasetSpec(
        "kmnist",
        "KMNIST",
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        {
            "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
        },
        "Kuzushiji-MNIST",
    ),
}


def dataset_names() -> list[str]:
    return list(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ChoiceError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray  # uint8 (N, 28, 28)
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = ""  # the folder the files were read from
    subset: int | None = None
    seed: int = 0
    digest: str = field(default="", compare=False)
    # Where each test image sits in the dataset's own test split (a subset draws them; else 0..n-1), and that
    # split's digest: two runs on different samples meet on the images they share, matched by this index.
    test_index: np.ndarray | None = field(default=None, compare=False, repr=False)
    test_split: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.test_index is None:  # the test images are the whole split, in file order
            object.__setattr__(self, "test_index", np.arange(len(self.y_test), dtype=np.int64))
        if not self.test_split:
            object.__setattr__(self, "test_split", data_digest(self.x_test, self.y_test))

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def data_digest(*arrays: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes of each array: stable across processes and machines."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- IDX


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataError(f"{path}: bad gzip data ({e}); the file is truncated or corrupt") from None


def parse_idx(buf: bytes, expect_magic: int, name: str = "<bytes>") -> np.ndarray:
    """Parse an IDX buffer (uint8 payload); every header field is checked against the real length."""
    if len(buf) < 8:
        raise DataError(f"{name}: too short for an IDX header ({len(buf)} bytes)")
    magic = struct.unpack(">I", buf[:4])[0]
    if magic != expect_magic:
        raise DataError(f"{name}: wrong magic number 0x{magic:08x} (expected 0x{expect_magic:08x})")
    ndim = expect_magic & 0xFF
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(f"{name}: header truncated ({len(buf)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", buf[4:header])
    # Compare to the bytes we actually have before allocating anything: a lying header cannot
    # make us reserve gigabytes.
    n = math.prod(dims)  # Python ints: no overflow on 2^32-sized fields
    if math.prod(dims[1:]) > MAX_ITEM_BYTES:
        raise DataError(f"{name}: implausible item size {'x'.join(map(str, dims[1:]))} in the header")
    have = len(buf) - header
    if n == 0:
        raise DataError(f"{name}: empty: header dimensions {'x'.join(map(str, dims))} hold no data")
    if have != n:
        raise DataError(
            f"{name}: wrong count: header says {'x'.join(map(str, dims))} = {n} bytes, file has {have}"
        )
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(dims)


def read_manifest(folder: Path) -> dict[str, str]:
    """File name -> MD5 from ``folder/MD5SUMS`` (``md5sum`` output); {} when there is none."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 32 or not all(c in "0123456789abcdefABCDEF" for c in parts[0]):
            raise DataError(f"{path}:{n}: not an md5sum line ({line[:80]!r})")
        name = parts[1].strip().removeprefix("*").removeprefix("./")  # "*": md5sum's binary-mode marker
        out[name] = parts[0].lower()
    return out


def _find_file(folder: Path, stem: str) -> Path | None:
    for cand in (folder / f"{stem}.gz", folder / stem):
        if cand.is_file():
            return cand
    return None


def candidate_folders(spec: DatasetSpec, data_dir: Path) -> list[Path]:
    """Where the four IDX files may lie: the folder itself, <dir>/<name>, or torchvision's layout."""
    return [data_dir, data_dir / spec.name, data_dir / spec.torchvision_class / "raw"]


def find_idx_folder(spec: DatasetSpec, data_dir: Path) -> Path | None:
    for folder in candidate_folders(spec, data_dir):
        if all(_find_file(folder, stem) for stem in SPLIT_FILES.values()):
            return folder
    return None


def read_idx_folder(spec: DatasetSpec, folder: Path, verify_md5: bool = True) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    # A folder that says what its files are (e.g. the committed test slice) is held to its own MD5SUMS;
    # files it does not list are held to the official MD5s, so standard names alone never pass as official.
    manifest = read_manifest(folder) if verify_md5 else {}
    for key, stem in SPLIT_FILES.items():
        path = _find_file(folder, stem)
        if path is None:
            raise DataError(f"{folder / stem}[.gz]: missing")
        magic = IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC
        out[key] = parse_idx(_read_bytes(path), magic, str(path))  # first: names truncation precisely
        if path.name in manifest:
            want, what = manifest[path.name], f"not the file {folder / MANIFEST} lists, or corrupt"
        else:
            want, what = spec.md5.get(path.name), f"not the official {spec.name} file, or corrupt"
        if verify_md5 and want is not None:
            got = file_digest(path, "md5")
            if got != want:
                raise DataError(f"{path}: MD5 mismatch (got {got}, expected {want}): {what}")
    for split in ("train", "test"):
        n_img, n_lab = len(out[f"{split}_images"]), len(out[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(f"{folder}: wrong count: {split} has {n_img} images but {n_lab} labels")
        bad = out[f"{split}_labels"] >= len(spec.classes)
        if bad.any():
            raise DataError(f"{folder}: {split} labels outside 0..{len(spec.classes) - 1}")
    return out


@lru_cache(maxsize=4)
def _read_cached(name: str, folder: str, stamp: tuple, verify_md5: bool) -> dict[str, np.ndarray]:
    return read_idx_folder(get_spec(name), Path(folder), verify_md5)


def _stamp(folder: Path) -> tuple:
    # The manifest too: an edited MD5SUMS must be checked again, not served from the cache.
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()
                        if p.name.split(".")[0] in SPLIT_FILES.values() or p.name == MANIFEST))


def default_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Explicit argument, else ``$FMNIST_DATA_DIR``, else ``./data``."""
    return Path(data_dir or os.environ.get("FMNIST_DATA_DIR") or "data").expanduser()


def _download(spec: DatasetSpec, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = getattr(tvd, spec.torchvision_class)
    try:
        for train in (True, False):
            cls(root=str(root), train=train, download=True)
    except Exception as e:  # network errors come in many types; we only report them
        raise DataError(
            f"{spec.name} not found under {root} and the download failed ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); put the four IDX files "
            f"({', '.join(v + '.gz' for v in SPLIT_FILES.values())}) in {root / spec.name} "
            f"or point --data-dir / FMNIST_DATA_DIR at their folder"
        ) from None


def stratified_order(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Every index of ``y`` in one seeded order whose every prefix keeps the class proportions (each class
    within one image of its share): each class shuffled by the seed, then the classes interleaved by rank."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    idx, rank, cls = [], [], []
    for c, k in zip(classes, counts):
        idx.append(rng.permutation(np.flatnonzero(y == c)))
        rank.append((np.arange(k) + 0.5) / k)  # the j-th image of a class is due at this share of the order
        cls.append(np.full(k, c))
    idx, rank, cls = np.concatenate(idx), np.concatenate(rank), np.concatenate(cls)
    return idx[np.lexsort((cls, rank))]


def stratified_indices(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """n indices with class proportions kept, sorted to keep file order: the first n of ``stratified_order``,
    so samples drawn with one seed nest (the 500 of a seed lie inside its 2,000)."""
    if n >= len(y):
        return np.arange(len(y))
    return np.sort(stratified_order(y, seed)[:n])


def load_dataset(
    name: str = "fashion-mnist",
    data_dir: str | os.PathLike | None = None,
    subset: int | None = None,
    seed: int = 0,
    download: bool = True,
    verify_md5: bool = True,
) -> Dataset:
    """Load train/test uint8 images and int64 labels; ``subset`` keeps a stratified N of each split.

    Missing files are downloaded with torchvision unless ``download=False`` or ``$FMNIST_OFFLINE`` is set.
    """
    spec = get_spec(name)
    root = default_data_dir(data_dir)
    folder = find_idx_folder(spec, root)
    if folder is None:
        if not download or os.environ.get("FMNIST_OFFLINE"):
            tried = ", ".join(str(p) for p in candidate_folders(spec, root))
            raise DataError(
                f"{spec.name} IDX files not found (looked in {tried}); put "
                f"{', '.join(v + '.gz' for v in SPLIT_FILES.values())} in {root / spec.name} "
                f"or point --data-dir / FMNIST_DATA_DIR at their folder"
            )
        _download(spec, root)
        folder = find_idx_folder(spec, root)
        if folder is None:
            raise DataError(f"{spec.name}: download finished but no IDX files under {root}")
    arrays = _read_cached(spec.name, str(folder.resolve()), _stamp(folder), verify_md5)
    xtr, ytr = arrays["train_images"], arrays["train_labels"].astype(np.int64)
    xte, yte = arrays["test_images"], arrays["test_labels"].astype(np.int64)
    split = data_digest(xte, yte)  # the whole test split, before any subset
    ite = np.arange(len(yte), dtype=np.int64)
    if subset is not None:
        if subset < len(spec.classes):
            raise ParamError(f"subset={subset} is too small: need at least {len(spec.classes)} (one per class)")
        itr, ite = stratified_indices(ytr, subset, seed), stratified_indices(yte, subset, seed)
        xtr, ytr, xte, yte = xtr[itr], ytr[itr], xte[ite], yte[ite]
        if subset >= max(len(arrays["train_labels"]), len(arrays["test_labels"])):
            subset = None  # the whole dataset: same digest, same cache entries
    return Dataset(
        name=spec.name,
        classes=spec.classes,
        x_train=xtr,
        y_train=ytr,
        x_test=xte,
        y_test=yte,
        source=str(folder),
        subset=subset,
        seed=seed,
        digest=data_digest(xtr, ytr, xte, yte),
        test_index=ite,
        test_split=split,
    )


def synthetic_dataset(n_train: int = 200, n_test: int = 100, n_classes: int = 10, seed: int = 0) -> Dataset:
    """Tiny learnable stand-in (each class a distinct blob pattern) for tests and demos."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, size=(n_classes, 28, 28)).astype(np.float32)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % n_classes
        x = protos[y] * 0.7 + rng.integers(0, 256, size=(n, 28, 28)) * 0.3
        return x.clip(0, 255).astype(np.uint8), y.astype(np.int64)

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    classes = DATASETS["fashion-mnist"].classes[:n_classes]
    return Dataset("synthetic", classes, xtr, ytr, xte, yte, source="synthetic", seed=seed,
                   digest=data_digest(xtr, ytr, xte, yte))


def train_val_split(y: np.ndarray, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train_idx, val_idx) carved from the *training* labels; the test set is never involved."""
    if not 0 < val_fraction < 1:
        raise ParamError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(int(round(len(y) * val_fraction)), len(np.unique(y)))
    val = stratified_indices(y, n_val, seed)
    mask = np.ones(len(y), dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), val


# ------------------------------------------------------------------------------------- images to predict


def read_images(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Images to classify and a name for each: an IDX images file (``.gz`` or not), a ``.npy`` array, or a folder
    of PNGs (greyscale or not; sorted by file name)."""
    p = Path(path)
    if p.is_dir():
        from PIL import Image

        files = sorted(f for f in p.iterdir() if f.suffix.lower() == ".png")
        if not files:
            raise DataError(f"{p}: no .png files in this folder")
        imgs = []
        for f in files:
            try:
                with Image.open(f) as im:
                    imgs.append(np.asarray(im.convert("L")))
            except OSError as e:
                raise DataError(f"{f}: not a readable PNG ({e})") from None
        sizes = {a.shape for a in imgs}
        if len(sizes) > 1:
            raise DataError(f"{p}: PNGs of different sizes {sorted(sizes)}; each must be 28x28")
        return np.stack(imgs), [f.name for f in files]
    if not p.is_file():
        raise DataError(f"{p}: no such file or folder; give an IDX images file (.gz), a .npy array or a folder of PNGs")
    if p.suffix == ".npy":
        try:
            a = np.load(p, allow_pickle=False)
        except ValueError as e:
            raise DataError(f"{p}: not a plain .npy array ({e})") from None
    else:
        a = parse_idx(_read_bytes(p), IMAGES_MAGIC, str(p))
    return a, [str(i) for i in range(len(a))]
