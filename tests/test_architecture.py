"""House rules that keep the code base honest."""

import re
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "fmnist"


def test_only_tracking_imports_mlflow():
    tracking = PKG / "tracking"
    assert (tracking / "__init__.py").exists()  # the exemption below names the real package
    offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                 if tracking not in p.parents and re.search(r"^\s*(import mlflow|from mlflow)", p.read_text(), re.M)]
    assert offenders == []


def test_entrypoints_are_thin():
    for p in (PKG.parent / "entrypoints").glob("*.py"):
        code = [ln for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith(("#", '"""'))]
        assert len(code) <= 10, f"{p.name} holds logic: entry points only parse params and call the library"
