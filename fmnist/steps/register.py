"""The study's best models into the Model Registry, promoted only when significantly better.

Per dataset and feature the most accurate cell becomes a new version of ``fmnist-<feature>`` (Fashion-MNIST;
``fmnist-finetune`` for fine-tuning) or ``<dataset>-<feature>`` (``mnist-raw``, ``kmnist-finetune``). Alias
``champion`` moves to it only when it is more accurate than the current champion on the test images both scored
(matched by their index in the dataset's test split) and McNemar's exact test on those images says so
(p < ``ALPHA``); with fewer than ``MIN_SHARED`` shared images it is not compared. Otherwise it is the
``challenger``. Each version is tagged with the images it was compared on and why. The first is the champion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .. import tracking
from ..data import DATASETS, dataset_title
from ..significance import correct_on_shared, mcnemar_exact
from .base import IMAGE_MODEL, load_predictions
from ..tags import (COMPARED_TAG, COMPARED_WITH_TAG, DATASET_PARAM, DATASET_TAG, DATA_DIGEST_TAG, FEATURE_PARAM,
                    MODE_PARAM, MODEL_PARAM, MODEL_TAG, N_TEST_TAG, PROMOTION_TAG, P_VALUE_TAG, RUN_ID_TAG, SPLIT_TAG,
                    TEST_ACCURACY_CI_TAG, TEST_ACCURACY_TAG)

log = logging.getLogger("fmnist")

PREFIX = "fmnist-"  # Fashion-MNIST's models; other datasets': "<dataset>-"
DEFAULT_DATASET = "fashion-mnist"
ALPHA = 0.05  # as the report's significance tables
MIN_SHARED = 500  # fewer shared test images than this: no comparison (McNemar has too little to go on)
CHAMPION, CHALLENGER = "champion", "challenger"
ALREADY = "already registered"


def model_prefix(dataset: str = DEFAULT_DATASET) -> str:
    """``fmnist-`` for Fashion-MNIST, ``<dataset>-`` for any other dataset."""
    return PREFIX if dataset == DEFAULT_DATASET else f"{dataset}-"


def model_prefixes() -> tuple[str, ...]:
    """The name prefixes of every dataset the study knows."""
    return tuple(model_prefix(d) for d in DATASETS)


def model_name(group: str, dataset: str = DEFAULT_DATASET) -> str:
    """``fmnist-<feature>`` for a Fashion-MNIST classify cell's feature (``fmnist-finetune`` for fine-tuning);
    ``mnist-<feature>``, ``kmnist-finetune`` ... for other datasets."""
    return f"{model_prefix(dataset)}{group}"


def model_names(datasets: tuple[str, ...] | list[str] = (DEFAULT_DATASET,)) -> list[str]:
    """Every name the study may register for ``datasets`` (what a team server's ``grant`` gives a user)."""
    from ..features import FEATURES

    return [model_name(g, d) for d in datasets for g in [*FEATURES.names(), "finetune"]]


@dataclass
class Registration:
    name: str
    version: str
    run_id: str
    test_accuracy: float
    alias: str  # champion | challenger
    why: str
    p_value: float | None = None
    compared_on: int | None = None  # test images shared with the champion it was compared with
    n_test: int | None = None  # test images the run was scored on


def register_best(run_ids: list[str]) -> list[Registration]:
    """Register the most accurate classify run per (dataset, feature) and the most accurate finetune run per
    dataset among ``run_ids``."""
    best: dict[tuple[str, str], tuple[float, str, dict]] = {}
    for run_id in run_ids:
        info = tracking.get_run_info(run_id)
        step = info["tags"].get(tracking.STEP_TAG)
        acc = info["metrics"].get("test_accuracy")
        if step not in ("classify", "finetune") or acc is None:
            continue
        group = (info["params"].get(DATASET_PARAM) or DEFAULT_DATASET,
                 info["params"][FEATURE_PARAM] if step == "classify" else "finetune")
        if group not in best or acc > best[group][0]:
            best[group] = (acc, run_id, info)
    return [register_run(model_name(g, d), run_id, info) for (d, g), (_, run_id, info) in best.items()]


def register_run(name: str, run_id: str, info: dict) -> Registration:
    """``run_id``'s image model as a version of ``name`` (once per run), champion or challenger."""
    m = info["metrics"]
    acc = m["test_accuracy"]
    dataset = info["params"].get(DATASET_PARAM) or DEFAULT_DATASET
    what = name.removeprefix(model_prefix(dataset))
    tracking.ensure_model(name, f"fmnist: the study's best {what} model on {dataset_title(dataset)}; raw 28x28 "
                                f"images in, its classes out. Alias {CHAMPION}: the best so far; {CHALLENGER}: the "
                                f"newest not significantly better.")
    done = tracking.model_versions(name, run_id=run_id)
    if done:
        v = done[0]
        shared, n_test = v.tags.get(COMPARED_TAG), v.tags.get(N_TEST_TAG)
        return Registration(name, v.version, run_id, acc, ",".join(v.aliases), ALREADY,
                            compared_on=int(shared) if shared else None, n_test=int(n_test) if n_test else None)
    pred = load_predictions(info)
    champ = tracking.model_by_alias(name, CHAMPION)
    tags = {RUN_ID_TAG: run_id, TEST_ACCURACY_TAG: f"{acc:.4f}",
            TEST_ACCURACY_CI_TAG: f"[{m.get('test_accuracy_ci_low', float('nan')):.4f}, "
                                       f"{m.get('test_accuracy_ci_high', float('nan')):.4f}]",
            N_TEST_TAG: str(len(pred["label"])), DATASET_TAG: dataset,
            **({SPLIT_TAG: pred["test_split"]} if pred["test_split"] else {}),
            MODEL_TAG: info["params"].get(MODEL_PARAM) or info["params"].get(MODE_PARAM, ""),
            DATA_DIGEST_TAG: info["tags"].get(DATA_DIGEST_TAG, "")}
    new = tracking.register_model_version(name, run_id, IMAGE_MODEL, tags)
    if champ is None:
        alias, why, p, shared = CHAMPION, "the first version", None, None
    else:
        alias, why, p, shared = decide(pred, champ)
    tracking.set_model_alias(name, alias, new.version)
    tracking.set_model_version_tags(name, new.version, {
        PROMOTION_TAG: why, **({COMPARED_TAG: str(shared), COMPARED_WITH_TAG: f"v{champ.version}"}
                              if shared is not None else {}),
        **({P_VALUE_TAG: f"{p:.3g}"} if p is not None else {})})
    log.info("registry: %s v%s (run %s, test accuracy %.4f) is the %s: %s", name, new.version, run_id, acc, alias, why)
    return Registration(name, new.version, run_id, acc, alias, why, p, shared, len(pred["label"]))


def decide(pred: dict, champ) -> tuple[str, str, float | None, int | None]:
    """(alias, why, p-value, shared test images) of a new version's predictions against the current champion,
    on the test images both scored."""
    split = champ.tags.get(SPLIT_TAG)
    if split and pred["test_split"] and split != pred["test_split"]:  # other images: nothing to read
        correct = champ_correct = pred["label"][:0]
    else:
        try:
            champ_pred = load_predictions(champ.run_id)
        except Exception as e:  # e.g. a run this account may not read, or one logged before predictions
            return CHALLENGER, (f"not compared with champion v{champ.version}: its predictions could not be read "
                                f"({tracking.one_line(e)})"), None, None
        correct, champ_correct = correct_on_shared(pred, champ_pred)
    n = len(correct)
    if n < MIN_SHARED:
        return CHALLENGER, (f"not compared with champion v{champ.version}: they share {n} test images, fewer than "
                            f"the {MIN_SHARED} a comparison needs (tested on other images: another dataset, "
                            f"folder or sample)"), None, n
    a, b = 100 * correct.mean(), 100 * champ_correct.mean()
    test = mcnemar_exact(correct, champ_correct)
    vs = (f"{a:.2f}% vs {b:.2f}% for champion v{champ.version} on the {n} test images both scored, "
          f"McNemar exact p={test.p_value:.3g}")
    if a > b and test.p_value < ALPHA:
        return CHAMPION, f"significantly more accurate: {vs}", test.p_value, n
    return CHALLENGER, f"not significantly more accurate: {vs} (promotion needs p < {ALPHA:g})", test.p_value, n
