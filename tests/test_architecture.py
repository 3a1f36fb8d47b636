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


def _imports() -> dict[str, set[str]]:
    """fmnist module -> the fmnist modules it imports, at module level or inside a function."""
    import ast

    pkg = Path(__file__).resolve().parent.parent / "fmnist"
    mods = {".".join(p.relative_to(pkg.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in pkg.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        here = m.split(".") if path.name == "__init__.py" else m.split(".")[:-1]  # the module's package
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else (node.module or "")
                names = [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                base, names = "", [a.name for a in node.names]
            else:
                continue
            for target in names + [base]:
                if target in mods and target != m:
                    edges[m].add(target)
                    break
    return edges


def test_imports_flow_one_way_with_no_cycle():
    """steps -> the graph runner -> commands -> cli, and no cycle anywhere in fmnist/, lazy imports included."""
    edges = _imports()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            assert state.get(t) != 1, "import cycle: " + " -> ".join(path[path.index(t):] + [t]) if t in path \
                else f"import cycle through {t}"
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    layer = {"steps": 0, "steps.graph": 1, "commands": 2, "cli": 3}

    def level(m: str) -> int | None:
        parts = m.split(".")
        if parts[1:3] == ["steps", "graph"]:
            return layer["steps.graph"]
        return layer.get(parts[1]) if len(parts) > 1 else None

    for m, targets in edges.items():
        for t in targets:
            if level(m) is not None and level(t) is not None:
                assert level(t) <= level(m), f"{m} imports {t}: imports flow steps -> graph -> commands -> cli"
