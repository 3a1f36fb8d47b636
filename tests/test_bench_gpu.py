"""bench/gpu.py, the one-call GPU recipe, run here on the CPU: every figure, the recipe chosen on validation
scores only, and nothing imported beyond torch, torchvision and numpy (what the GPU machine has)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu.py"
# What the GPU machine lacks (the script must not need any of it); kymatio too, so scattering is reported missing.
POISON = ("mlflow", "kymatio", "sklearn", "scipy", "pandas", "click", "tqdm")
FIGURES = ("resnet18_32px_images_per_second", "resnet18_64px_images_per_second", "resnet18_224px_images_per_second",
           "scattering_J2_L8_images_per_second", "scattering_J3_L1_images_per_second",
           "standard_train_images_per_second", "fast_recipe_train_seconds", "fast_recipe_test_accuracy",
           "fast_recipe_target_met")
SCATTERING = ("scattering_J2_L8_images_per_second", "scattering_J3_L1_images_per_second")


def _load_module():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _keys(obj) -> set[str]:
    """Every dict key anywhere inside ``obj``."""
    if isinstance(obj, dict):
        return set(obj) | set().union(*(_keys(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_keys(v) for v in obj)) if obj else set()
    return set()


@pytest.mark.slow  # a child process
@pytest.mark.timeout(120)
def test_quick_run_measures_everything_without_the_packages_the_gpu_machine_lacks(real_data_dir, tmp_path):
    out = tmp_path / "gpu.json"
    argv = [str(SCRIPT), "--quick", "--device", "cpu", "--data-dir", str(real_data_dir), "--out", str(out)]
    wrapper = (f"import runpy, sys\nfor m in {POISON!r}:\n    sys.modules[m] = None\n"
               f"sys.argv = {argv!r}\nrunpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("OUT", None)
    r = subprocess.run([sys.executable, "-c", wrapper], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=110)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d = json.loads(out.read_text())

    # the machine, the versions and the date; no section failed
    assert d["device"] == "cpu" and d["device_name"] and d["torch"] and d["date"].startswith("20")
    assert d["errors"] == {}
    assert not set(POISON) & set(d["modules"]), d["modules"]

    # every figure: measured (> 0), or null with its reason (scattering: kymatio was poisoned)
    figs = d["figures"]
    assert set(figs) == set(FIGURES)
    for k in FIGURES:
        if k in SCATTERING:
            assert figs[k] is None and "kymatio" in d["null_reasons"][k]
        elif k == "fast_recipe_target_met":
            assert isinstance(figs[k], bool)
        else:
            assert isinstance(figs[k], float) and figs[k] > 0, (k, figs[k])
        assert k in r.stdout  # printed as it went
    assert 0 < figs["fast_recipe_test_accuracy"] <= 1
    assert d["sections"]["scattering"]["unavailable"]
    feats = d["sections"]["features"]
    assert {row["image_size"] for row in feats.values()} == {32, 64, 224}
    assert d["sections"]["profile"]["config"]["recipe"] == "standard"

    # the recipe: candidates scored on validation only, the test set read once, for the chosen one
    rec = d["sections"]["recipe"]
    assert rec["fitconfig_missing_fields"] == [], "FitConfig lacks the fast recipe's fields"
    cands = rec["candidates"]
    assert len(cands) >= 2
    for c in cands:
        assert 0 <= c["val_accuracy_plain"] <= 1 and 0 <= c["val_accuracy_tta"] <= 1
        assert c["val_score"] == max(c["val_accuracy_plain"], c["val_accuracy_tta"])
        assert c["val_curve"] and c["fit_seconds"] > 0 and c["train_images_per_second"] > 0
        assert c["config"]["test_curve"] is False  # FitConfig's own field: no test curve during the fit
        assert not any("test" in k for k in _keys(c) - {"test_curve"}), c
    final = rec["final"]
    pool = [c for c in cands if c["within_target_s"]] or cands
    best = max(c["val_score"] for c in pool)
    chosen = next(c for c in cands if c["name"] == final["chosen"])
    assert chosen["val_score"] == best == final["chosen_val_score"]
    assert chosen["within_target_s"] or not any(c["within_target_s"] for c in cands)
    assert final["test_evaluations"] == 1 and final["test_accuracy"] == figs["fast_recipe_test_accuracy"]
    assert final["fit_seconds"] == figs["fast_recipe_train_seconds"] and len(final["val_curve"]) == final["epochs"]
    assert final["target_met"] == (final["test_accuracy"] >= 0.945 and final["fit_seconds"] <= 60)
    assert all(0 <= v <= 1 for v in final["val_curve"])
    assert d["data"]["test"] > 0 and d["data"]["val"] > 0


def test_scattering_section_measures_with_kymatio(real_data_dir, tmp_path):
    pytest.importorskip("kymatio")
    import torch

    from fmnist.data import load_dataset

    gpu = _load_module()
    images = load_dataset(data_dir=real_data_dir, download=False).x_test[:16]
    rep = gpu.Report(tmp_path / "gpu.json", {})
    gpu.section_scattering(rep, images, torch.device("cpu"), batch=8)
    sec = rep.data["sections"]["scattering"]
    assert sec["unavailable"] is None
    assert sec["J2_L8"]["dims"] == 81 * 7 * 7 and sec["J3_L1"]["dims"] == 7 * 3 * 3
    for k in SCATTERING:
        assert rep.data["figures"][k] > 0


def _tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel holding one module, ``gpu_bench_probe``."""
    whl = folder / "gpu_bench_probe-0.1-py3-none-any.whl"
    info = "gpu_bench_probe-0.1.dist-info"
    files = {"gpu_bench_probe.py": "VALUE = 42\n",
             f"{info}/METADATA": "Metadata-Version: 2.1\nName: gpu-bench-probe\nVersion: 0.1\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(whl, "w") as z:
        for name, text in {**files, f"{info}/RECORD": record}.items():
            z.writestr(name, text)
    return whl


@pytest.mark.slow  # pip, a child process
def test_wheels_are_installed_with_pip_and_put_first_on_the_path(tmp_path, monkeypatch):
    gpu = _load_module()
    _tiny_wheel(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    got = gpu.install_wheels(tmp_path)
    assert got["error"] is None and got["how"] == "pip" and sys.path[0] == got["target"]
    assert (Path(got["target"]) / "gpu_bench_probe.py").is_file()


def test_wheels_are_unpacked_where_pip_fails(tmp_path, monkeypatch):
    gpu = _load_module()
    _tiny_wheel(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(gpu.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, "", "no pip here"))
    got = gpu.install_wheels(tmp_path)
    assert got["error"] is None and got["how"].startswith("unzipped") and "no pip here" in got["how"]
    assert sys.path[0] == got["target"] and (Path(got["target"]) / "gpu_bench_probe.py").is_file()
    assert gpu.install_wheels(tmp_path / "empty-missing")["error"].startswith("no .whl files")


def test_figure_keys_match_the_documented_list():
    assert _load_module().figure_keys() == list(FIGURES)


def test_recipe_skips_candidates_the_budget_cannot_hold_and_keeps_time_for_the_final(tmp_path, monkeypatch):
    """The search on a fake clock and a fake fit (H100-like pace): what would overrun --budget-s is skipped, with
    its reason, and the final run still ends inside it."""
    import types

    import numpy as np
    import torch

    gpu = _load_module()
    clock = [1000.0]
    rates = {32: 25000.0, 64: 9000.0}

    def fake_fit(cfg, split, dev, label):
        per = len(split.x_train) / rates[cfg.image_size] * 1.3 + 0.3
        clock[0] += cfg.epochs * per + 2
        hist = [{"val_accuracy": 0.9 + e / 1000, "epoch_seconds": per, "images_per_second": rates[cfg.image_size],
                 "train_loss": 1.0} for e in range(1, cfg.epochs + 1)]
        return types.SimpleNamespace(model=None, history=hist, best_val_accuracy=hist[-1]["val_accuracy"],
                                     best_epoch=cfg.epochs), cfg.epochs * per + 2

    def fake_accuracy(self, model, x, y, image_size, tta):
        clock[0] += 0.5
        return 0.94 + 0.001 * tta

    monkeypatch.setattr(gpu, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(gpu, "fit_timed", fake_fit)
    monkeypatch.setattr(gpu.Recipe, "rate", lambda self, size, batch: rates[size])
    monkeypatch.setattr(gpu.Recipe, "accuracy", fake_accuracy)
    args = types.SimpleNamespace(quick=False, target_s=60.0, target_accuracy=0.945, budget_s=250.0)
    split = types.SimpleNamespace(x_train=np.zeros((54000, 28, 28), np.uint8), x_val=np.zeros((6000, 28, 28), np.uint8),
                                  y_val=np.zeros(6000, np.int64))
    rep = gpu.Report(tmp_path / "gpu.json", {})
    start = clock[0] - 50  # the other sections took 50 s
    gpu.section_recipe(rep, split, (np.zeros((10, 28, 28), np.uint8), np.zeros(10, np.int64)), torch.device("cpu"),
                       args, start + args.budget_s)
    rec = rep.data["sections"]["recipe"]
    assert [c["name"] for c in rec["candidates"]][:2] == ["base", "epochs"]
    assert rec["skipped"] and all("--budget-s" in s["reason"] for s in rec["skipped"])
    assert rec["final"]["test_evaluations"] == 1 and clock[0] - start <= args.budget_s
    assert rec["final"]["tta"] is True  # the flip TTA scored higher on validation
