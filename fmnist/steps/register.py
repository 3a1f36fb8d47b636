"""The study's best models into the Model Registry, promoted only when significantly better.

Per feature (and for fine-tuning) the most accurate cell becomes a new version of ``fmnist-<feature>``
(``fmnist-finetune``). Alias ``champion`` moves to it only when McNemar's exact test on the shared test images
says it is more accurate than the current champion (p < ``ALPHA``); otherwise it is the ``challenger``, tagged
with the p-value and why. The first version is the champion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .. import tracking
from ..significance import mcnemar_exact
from .base import IMAGE_MODEL, PREDICTIONS, verify_artifacts

log = logging.getLogger("fmnist")

PREFIX = "fmnist-"
ALPHA = 0.05  # as the report's significance tables
CHAMPION, CHALLENGER = "champion", "challenger"
DIGEST_TAG = "fmnist.data_digest"
ALREADY = "already registered"


def model_name(group: str) -> str:
    """``fmnist-<feature>`` for a classify cell's feature, ``fmnist-finetune`` for fine-tuning."""
    return f"{PREFIX}{group}"


def model_names() -> list[str]:
    """Every name the study may register (what a team server's ``grant`` gives a user)."""
    from ..features import FEATURES

    return [model_name(f) for f in FEATURES.names()] + [model_name("finetune")]


@dataclass
class Registration:
    name: str
    version: str
    run_id: str
    test_accuracy: float
    alias: str  # champion | challenger
    why: str
    p_value: float | None = None


def register_best(run_ids: list[str]) -> list[Registration]:
    """Register the most accurate classify run per feature and the most accurate finetune run among ``run_ids``."""
    best: dict[str, tuple[float, str, dict]] = {}
    for run_id in run_ids:
        info = tracking.get_run_info(run_id)
        step = info["tags"].get(tracking.STEP_TAG)
        acc = info["metrics"].get("test_accuracy")
        if step not in ("classify", "finetune") or acc is None:
            continue
        group = info["params"]["feature"] if step == "classify" else "finetune"
        if group not in best or acc > best[group][0]:
            best[group] = (acc, run_id, info)
    return [register_run(model_name(g), run_id, info) for g, (_, run_id, info) in best.items()]


def register_run(name: str, run_id: str, info: dict) -> Registration:
    """``run_id``'s image model as a version of ``name`` (once per run), champion or challenger."""
    m = info["metrics"]
    acc = m["test_accuracy"]
    tracking.ensure_model(name, f"fmnist: the study's best {name.removeprefix(PREFIX)} model; raw 28x28 images in, "
                                f"classes out. Alias {CHAMPION}: the best so far; {CHALLENGER}: the newest not "
                                f"significantly better.")
    done = tracking.model_versions(name, run_id=run_id)
    if done:
        v = done[0]
        return Registration(name, v.version, run_id, acc, ",".join(v.aliases), ALREADY)
    champ = tracking.model_by_alias(name, CHAMPION)
    tags = {"fmnist.run_id": run_id, "fmnist.test_accuracy": f"{acc:.4f}",
            "fmnist.test_accuracy_ci": f"[{m.get('test_accuracy_ci_low', float('nan')):.4f}, "
                                       f"{m.get('test_accuracy_ci_high', float('nan')):.4f}]",
            "fmnist.model": info["params"].get("model") or info["params"].get("mode", ""),
            DIGEST_TAG: info["tags"].get(DIGEST_TAG, "")}
    new = tracking.register_model_version(name, run_id, IMAGE_MODEL, tags)
    if champ is None:
        alias, why, p = CHAMPION, "the first version", None
    else:
        alias, why, p = decide(run_id, acc, info, champ)
    tracking.set_model_alias(name, alias, new.version)
    tracking.set_model_version_tags(name, new.version, {"fmnist.promotion": why,
                                                         **({"fmnist.p_value": f"{p:.3g}"} if p is not None else {})})
    log.info("registry: %s v%s (run %s, test accuracy %.4f) is the %s: %s", name, new.version, run_id, acc, alias, why)
    return Registration(name, new.version, run_id, acc, alias, why, p)


def decide(run_id: str, acc: float, info: dict, champ) -> tuple[str, str, float | None]:
    """(alias, why, p-value) of a new version against the current champion."""
    champ_acc = float(champ.tags.get("fmnist.test_accuracy", "nan"))
    if info["tags"].get(DIGEST_TAG, "") != champ.tags.get(DIGEST_TAG, ""):
        return CHALLENGER, (f"not compared with champion v{champ.version}: it was tested on other images "
                            f"(another dataset or subset)"), None
    test = mcnemar_exact(_correct(run_id), _correct(champ.run_id))
    vs = f"{100 * acc:.2f}% vs {100 * champ_acc:.2f}% for champion v{champ.version}, McNemar exact p={test.p_value:.3g}"
    if acc > champ_acc and test.p_value < ALPHA:
        return CHAMPION, f"significantly more accurate: {vs}", test.p_value
    return CHALLENGER, f"not significantly more accurate: {vs} (promotion needs p < {ALPHA:g})", test.p_value


def _correct(run_id: str) -> np.ndarray:
    with np.load(verify_artifacts(run_id)[PREDICTIONS]) as z:
        return z["label"] == z["predicted"]
