"""Write the committed test fixture: a stratified, seeded slice of the official Fashion-MNIST files.

    .venv/bin/python scripts/make_fixture.py [--src ../shared/data/fashion-mnist] [--n-train 1000] [--n-test 600]

Output (tests/data/fashion-mnist-mini/): the four IDX .gz files under their standard names, MD5SUMS for them,
the upstream LICENSE, indices.txt and README.md. Reruns with the same options are byte-identical (gzip mtime 0).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import click
import numpy as np

from fmnist.cache import file_digest
from fmnist.data import IMAGES_MAGIC, LABELS_MAGIC, SPLIT_FILES, get_spec, read_idx_folder, stratified_indices

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SRC = ROOT.parent / "shared" / "data" / "fashion-mnist"
DEFAULT_OUT = ROOT / "tests" / "data" / "fashion-mnist-mini"

README = """\
# fashion-mnist-mini: a small slice of the real Fashion-MNIST, for the tests

{n_train} training and {n_test} test images of the official Fashion-MNIST files (Zalando Research, MIT licence:
see LICENSE), in the standard IDX format under the standard names, so `fmnist.data.load_dataset` reads this
folder like the full one. It is what the `real_data_dir` fixture in tests/conftest.py gives unless
`$FMNIST_TEST_DATA_DIR` names another folder; the full files (../shared/data/fashion-mnist) are for benchmarks.

| file | what |
|---|---|
| train-images-idx3-ubyte.gz | {n_train} x 28 x 28 uint8 |
| train-labels-idx1-ubyte.gz | {n_train} labels 0-9, {per_train} per class |
| t10k-images-idx3-ubyte.gz | {n_test} x 28 x 28 uint8 |
| t10k-labels-idx1-ubyte.gz | {n_test} labels 0-9, {per_test} per class |
| MD5SUMS | md5sum manifest of the four files; the loader verifies against it instead of the official MD5s |
| indices.txt | the official indices (0-based, file order) each split was taken from |

Made from the official files (their MD5s checked first) with

    {command}

which takes `fmnist.data.stratified_indices(labels, n, seed={seed})` of each split (class proportions kept,
indices sorted so file order is kept) and writes gzip with mtime 0: a rerun is byte-identical
(`md5sum -c MD5SUMS`), given the same stratified_indices and zlib.
"""


def _idx_gz(arr: np.ndarray, magic: int) -> bytes:
    """One IDX file, gzip-compressed without a timestamp or name so the bytes depend only on the data."""
    blob = struct.pack(f">I{arr.ndim}I", magic, *arr.shape) + np.ascontiguousarray(arr, np.uint8).tobytes()
    return gzip.compress(blob, compresslevel=9, mtime=0)


@click.command()
@click.option("--src", type=click.Path(exists=True, file_okay=False, path_type=Path), default=DEFAULT_SRC,
              show_default=True, help="Folder with the four official .gz files and their LICENSE.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True)
@click.option("--n-train", type=int, default=1000, show_default=True)
@click.option("--n-test", type=int, default=600, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def main(src: Path, out: Path, n_train: int, n_test: int, seed: int) -> None:
    spec = get_spec("fashion-mnist")
    # The README says "a slice of the official files": hold the source to the official MD5s, not to any
    # MD5SUMS beside it (pointing --src at a slice would otherwise slice a slice).
    for stem in SPLIT_FILES.values():
        name = f"{stem}.gz"
        got = file_digest(src / name, "md5") if (src / name).is_file() else "missing"
        if got != spec.md5[name]:
            raise click.ClickException(f"{src / name}: not the official file (MD5 {got}, expected {spec.md5[name]})")
    if not (src / "LICENSE").is_file():
        raise click.ClickException(f"{src / 'LICENSE'}: missing; the licence must travel with the data")
    arrays = read_idx_folder(spec, src, verify_md5=False)  # verified above

    out.mkdir(parents=True, exist_ok=True)
    sums, index_lines, per = [], [], {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = arrays[f"{split}_labels"]
        idx = stratified_indices(y, n, seed)
        counts = np.bincount(y[idx], minlength=len(spec.classes))
        per[split] = str(counts[0]) if (counts == counts[0]).all() else "/".join(map(str, counts))
        index_lines.append(f"{split}: {' '.join(map(str, idx))}")
        for key, magic in ((f"{split}_images", IMAGES_MAGIC), (f"{split}_labels", LABELS_MAGIC)):
            name = f"{SPLIT_FILES[key]}.gz"
            data = _idx_gz(arrays[key][idx], magic)
            (out / name).write_bytes(data)
            sums.append(f"{hashlib.md5(data).hexdigest()}  {name}")
    (out / "MD5SUMS").write_text("\n".join(sums) + "\n")
    shutil.copyfile(src / "LICENSE", out / "LICENSE")
    (out / "indices.txt").write_text(
        f"# official Fashion-MNIST indices (0-based) in this slice: stratified_indices(labels, n, seed={seed})\n"
        + "\n".join(index_lines) + "\n")
    command = f".venv/bin/python scripts/make_fixture.py --n-train {n_train} --n-test {n_test} --seed {seed}"
    (out / "README.md").write_text(README.format(n_train=n_train, n_test=n_test, per_train=per["train"],
                                                 per_test=per["test"], command=command, seed=seed))
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    click.echo(f"wrote {out} ({total / 1024:.0f} KB in all)")


if __name__ == "__main__":
    main()
