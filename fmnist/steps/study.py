"""The whole study as one parent run with a child run per step; every step cached, failures isolated."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable

from .. import tracking
from ..data import load_dataset
from ..errors import FmnistError
from ..features import FEATURES, feature_params
from ..study import get_profile
from .extract import get_features

log = logging.getLogger("fmnist")

FINETUNE_MODES = ("last_layer", "full")


@dataclass
class StepRecord:
    step: str  # extract | classify | visualize | finetune | report
    cell: str  # e.g. "scatnet/svm"
    status: str = "pending"  # ran | cached | failed | skipped
    run_id: str = ""
    seconds: float = 0.0
    error: str = ""


class StudyFailed(FmnistError):
    pass


def _cached(rec: StepRecord, key: str, run: Callable[[], str]) -> None:
    """Reuse the FINISHED run carrying ``key``, else call ``run`` (which returns its run id) and tag it."""
    t0 = time.perf_counter()
    hit = tracking.find_cached_run(key)
    if hit:
        rec.status, rec.run_id = "cached", hit
        log.info("study: %s %s: cache hit, reusing FINISHED run %s", rec.step, rec.cell, hit)
    else:
        rec.run_id = run()
        tracking.set_run_tags(rec.run_id, {tracking.CACHE_KEY_TAG: key})  # only reached when it FINISHED
        rec.status = "ran"
    rec.seconds = time.perf_counter() - t0


def run_study(
    *,
    profile: str = "quick",
    features: str = "all",
    models: str = "all",
    methods: str = "all",
    finetune: bool = True,
    subset: int | None = None,
    full_data: bool = False,
    epochs: int | None = None,
    dataset: str = "fashion-mnist",
    data_dir: str | None = None,
    seed: int = 0,
    weights: str = "auto",
    device: str = "auto",
    report_output: str = "outputs/report.html",
    progress: bool = True,
) -> list[StepRecord]:
    """Extract -> classify -> visualize -> finetune -> report, each step a child run of one parent."""
    from ..classifiers import CLASSIFIERS
    from ..embeddings import EMBEDDINGS, method_params
    from ..device import resolve_device
    from ..finetune import FitConfig
    from .classify import classify, classify_key
    from .finetune import finetune as finetune_step, finetune_key
    from .report import report_step
    from .visualize import visualize, visualize_key

    prof = get_profile(profile, subset=subset, full_data=full_data, epochs=epochs)
    feats, mods, meths = FEATURES.expand(features), CLASSIFIERS.expand(models), EMBEDDINGS.expand(methods)
    ds = load_dataset(dataset, data_dir=data_dir, subset=prof.subset, seed=seed)
    n_samples = min(prof.n_samples, len(ds.y_test))  # a small subset caps the views' sample
    fparams = {f: feature_params(f, {**prof.feature_params, "weights": weights}) for f in feats}
    ft_cfg = {**{f.name: getattr(FitConfig(), f.name) for f in fields(FitConfig)},
              **prof.finetune_for(resolve_device(device).type),
              "weights": weights, "seed": seed}
    ft_cfg.pop("mode")
    FitConfig(**{k: v for k, v in ft_cfg.items() if k != "weights"}).validate()  # bad input: before any run
    records: list[StepRecord] = []

    def attempt(rec: StepRecord, fn: Callable[[], None]) -> None:
        records.append(rec)
        try:
            fn()
        except Exception as e:  # one step failing must not stop the independent ones
            rec.status, rec.error = "failed", tracking.one_line(e)
            log.error("study: %s %s failed: %s", rec.step, rec.cell, rec.error)

    def skipped_without_features(rec: StepRecord, feature: str) -> bool:
        """A step whose features failed to extract is recorded as skipped instead of retrying the extract."""
        if feature in fsets:
            return False
        rec.status, rec.error = "skipped", f"extract {feature} failed"
        records.append(rec)
        return True

    t0 = time.perf_counter()
    fsets: dict = {}
    with tracking.run(f"study-{prof.name}", step="study") as parent:
        tracking.log_params({"profile": prof.name, "features": ",".join(feats), "models": ",".join(mods),
                             "methods": ",".join(meths), "finetune": finetune, "subset": prof.subset or "all",
                             "dataset": ds.name, "seed": seed, "weights": weights, "device": device,
                             "tune": prof.tune, "n_samples": n_samples, "epochs": ft_cfg["epochs"]})
        tracking.set_tags({"fmnist.data_digest": ds.digest, "fmnist.profile_doc": prof.doc})
        for f in feats:
            rec = StepRecord("extract", f)

            def do_extract(f=f, rec=rec):
                fs = get_features(feature=f, ds=ds, params=fparams[f], device=device, progress=progress)
                fsets[f] = fs
                rec.status, rec.run_id = ("cached" if fs.cached else "ran"), fs.run_id or ""

            attempt(rec, do_extract)
        for f in feats:
            for m in mods:
                rec = StepRecord("classify", f"{f}/{m}")
                if skipped_without_features(rec, f):
                    continue
                key = classify_key(feature=f, params=fparams[f], model=m, tune=prof.tune, seed=seed, ds=ds)
                attempt(rec, lambda f=f, m=m, rec=rec, key=key: _cached(rec, key, lambda: classify(
                    feature=f, model=m, ds=ds, params=fparams[f], tune=prof.tune, seed=seed, device=device,
                    progress=progress)[0].run_id))
        for f in feats:
            for m in meths:
                rec = StepRecord("visualize", f"{f}/{m}")
                if skipped_without_features(rec, f):
                    continue
                key = visualize_key(feature=f, params=fparams[f], method=m, n_samples=n_samples, seed=seed, ds=ds,
                                    method_params=method_params(m, None, n_samples=n_samples))
                attempt(rec, lambda f=f, m=m, rec=rec, key=key: _cached(rec, key, lambda: visualize(
                    features=[f], methods=[m], n_samples=n_samples, seed=seed, feature_given=fparams[f],
                    ds=ds, device=device, progress=progress)[0]["run_id"]))
        if finetune:
            for mode in FINETUNE_MODES:
                rec = StepRecord("finetune", mode)
                key = finetune_key(mode=mode, **ft_cfg, val_fraction=0.1, ds=ds)
                attempt(rec, lambda mode=mode, rec=rec, key=key: _cached(rec, key, lambda: finetune_step(
                    mode=mode, **ft_cfg, val_fraction=0.1, ds=ds, device=device, progress=progress)["run_id"]))
        rec = StepRecord("report", "html", run_id=parent)

        def do_report(rec=rec):
            t = time.perf_counter()
            report_step(output=report_output)
            rec.status, rec.seconds = "ran", time.perf_counter() - t

        attempt(rec, do_report)
        _summarise(records, time.perf_counter() - t0)
    return records


def _summarise(records: list[StepRecord], seconds: float) -> None:
    import pandas as pd

    table = pd.DataFrame([asdict(r) for r in records])
    tracking.log_table(table, "steps.csv")
    counts = table["status"].value_counts().to_dict()
    tracking.log_metrics({"study_seconds": seconds, **{f"steps_{k}": v for k, v in counts.items()}})
    failed = [f"{r.step} {r.cell}" for r in records if r.status in ("failed", "skipped")]
    tracking.set_tags({"fmnist.failed_steps": ", ".join(failed) or "none"})
    log.info("study: %d steps in %.1fs: %s", len(records), seconds,
             ", ".join(f"{v} {k}" for k, v in counts.items()))
    if failed:
        raise StudyFailed(f"{len(failed)} step(s) failed or were skipped: {', '.join(failed)}; "
                          f"re-run the same command to retry only those")
