#!/usr/bin/env python3
"""Every GPU figure in one call: ResNet-18 feature extraction, scattering, the fast fine-tuning recipe (chosen on
the validation split, the test set read once) and the standard profile's training images/s.

Written for the device tool (docs/benchmarks.md, "GPU (one call, unmeasured)"): one H100/H200 with Python 3.12,
torch, torchvision and numpy, no network, at most 10 minutes a command. The script needs nothing else: from
``fmnist`` it imports only modules that import nothing beyond torch/torchvision/numpy and the standard library
(``fmnist.data``, ``fmnist.weights``, ``fmnist.device``, ``fmnist.finetune.train``, ``fmnist.features.scatnet``,
whose kymatio import waits for the scattering section). Without kymatio (or scipy, which it imports), the
scattering figures are ``null`` and the JSON says why; everything else is measured.

Before the call, here, in the repo's root (``.device/`` is git-ignored; name it in the call's ``carry``)::

    python bench/gpu.py --prepare .device   # copies the IDX files, downloads the wheels, prints the carried size

which does this (30.9 MB of data, 0.23 MB of wheels; with the working tree about 32 MiB of the 64 MiB)::

    mkdir -p .device/data .device/wheels
    cp ../shared/data/fashion-mnist/*.gz ../shared/data/fashion-mnist/MD5SUMS .device/data/
    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux2014_x86_64 -d .device/wheels kymatio==0.3.0 packaging

``from kymatio import Scattering2D`` with ``frontend="torch"`` (kymatio 0.3.0) imports scipy (``scipy.fft``, in
the 2-D filter bank) and packaging (its torch backend's version check); appdirs and configparser, which its
metadata also requires, are not imported on that path. The device image lists scipy and packaging among its
packages (/work/.library/device/KINDS.md), so kymatio's wheel (and packaging's, to be safe) is all that must
travel. scipy's wheel does not fit beside all the data: scipy 1.18.1 for cp312 is 35.3 MB, the data 30.9 MB and
the working tree about 2.4 MB: 65.6 MiB, over the 64 MiB a call carries. Where scipy is missing there, the
scattering figures come back null with the import error; a second call can take them with the training files
alone (26.5 MB) beside scipy's wheel (``--prepare DIR --with-scipy``, then delete DIR/data/t10k-*; about
61 MiB) and ``--sections scattering --scatter-train-only`` (60,000 images instead of 70,000).

``--wheels DIR`` installs every ``DIR/*.whl`` at start (``pip install --no-index --no-deps --target <tmp>``;
unpacked with zipfile where pip fails) and puts the target first on ``sys.path``.

The call (timeout 540 s: by their estimates, the recipe's candidates and final run end within ``--budget-s``, 420 s
by default, of the script's start)::

    set -o pipefail; PYTHONUNBUFFERED=1 python3 bench/gpu.py --device cuda --data-dir .device/data \\
        --wheels .device/wheels 2>&1 | tee $OUT/gpu.log

It writes ``$OUT/gpu.json`` (else ``--out PATH``, else ``outputs/gpu.json``) after every section, so a run cut
off still leaves what it measured, and prints each figure as it goes. Here, every code path in under a minute::

    OMP_NUM_THREADS=1 python bench/gpu.py --quick --device cpu --data-dir tests/data/fashion-mnist-mini \\
        --out /tmp/gpu.json

Sections (``--sections``, all by default):

- ``features``: ResNet-18 (random init, fc = identity, eval, inference mode; bf16 autocast and channels_last on
  CUDA) images/s at 32, 64 and 224 px on all 70,000 images (``--quick``: a few hundred), uploaded as uint8,
  resized and normalised on the device, features back in host memory; a warm-up on the full and the last
  batch's shapes first (cuDNN picks its kernels per shape), the device synchronised around the timing.
- ``scattering``: kymatio's torch frontend built as ``fmnist.features.scatnet`` builds it, on the device, for
  (J=2, L=8) and (J=3, L=1), max_order 2, on all 70,000 images.
- ``profile``: ``FitConfig()`` (the standard GPU defaults) for one epoch on the 54k training split: the
  history's training images/s.
- ``recipe``: candidates around ``fmnist.finetune.train.FAST_RECIPE``, each trained from random init on the
  54k split and scored on the 6k validation split only (flip test-time augmentation is chosen there too, as a
  cheap evaluation-only choice); one change at a time from the best candidate so far that trains within
  ``--target-s``: the epochs that fill it, horizontal flips, EMA, another image size at the same time. Each
  candidate gets a time estimate (a short timed burst of training steps per image size, corrected by what the
  candidates before it really took) and is skipped, with the reason recorded, when it and the final run would
  not end inside ``--budget-s`` from the script's start. The chosen one is trained once more and scored once on
  the test set: training seconds, the per-epoch validation curve, the test accuracy, and whether it met the
  target (>= ``--target-accuracy`` in <= ``--target-s`` of training).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fmnist.data import load_dataset, stratified_indices, train_val_split  # noqa: E402
from fmnist.device import resolve_device  # noqa: E402
from fmnist.weights import Weights, build_resnet18, imagenet_preprocess  # noqa: E402

SECTIONS = ("features", "scattering", "profile", "recipe")
FEATURE_SIZES = (32, 64, 224)
SCATTERINGS = ((2, 8), (3, 1))  # (J, L), max_order 2
RECIPE_FIELDS = ("recipe", "ema", "flip", "tta")  # what the fast recipe adds to FitConfig
# The recipe's starting point where fmnist.finetune.train has no FAST_RECIPE yet (a guess, said so in the JSON).
GUESS = {"recipe": "fast", "image_size": 32, "epochs": 15, "batch_size": 256, "lr": 0.1, "augment": True,
         "flip": True, "ema": 0.0}
EMA_ON = 0.999  # the EMA candidate's decay where the base recipe has none
VAL_FRACTION, SPLIT_SEED = 0.1, 0  # the finetune step's split: 54k / 6k of the 60k training images
QUICK = {"features": 200, "features_224": 32, "train": 256, "val": 128, "test": 128}  # --quick's image counts
SAFETY = 1.25  # estimates are multiplied by this until a candidate has run


def figure_keys() -> list[str]:
    return ([f"resnet18_{s}px_images_per_second" for s in FEATURE_SIZES]
            + [f"scattering_J{j}_L{l}_images_per_second" for j, l in SCATTERINGS]
            + ["standard_train_images_per_second", "fast_recipe_train_seconds", "fast_recipe_test_accuracy",
               "fast_recipe_target_met"])


# ------------------------------------------------------------------------------------------------ plumbing


class Report:
    """The JSON being built: written (atomically) after every section, so a run cut off keeps its figures."""

    def __init__(self, path: Path, head: dict):
        self.path = path
        self.data = {**head, "figures": {k: None for k in figure_keys()}, "null_reasons": {}, "sections": {},
                     "errors": {}}

    def figure(self, key: str, value, unit: str = "", reason: str = "") -> None:
        self.data["figures"][key] = value
        if value is None:
            self.data["null_reasons"][key] = reason
            print(f"  {key}: null ({reason})", flush=True)
        else:
            self.data["null_reasons"].pop(key, None)
            shown = (value if not isinstance(value, float) else f"{value:,.1f}" if value >= 10
                     else f"{value:.4f}")
            print(f"  {key}: {shown} {unit}".rstrip(), flush=True)

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=_jsonable) + "\n")
        os.replace(tmp, self.path)


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def sync(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def free(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "?"


def machine(dev) -> dict:
    import torchvision

    info = {"device": str(dev), "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info.update(device_name=torch.cuda.get_device_name(dev), gpu_memory_gib=round(p.total_memory / 2**30, 1),
                    multiprocessors=p.multi_processor_count, cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    else:
        info["device_name"] = info["cpu"]
    return info


def install_wheels(folder: Path) -> dict:
    """``pip install --no-index --no-deps --target <tmp>`` every wheel in ``folder``; the target goes first on
    sys.path. Where pip fails, the wheels are unpacked with zipfile (a wheel is a zip of its install tree)."""
    wheels = sorted(folder.glob("*.whl"))
    out = {"dir": str(folder), "wheels": [w.name for w in wheels], "target": None, "how": None, "error": None}
    if not wheels:
        out["error"] = f"no .whl files in {folder}"
        return out
    target = Path(tempfile.mkdtemp(prefix="gpu-wheels-"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--disable-pip-version-check", "--target", str(target), *map(str, wheels)],
                       capture_output=True, text=True)
    out["how"] = "pip"
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["?"])[-1]
        try:
            for w in wheels:
                with zipfile.ZipFile(w) as z:
                    z.extractall(target)
            out["how"] = f"unzipped (pip failed: {why})"
        except (OSError, zipfile.BadZipFile) as e:
            out["error"] = f"pip failed ({why}) and unzipping failed ({e})"
            return out
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    out["target"] = str(target)
    return out


def prepare(folder: Path, data_src: Path, scipy: bool) -> int:
    """Here, before the call: the IDX files into ``folder/data``, kymatio's wheels into ``folder/wheels`` (pip
    download, cp312 manylinux), and what the call would carry against the device tool's 64 MiB."""
    import shutil

    data, wheels = folder / "data", folder / "wheels"
    data.mkdir(parents=True, exist_ok=True)
    wheels.mkdir(parents=True, exist_ok=True)
    for f in sorted(data_src.iterdir()):
        if f.name.endswith(".gz") or f.name == "MD5SUMS":
            shutil.copyfile(f, data / f.name)
    plats = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                         "manylinux2014_x86_64") for a in ("--platform", p)]
    names = ["kymatio==0.3.0", "packaging"] + (["scipy"] if scipy else [])
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", *plats, "-d", str(wheels), *names])
    if r.returncode:
        print(f"pip download failed ({r.returncode}): {names}", file=sys.stderr)
        return r.returncode
    sizes = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    for name, size in sizes.items():
        print(f"  {size / 1e6:8.2f} MB  {name}")
    try:  # the rest of what travels: tracked and untracked-not-ignored files (read-only git query)
        files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                               check=True).stdout.decode().split("\0")
        tree = sum((ROOT / f).stat().st_size for f in files if f and (ROOT / f).is_file())
    except (OSError, subprocess.CalledProcessError):
        tree = 0
    total = tree + sum(sizes.values())
    print(f"  {folder}: {sum(sizes.values()) / 1e6:.1f} MB; with the working tree ({tree / 1e6:.1f} MB) "
          f"{total / 2**20:.1f} MiB of the 64 MiB a call carries{'' if total <= 64 * 2**20 else ': TOO MUCH'}")
    return 0 if total <= 64 * 2**20 else 1


def third_party_modules() -> list[str]:
    """Top-level modules loaded now that are neither the standard library nor fmnist (the script's footprint)."""
    std = set(getattr(sys, "stdlib_module_names", ()))
    tops = {m.split(".")[0] for m, mod in list(sys.modules.items()) if mod is not None}
    return sorted(t for t in tops if t not in std and not t.startswith("_") and t not in ("fmnist", "__main__"))


# ------------------------------------------------------------------------------------------------ sections


def timed_batches(x_u8: np.ndarray, dev, batch: int, fn, width: int) -> tuple[float, torch.Tensor]:
    """Seconds to upload uint8 images, run ``fn`` (float (B, 28, 28) in [0, 1] -> (B, ...)) batch by batch on the
    device and bring the (N, width) float32 result back to host memory; after a warm-up on the full batch's and
    the last batch's shapes."""
    xt = torch.from_numpy(np.require(x_u8, requirements=["C", "W"]))  # IDX arrays are read-only views
    n = len(xt)
    with torch.inference_mode():
        warm = xt[:batch].to(dev).float().div_(255.0)
        fn(warm)
        if n % batch and n > batch:
            fn(warm[:n % batch])
        sync(dev)
        t0 = time.perf_counter()
        xd = xt.to(dev, non_blocking=False)
        out = torch.empty((n, width), device=dev, dtype=torch.float32)
        for s in range(0, n, batch):
            xb = xd[s:s + batch].float().div_(255.0)
            out[s:s + len(xb)] = fn(xb).reshape(len(xb), -1).float()
        host = out.cpu()
        sync(dev)
        seconds = time.perf_counter() - t0
    return seconds, host


def section_features(rep: Report, images: np.ndarray, dev, batch: int, quick: bool = False) -> None:
    cuda = dev.type == "cuda"
    torch.backends.cudnn.benchmark = True
    model = build_resnet18(Weights("none")).to(dev).eval()  # num_classes=None: fc is Identity, 512-d features
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    rows = {}
    for size in FEATURE_SIZES:
        imgs = images[:QUICK["features_224"]] if quick and size == 224 else images  # 224 px is slow on a CPU

        def forward(x, size=size):
            x = imagenet_preprocess(x, size)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                return model(x)

        seconds, feats = timed_batches(imgs, dev, batch, forward, 512)
        assert feats.shape == (len(imgs), 512) and torch.isfinite(feats).all(), "non-finite ResNet-18 features"
        rows[f"{size}px"] = {"images": len(imgs), "image_size": size, "batch_size": batch, "seconds": seconds,
                             "images_per_second": len(imgs) / seconds, "bf16_autocast": cuda,
                             "channels_last": cuda}
        rep.figure(f"resnet18_{size}px_images_per_second", len(imgs) / seconds, "img/s")
    rep.data["sections"]["features"] = rows
    model = None  # let the GPU memory go
    free(dev)


def section_scattering(rep: Report, images: np.ndarray, dev, batch: int) -> None:
    from fmnist.features.scatnet import _scattering, n_coefficients  # the project's builder (kymatio imported there)

    rows, keys = {}, [f"scattering_J{j}_L{l}_images_per_second" for j, l in SCATTERINGS]
    for (J, L), key in zip(SCATTERINGS, keys):
        try:
            S = _scattering(J, L, 2, tuple(images.shape[1:]), str(dev))
            import kymatio

            version = f"{getattr(kymatio, '__version__', '?')} ({Path(kymatio.__file__).parent})"
        except ImportError as e:  # kymatio, or scipy / packaging under it, not installed
            why = (f"kymatio or a package it imports is unavailable ({type(e).__name__}: {e}); carry the wheels "
                   "with --wheels (see the docstring)")
            rows[f"J{J}_L{L}"] = None
            rep.data["sections"]["scattering"] = {**rows, "unavailable": why}
            for k in keys[len(rows) - 1:]:
                rep.figure(k, None, reason=why)
            return
        width = n_coefficients(J, L, 2) * (28 // 2 ** J) ** 2
        seconds, feats = timed_batches(images, dev, batch, S, width)
        assert torch.isfinite(feats).all(), "non-finite scattering coefficients"
        rows[f"J{J}_L{L}"] = {"images": len(images), "J": J, "L": L, "max_order": 2, "dims": width,
                              "batch_size": batch, "seconds": seconds, "images_per_second": len(images) / seconds,
                              "kymatio": version}
        rep.figure(key, len(images) / seconds, "img/s")
        del S
        _scattering.cache_clear()  # the builder keeps it: let the GPU memory go
        free(dev)
    rep.data["sections"]["scattering"] = {**rows, "unavailable": None}


def fit_timed(cfg, split, dev, label: str):
    """``fit`` from random init (mode full), the device synchronised around it; (result, wall seconds)."""
    from fmnist.finetune.train import fit

    def on_epoch(e, r):
        print(f"    {label} epoch {e}/{cfg.epochs}: val {100 * r['val_accuracy']:.2f}%, {r['epoch_seconds']:.1f} s, "
              f"{r['images_per_second']:,.0f} img/s", flush=True)

    model = build_resnet18(Weights("none"), num_classes=10)
    sync(dev)
    t0 = time.perf_counter()
    res = fit(model, split, cfg, device=dev, progress=False, on_epoch_end=on_epoch)
    sync(dev)
    return res, time.perf_counter() - t0


def history_summary(res, wall: float) -> dict:
    h = res.history
    return {"fit_seconds": wall, "epoch_seconds_sum": sum(r["epoch_seconds"] for r in h),
            "train_images_per_second": float(np.mean([r["images_per_second"] for r in h])),
            "val_curve": [r["val_accuracy"] for r in h], "best_epoch": res.best_epoch,
            "best_val_accuracy": res.best_val_accuracy, "epochs": len(h),
            "history": [{k: v for k, v in r.items() if not k.startswith("test")} for r in h]}


def section_profile(rep: Report, split, dev) -> None:
    from fmnist.finetune.train import FitConfig

    fields = {f.name for f in dataclasses.fields(FitConfig)}
    cfg = dataclasses.replace(FitConfig(), epochs=1, **({"recipe": "standard"} if "recipe" in fields else {}))
    print(f"  standard profile, one epoch: {cfg.as_dict()}", flush=True)
    res, wall = fit_timed(cfg, split, dev, "standard")
    rec = res.history[0]
    rep.data["sections"]["profile"] = {"config": cfg.as_dict(), "train_images": len(split.x_train),
                                       "train_images_per_second": rec["images_per_second"],
                                       "epoch_seconds": rec["epoch_seconds"], "fit_seconds": wall,
                                       "val_accuracy": rec["val_accuracy"]}
    rep.figure("standard_train_images_per_second", rec["images_per_second"], "img/s")
    del res
    free(dev)


class Recipe:
    """The fast recipe's search: validation scores only; the test set is read once, by ``final``."""

    def __init__(self, rep: Report, split, test, dev, args, deadline: float):
        from fmnist.finetune import train as T

        self.T, self.rep, self.split, self.test, self.dev, self.args = T, rep, split, test, dev, args
        self.deadline, self.quick = deadline, args.quick
        self.fields = {f.name for f in dataclasses.fields(T.FitConfig)}
        self.missing = [f for f in RECIPE_FIELDS if f not in self.fields]
        fast = getattr(T, "FAST_RECIPE", None)
        self.base_source = "fmnist.finetune.train.FAST_RECIPE" if fast is not None else "bench guess (no FAST_RECIPE)"
        base = {"mode": "full", **(dict(fast) if fast is not None else GUESS)}
        if "recipe" in self.fields:
            base.setdefault("recipe", "fast")
        if self.quick:  # tiny candidates: every path, seconds not minutes
            base.update(epochs=1, image_size=32, batch_size=min(int(base.get("batch_size", 128)), 64))
        self.base = base
        self.tta_native = "tta" in inspect.signature(T.evaluate).parameters
        self.rates: dict[tuple[int, int], float] = {}  # (image size, batch) -> calibrated training img/s
        self.correction = SAFETY
        self.candidates: list[dict] = []
        self.skipped: list[dict] = []

    # -- configuration

    def config(self, overrides: dict):
        """FitConfig from the overrides; fields this FitConfig lacks are dropped (and listed)."""
        kept = {k: v for k, v in overrides.items() if k in self.fields}
        dropped = sorted(k for k in overrides if k not in self.fields)
        return self.T.FitConfig(**kept).validate(), dropped

    # -- estimates

    def rate(self, size: int, batch: int) -> float:
        """Training images/s at this size and batch: a short timed burst of fit-like steps on random images."""
        import torch.nn.functional as F

        key = (size, batch)
        if key in self.rates:
            return self.rates[key]
        cuda = self.dev.type == "cuda"
        torch.backends.cudnn.benchmark = cuda
        model = build_resnet18(Weights("none"), num_classes=10).to(self.dev)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
        g = torch.Generator().manual_seed(0)
        xb = torch.randint(0, 256, (batch, 28, 28), generator=g, dtype=torch.uint8).to(self.dev)
        yb = torch.randint(0, 10, (batch,), generator=g).to(self.dev)

        def step():
            x = imagenet_preprocess(xb.float().div(255.0), size)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        warm, steps = (1, 2) if self.quick or not cuda else (5, 20)
        for _ in range(warm):
            step()
        sync(self.dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync(self.dev)
        self.rates[key] = steps * batch / (time.perf_counter() - t0)
        model = opt = None  # let the GPU memory go
        free(self.dev)
        return self.rates[key]

    def estimate(self, cfg) -> float:
        """Seconds for fit plus the two validation scorings after it (forward passes taken as 3x training)."""
        n_tr, n_va = len(self.split.x_train), len(self.split.x_val)
        r = self.rate(cfg.image_size, min(cfg.batch_size, n_tr))
        per_epoch = n_tr / r + n_va / (3 * r)
        return self.correction * (cfg.epochs * per_epoch + 3 * n_va / (3 * r) + 2.0)

    # -- scoring (validation only)

    def accuracy(self, model, x, y, image_size: int, tta: bool) -> float:
        kw = dict(image_size=image_size, device=self.dev, batch_size=512)
        if not tta:
            return float(self.T.evaluate(model, x, y, **kw))
        if self.tta_native:
            return float(self.T.evaluate(model, x, y, tta=True, **kw))
        # FitConfig has no flip TTA yet: softmax averaged over the images and their mirror images
        p = self.T.predict_proba(model, x, **kw) + self.T.predict_proba(model, np.ascontiguousarray(x[:, :, ::-1]),
                                                                        **kw)
        return float((p.argmax(1) == y).mean())

    def run(self, name: str, overrides: dict, why: str) -> dict | None:
        cfg, dropped = self.config({**overrides, **({"tta": False} if "tta" in self.fields else {})})
        if any(cfg == self.config({**c["overrides"], **({"tta": False} if "tta" in self.fields else {})})[0]
               for c in self.candidates):
            self.skipped.append({"name": name, "overrides": overrides, "reason": "same FitConfig as a candidate "
                                 "already trained" + (f" (FitConfig lacks {dropped})" if dropped else "")})
            print(f"  candidate {name}: skipped (same FitConfig as one already trained)", flush=True)
            return None
        est = self.estimate(cfg)
        best = self.best()
        reserve = max(est, self.estimate(self.config(best["overrides"])[0]) if best else 0.0)
        left = self.deadline - time.perf_counter()
        if est + reserve > left:
            reason = (f"estimated {est:.0f} s, plus {reserve:.0f} s kept for the final run, exceeds the "
                      f"{max(left, 0):.0f} s left of --budget-s")
            self.skipped.append({"name": name, "overrides": overrides, "estimate_s": est, "reason": reason})
            print(f"  candidate {name}: skipped ({reason})", flush=True)
            return None
        print(f"  candidate {name} ({why}): {overrides}, estimated {est:.0f} s", flush=True)
        res, wall = fit_timed(cfg, self.split, self.dev, name)
        plain = self.accuracy(res.model, self.split.x_val, self.split.y_val, cfg.image_size, False)
        flipped = self.accuracy(res.model, self.split.x_val, self.split.y_val, cfg.image_size, True)
        tta = flipped > plain  # ties: no TTA, it doubles the inference cost
        row = {"name": name, "why": why, "overrides": overrides, "config": cfg.as_dict(), "dropped_fields": dropped,
               "estimate_s": est, **history_summary(res, wall), "val_accuracy_plain": plain,
               "val_accuracy_tta": flipped, "tta": tta, "val_score": max(plain, flipped),
               "within_target_s": wall <= self.args.target_s}
        self.correction = min(max(wall / (est / self.correction), 0.5), 3.0)  # actual / raw estimate
        self.candidates.append(row)
        print(f"  candidate {name}: validation {100 * plain:.2f}% (flip TTA {100 * flipped:.2f}%), fit {wall:.1f} s",
              flush=True)
        del res
        free(self.dev)
        return row

    def best(self) -> dict | None:
        """The best validation score among candidates within --target-s (earlier wins ties); else among all."""
        pool = [c for c in self.candidates if c["within_target_s"]] or self.candidates
        best = None
        for c in pool:
            if best is None or c["val_score"] > best["val_score"]:
                best = c
        return best

    # -- the search

    def search(self) -> None:
        max_epochs = 2 if self.quick else 60
        self.run("base", dict(self.base), f"the recipe's own settings ({self.base_source})")
        cur = self.best()
        if cur is not None:  # the epochs that fill --target-s at the measured pace
            per_epoch = cur["fit_seconds"] / cur["epochs"]
            e = max(1, min(max_epochs, int(0.95 * self.args.target_s / per_epoch)))
            if self.quick:
                e = cur["overrides"]["epochs"] + 1
            if e != cur["overrides"]["epochs"]:
                self.run("epochs", {**cur["overrides"], "epochs": e},
                         f"{e} epochs fill {self.args.target_s:.0f} s at {per_epoch:.1f} s/epoch")
            else:
                self.skipped.append({"name": "epochs", "reason": f"{e} epochs already fill --target-s"})
        cur = self.best()
        if cur is not None and "flip" in self.fields:
            flip = not cur["overrides"].get("flip", True)
            self.run("flip", {**cur["overrides"], "flip": flip}, f"horizontal flips {'on' if flip else 'off'}")
        elif cur is not None:
            self.skipped.append({"name": "flip", "reason": "FitConfig has no 'flip' field yet"})
        cur = self.best()
        if cur is not None and "ema" in self.fields:
            on = float(self.base.get("ema") or 0) or EMA_ON
            ema = 0.0 if cur["overrides"].get("ema", 0) else on
            self.run("ema", {**cur["overrides"], "ema": ema}, f"EMA {'off' if not ema else f'decay {ema}'}")
        elif cur is not None:
            self.skipped.append({"name": "ema", "reason": "FitConfig has no 'ema' field yet"})
        cur = self.best()
        if cur is not None:  # another image size, epochs scaled to take the same time
            size = cur["overrides"]["image_size"]
            alt = (28 if size != 28 else 32) if self.quick else (64 if size < 64 else 32)
            bs = cur["overrides"].get("batch_size", 128)
            ratio = self.rate(size, bs) / self.rate(alt, bs)  # > 1: the alternative is slower
            e = max(1, min(max_epochs, int(cur["overrides"]["epochs"] / ratio)))
            self.run("image_size", {**cur["overrides"], "image_size": alt, "epochs": e},
                     f"{alt} px, {e} epochs for about the same time")

    def final(self) -> dict:
        chosen = self.best()
        if chosen is None:
            return {"error": "no candidate was trained (see skipped)"}
        overrides = {**chosen["overrides"], **({"tta": chosen["tta"]} if "tta" in self.fields else {})}
        cfg, dropped = self.config(overrides)
        print(f"  final: {chosen['name']} {overrides} (validation {100 * chosen['val_score']:.2f}%), "
              f"trained once more, then the test set once", flush=True)
        res, wall = fit_timed(cfg, self.split, self.dev, "final")
        x_test, y_test = self.test
        test_acc = self.accuracy(res.model, x_test, y_test, cfg.image_size, chosen["tta"])  # the one test reading
        out = {"chosen": chosen["name"], "overrides": overrides, "config": cfg.as_dict(), "dropped_fields": dropped,
               "tta": chosen["tta"], "chosen_val_score": chosen["val_score"], **history_summary(res, wall),
               "test_images": len(y_test), "test_accuracy": test_acc, "test_evaluations": 1,
               "chosen_among_candidates_within_target_s": any(c["within_target_s"] for c in self.candidates)}
        out["target_met"] = bool(test_acc >= self.args.target_accuracy and wall <= self.args.target_s)
        print(f"  final: test {100 * test_acc:.2f}% after {wall:.1f} s of training (fit), target "
              f"{'met' if out['target_met'] else 'not met'}", flush=True)
        del res
        free(self.dev)
        return out


def section_recipe(rep: Report, split, test, dev, args, deadline: float) -> None:
    r = Recipe(rep, split, test, dev, args, deadline)
    sec = rep.data["sections"]["recipe"] = {
        "base": r.base, "base_source": r.base_source, "fitconfig_missing_fields": r.missing,
        "tta": "fmnist evaluate(tta=True)" if r.tta_native else "bench: softmax averaged with the mirror images",
        "scored_on": f"validation split ({len(split.y_val)} images) only; the test set once, for the chosen one",
        "target": {"test_accuracy": args.target_accuracy, "train_seconds": args.target_s},
        "candidates": r.candidates, "skipped": r.skipped, "calibrated_train_images_per_second": {}}
    if r.missing:
        print(f"  FitConfig lacks {r.missing}: those settings are dropped from every candidate", flush=True)
    try:
        r.search()
    finally:
        sec["calibrated_train_images_per_second"] = {f"{s}px_batch{b}": v for (s, b), v in r.rates.items()}
    final = sec["final"] = r.final()
    if "error" in final:
        for k in ("fast_recipe_train_seconds", "fast_recipe_test_accuracy", "fast_recipe_target_met"):
            rep.figure(k, None, reason=final["error"])
        return
    rep.figure("fast_recipe_train_seconds", final["fit_seconds"], "s")
    rep.figure("fast_recipe_test_accuracy", final["test_accuracy"])
    rep.figure("fast_recipe_target_met", final["target_met"])


# ------------------------------------------------------------------------------------------------ main


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=".device/data", help="folder with the four IDX files [.device/data]")
    p.add_argument("--out", default=None, help="the JSON [$OUT/gpu.json, else outputs/gpu.json]")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--quick", action="store_true", help="a few hundred images, tiny candidates: every code path")
    p.add_argument("--wheels", default=None, help="install DIR/*.whl (--no-index --no-deps) into a temp target first")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {','.join(SECTIONS)}")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="seconds from the start within which the recipe's candidates and final run must end [420]")
    p.add_argument("--target-accuracy", type=float, default=0.945)
    p.add_argument("--target-s", type=float, default=60.0, help="training seconds the fast recipe may take [60]")
    p.add_argument("--batch-size", type=int, default=None, help="inference batch [1024 on CUDA, 64 on the CPU]")
    p.add_argument("--scatter-train-only", action="store_true",
                   help="read only the training files (a scattering-only call carrying scipy's wheel)")
    p.add_argument("--prepare", metavar="DIR", default=None,
                   help="(here, before the call) copy the IDX files to DIR/data, pip-download kymatio's wheels to "
                        "DIR/wheels, print the carried size, and exit")
    p.add_argument("--data-src", default=str(ROOT.parent / "shared" / "data" / "fashion-mnist"),
                   help="--prepare's source of the IDX files [../shared/data/fashion-mnist]")
    p.add_argument("--with-scipy", action="store_true", help="--prepare downloads scipy's wheel too (35 MB)")
    return p.parse_args(argv)


def load(args) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    if args.scatter_train_only:
        from fmnist.data import SPLIT_FILES, _find_file, _read_bytes, parse_idx, IMAGES_MAGIC, LABELS_MAGIC

        d = Path(args.data_dir)
        xi, yi = _find_file(d, SPLIT_FILES["train_images"]), _find_file(d, SPLIT_FILES["train_labels"])
        if xi is None or yi is None:
            raise FileNotFoundError(f"{d}: no train-images/train-labels IDX files")
        x = parse_idx(_read_bytes(xi), IMAGES_MAGIC, str(xi))
        y = parse_idx(_read_bytes(yi), LABELS_MAGIC, str(yi)).astype(np.int64)
        return x, y, x[:0], y[:0], str(d)
    ds = load_dataset(data_dir=args.data_dir, download=False)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.source


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse(argv)
    if args.prepare:
        return prepare(Path(args.prepare), Path(args.data_src), args.with_scipy)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown sections {unknown}; choose from {SECTIONS}")
    if args.scatter_train_only and set(sections) - {"scattering", "features"}:
        raise SystemExit("--scatter-train-only reads no test files: use it with --sections scattering[,features]")
    wheels = install_wheels(Path(args.wheels)) if args.wheels else None
    dev = resolve_device(args.device)
    out = Path(args.out) if args.out else (Path(os.environ["OUT"]) / "gpu.json" if os.environ.get("OUT")
                                           else ROOT / "outputs" / "gpu.json")
    head = {"script": "bench/gpu.py", "quick": args.quick, "args": vars(args), "sections_run": sections,
            **machine(dev), "wheels": wheels}
    rep = Report(out, head)
    print(f"bench/gpu.py on {head['device_name']} ({dev}), torch {head['torch']}, {head['date']}; JSON -> {out}",
          flush=True)
    if wheels:
        print(f"  wheels: {wheels}", flush=True)
    x_train, y_train, x_test, y_test, source = load(args)
    tr, va = train_val_split(y_train, VAL_FRACTION, SPLIT_SEED)
    te = np.arange(len(y_test))
    every = np.concatenate([x_train, x_test])
    if args.quick:
        tr = tr[stratified_indices(y_train[tr], QUICK["train"], SPLIT_SEED)]
        va = va[stratified_indices(y_train[va], QUICK["val"], SPLIT_SEED)]
        te = stratified_indices(y_test, QUICK["test"], SPLIT_SEED) if len(y_test) else te
        every = every[:QUICK["features"]]
    rep.data["data"] = {"dir": source, "images_timed": len(every), "train": len(tr), "val": len(va), "test": len(te),
                        "split": f"fmnist.data.train_val_split(y_train, {VAL_FRACTION}, seed={SPLIT_SEED})"}
    print(f"  data: {source}: {len(every)} images timed; split {len(tr)} train / {len(va)} validation / "
          f"{len(te)} test", flush=True)
    batch = args.batch_size or (1024 if dev.type == "cuda" else 64)
    rep.write()

    for name in SECTIONS:
        if name not in sections:
            keys = {"features": [k for k in figure_keys() if k.startswith("resnet18")],
                    "scattering": [k for k in figure_keys() if k.startswith("scattering")],
                    "profile": ["standard_train_images_per_second"],
                    "recipe": [k for k in figure_keys() if k.startswith("fast_recipe")]}[name]
            for k in keys:
                rep.data["figures"][k] = None
                rep.data["null_reasons"][k] = f"section {name} not asked for (--sections)"
            continue
        print(f"[{name}] at {time.perf_counter() - t_start:.0f} s", flush=True)
        t0 = time.perf_counter()
        try:
            if name == "features":
                section_features(rep, every, dev, batch, args.quick)
            elif name == "scattering":
                section_scattering(rep, every, dev, batch)
            else:
                from fmnist.finetune.train import SplitData  # no test arrays: the fits never see them

                split = SplitData(x_train[tr], y_train[tr], x_train[va], y_train[va])
                if name == "profile":
                    section_profile(rep, split, dev)
                else:
                    section_recipe(rep, split, (x_test[te], y_test[te]), dev, args, t_start + args.budget_s)
        except Exception as e:  # one section's failure must not lose the others' figures
            msg = f"{type(e).__name__}: {e}"
            rep.data["errors"][name] = {"error": msg, "traceback": traceback.format_exc().splitlines()[-12:]}
            print(f"  [{name}] FAILED: {msg}", flush=True)
            traceback.print_exc()
            for k, v in rep.data["figures"].items():
                if v is None and k not in rep.data["null_reasons"] and _section_of(k) == name:
                    rep.data["null_reasons"][k] = f"section {name} failed: {msg}"
        rep.data.setdefault("section_seconds", {})[name] = time.perf_counter() - t0
        rep.data["total_seconds"] = time.perf_counter() - t_start
        rep.data["modules"] = third_party_modules()
        rep.write()
    rep.data["total_seconds"] = time.perf_counter() - t_start
    rep.write()
    print(f"done in {rep.data['total_seconds']:.1f} s; {out}", flush=True)
    return 1 if rep.data["errors"] else 0


def _section_of(key: str) -> str:
    return ("features" if key.startswith("resnet18") else "scattering" if key.startswith("scattering")
            else "profile" if key.startswith("standard") else "recipe")


if __name__ == "__main__":
    sys.exit(main())
