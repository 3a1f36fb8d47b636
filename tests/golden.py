"""Golden run trees: what a command leaves in the store (the tree of runs, their names, params, tags, metric names
and artifact names), normalised so that two runs of the same command on the same data compare equal.

Run ids become the name of the run they point at, temp folders and the checkout become placeholders, and the
values that change from run to run (timings, code versions and cache keys, the environment, pids, hosts) are
replaced by what they are; their keys stay. ``assert_golden(name, uri)`` compares a store with
``tests/golden/<name>.json``; ``FMNIST_UPDATE_GOLDEN=1`` writes the file instead (review its diff).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
ROOT = Path(__file__).resolve().parent.parent
RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")
# Tag values that differ between two runs of the same command: kept as their key only.
VOLATILE_TAGS = {"fmnist.code_version", "fmnist.cache_key", "fmnist.resume_key", "fmnist.environment", "fmnist.pid",
                 "fmnist.node_id", "fmnist.host", "fmnist.git_commit", "fmnist.artifact_sha256", "fmnist.executor_resources",
                 "mlflow.user", "mlflow.source.name", "mlflow.source.git.commit", "mlflow.source.git.branch", "mlflow.log-model.history", "mlflow.runColor", "mlflow.project.backend",
                 "mlflow.project.env", "mlflow.source.type", "mlflow.note.content"}
VOLATILE_TAG_PATTERNS = (re.compile(r"^fmnist\.(.*_)?seconds$"), re.compile(r"^mlflow\.system"))
# Tags a checkout may or may not get (a git remote): left out.
ABSENT_OR_NOT = {"mlflow.source.git.repoURL", "mlflow.gitRepoURL"}
VOLATILE_PARAMS = {"ray_address"}


def _normalise(text: str, names: dict[str, str]) -> str:
    text = RUN_ID.sub(lambda m: names.get(m.group(0), "<run id>"), text)
    for path, mark in ((str(ROOT), "<checkout>"), (os.path.realpath(tempfile.gettempdir()), "<tmp>"),
                       (tempfile.gettempdir(), "<tmp>")):
        text = text.replace(path, mark)
    return re.sub(r"<tmp>/[^\s\"',;)]*", "<tmp path>", text)


def _artifacts(client, run_id: str, path: str = "") -> list[str]:
    out = []
    for f in client.list_artifacts(run_id, path or None):
        out += _artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return out


def run_tree(uri: str) -> list[dict]:
    """Every run of every experiment in the store at ``uri``, normalised, in a stable order."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exps = {e.experiment_id: e.name for e in client.search_experiments()}
    runs = client.search_runs(list(exps), max_results=5000)

    def sort_key(r):
        return (r.data.tags.get("fmnist.step", ""), r.data.tags.get("mlflow.runName", ""),
                json.dumps(r.data.params, sort_keys=True), r.info.start_time)

    runs = sorted(runs, key=sort_key)
    names: dict[str, str] = {}
    for r in runs:
        name = f"<{r.data.tags.get('mlflow.runName', '?')}>"
        k = 2
        while name in names.values():
            name, k = f"<{r.data.tags.get('mlflow.runName', '?')} #{k}>", k + 1
        names[r.info.run_id] = name
    out = []
    for r in runs:
        tags = {}
        for k, v in sorted(r.data.tags.items()):
            if k in ABSENT_OR_NOT:
                continue
            if k in VOLATILE_TAGS or any(p.search(k) for p in VOLATILE_TAG_PATTERNS):
                tags[k] = "<varies>"
            elif k == "fmnist.artifacts_sha256":  # which artifacts are checksummed; the sums vary (zip times)
                tags[k] = sorted(json.loads(v))
            elif k == "mlflow.parentRunId":
                tags[k] = names.get(v, "<outside the store>")
            else:
                tags[k] = _normalise(v, names)
        out.append({
            "run": names[r.info.run_id], "experiment": exps[r.info.experiment_id], "status": r.info.status,
            "params": {k: ("<varies>" if k in VOLATILE_PARAMS else _normalise(v, names))
                       for k, v in sorted(r.data.params.items())},
            "tags": tags,
            "metrics": sorted(k for k in r.data.metrics if not k.startswith("system/")),
            "artifacts": sorted(_artifacts(client, r.info.run_id)),
        })
    return out


def assert_golden(name: str, uri: str) -> None:
    """The store's run tree equals ``tests/golden/<name>.json`` (``FMNIST_UPDATE_GOLDEN=1``: write it)."""
    got = run_tree(uri)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("FMNIST_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        return
    want = json.loads(path.read_text())
    if got != want:
        import difflib

        diff = difflib.unified_diff(json.dumps(want, indent=1, sort_keys=True).splitlines(),
                                    json.dumps(got, indent=1, sort_keys=True).splitlines(), "golden", "now",
                                    lineterm="", n=2)
        raise AssertionError(f"the run tree of {name} changed (FMNIST_UPDATE_GOLDEN=1 rewrites {path.name}):\n"
                             + "\n".join(list(diff)[:120]))
