"""Query the tracking store into tidy pandas tables: the report notebook's whole logic, and public API.

    >>> from fmnist import report
    >>> report.comparison_table()          # models x features, test accuracy in %, with averages
    >>> report.sota_table()                # published results with this study's best rows ranked in
    >>> report.significance_table()        # McNemar on shared test images, Holm-corrected

Every function takes ``experiment`` (default: ``$MLFLOW_EXPERIMENT_NAME`` or ``fmnist``) and uses the
latest FINISHED run per cell. Missing cells are NaN, never an error.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from . import tracking
from .classifiers import CLASSIFIERS
from .embeddings import EMBEDDINGS
from .features import FEATURES

log = logging.getLogger("fmnist")

# Tables follow the registries' order: a new feature, model or method needs no line here.
MODEL_ORDER, FEATURE_ORDER, METHOD_ORDER = CLASSIFIERS.names(), FEATURES.names(), EMBEDDINGS.names()
MODEL_NAMES = {e.name: e.hook("title", e.name) for e in CLASSIFIERS}


def _order(values, preferred: list[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    key = {v: i for i, v in enumerate(preferred)}
    return sorted(values, key=lambda v: (min((key[p] for p in key if str(v).startswith(p)), default=99), str(v)))


def runs(step: str, experiment: str | None = None, dataset: str | None = "fashion-mnist") -> pd.DataFrame:
    """FINISHED runs of one step (``fmnist.step`` tag), newest first, with params/metrics/tags columns."""
    filt = f"tags.`fmnist.step` = '{step}' and attributes.status = 'FINISHED'"
    if dataset:
        filt += f" and params.dataset = '{dataset}'"
    df = tracking.search_runs(filt, [experiment] if experiment else None)
    return df.reset_index(drop=True) if len(df) else pd.DataFrame()


def _col(df: pd.DataFrame, name: str, default=np.nan) -> pd.Series:
    return df[name] if name in df.columns else pd.Series(default, index=df.index)


def _feature_label(df: pd.DataFrame) -> pd.Series:
    label = _col(df, "tags.fmnist.feature_label", None).astype(object)
    return label.where(label.notna(), _col(df, "params.feature", "?").astype(object))


def latest_cells(step: str, keys: list[str], experiment: str | None = None,
                 dataset: str | None = "fashion-mnist") -> pd.DataFrame:
    """The newest FINISHED run per combination of ``keys`` (param names; ``feature`` uses its label)."""
    df = runs(step, experiment, dataset)
    if df.empty:
        return df
    df = df.copy()
    for k in keys:
        df[k] = _feature_label(df) if k == "feature" else _col(df, f"params.{k}", "?")
    return df.drop_duplicates(subset=keys, keep="first").reset_index(drop=True)  # runs are newest first


def comparison_table(metric: str = "test_accuracy", experiment: str | None = None, percent: bool = True,
                     averages: bool = True, dataset: str | None = "fashion-mnist") -> pd.DataFrame:
    """Models as rows, features as columns (the report's form), with row and column averages."""
    cells = latest_cells("classify", ["model", "feature"], experiment, dataset)
    if cells.empty or f"metrics.{metric}" not in cells.columns:
        return pd.DataFrame(index=pd.Index([], name="model"))
    table = cells.pivot_table(index="model", columns="feature", values=f"metrics.{metric}", aggfunc="first")
    table = table.reindex(index=_order(table.index, MODEL_ORDER), columns=_order(table.columns, FEATURE_ORDER))
    if percent:
        table = table * 100.0
    if averages:
        table["Average"] = table.mean(axis=1)
        table.loc["Average"] = table.mean(axis=0)
    table.index.name, table.columns.name = "model", "feature"
    return table


def fit_time_table(experiment: str | None = None) -> pd.DataFrame:
    """Fit seconds, same layout as ``comparison_table``."""
    return comparison_table("fit_seconds", experiment, percent=False)


def study_rows(experiment: str | None = None) -> pd.DataFrame:
    """This study's results as (method, accuracy %) rows: every classify cell and every fine-tune mode."""
    def cell_rows(cells: pd.DataFrame, method, group) -> list[dict]:
        return [{"method": f"{method(r)} (this study)", "family": "this study",
                 "accuracy": 100 * r["metrics.test_accuracy"], "source": f"run {r['run_id']}", "group": group(r)}
                for _, r in cells.iterrows() if pd.notna(r.get("metrics.test_accuracy"))]

    rows = cell_rows(latest_cells("classify", ["model", "feature"], experiment),
                     lambda r: f"{MODEL_NAMES.get(r['model'], r['model'])} on {r['feature']}",
                     lambda r: f"classify:{r['model']}") + \
        cell_rows(latest_cells("finetune", ["mode", "weights_used"], experiment),
                  lambda r: f"ResNet-18 fine-tune {r['mode']}, {r['weights_used']}",
                  lambda r: f"finetune:{r['mode']}:{r['weights_used']}")
    return pd.DataFrame(rows, columns=["method", "family", "accuracy", "source", "group"])


def reference_results() -> pd.DataFrame:
    """Published Fashion-MNIST results kept with the package (``fmnist/resources/sota.csv``, with sources)."""
    with resources.files("fmnist").joinpath("resources/sota.csv").open() as f:
        return pd.read_csv(f)


def sota_table(experiment: str | None = None, best_only: bool = True) -> pd.DataFrame:
    """Reference table with this study's best rows inserted in rank order (``best_only``: best classify
    cell per model and each fine-tune mode)."""
    ours = study_rows(experiment)
    if best_only:
        ours = ours.sort_values("accuracy", ascending=False).drop_duplicates("group")
    ours = ours.drop(columns="group")
    table = pd.concat([reference_results(), ours], ignore_index=True)
    table = table.sort_values("accuracy", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def separation_table(experiment: str | None = None) -> pd.DataFrame:
    """Per (feature, method): k-NN accuracy in 2-D, trustworthiness, silhouette, embed seconds, n."""
    cells = latest_cells("visualize", ["feature", "method"], experiment)
    cols = ["knn_accuracy", "trustworthiness", "silhouette", "embed_seconds"]
    if cells.empty:
        return pd.DataFrame(columns=["feature", "method", *cols, "n_samples", "run_id"])
    out = cells[["feature", "method"]].copy()
    for c in cols:
        out[c] = _col(cells, f"metrics.{c}")
    out["n_samples"] = _col(cells, "params.n_samples")
    out["run_id"] = cells["run_id"]
    rank = {(f, m): (i, j) for i, f in enumerate(_order(out["feature"], FEATURE_ORDER))
            for j, m in enumerate(_order(out["method"], METHOD_ORDER))}
    order = sorted(out.index, key=lambda i: rank[(out.at[i, "feature"], out.at[i, "method"])])
    return out.loc[order].reset_index(drop=True)


def embedding_images(experiment: str | None = None) -> dict[tuple[str, str], Path]:
    """(feature, method) -> local path of the run's ``embedding.png``."""
    out = {}
    for _, r in separation_table(experiment).iterrows():
        try:
            out[(r["feature"], r["method"])] = tracking.artifact_local_path(r["run_id"], "embedding.png")
        except Exception:  # a run without its picture is shown as missing, not fatal
            continue
    return out


def finetune_table(experiment: str | None = None) -> pd.DataFrame:
    """One row per (mode, weights): test accuracy %, macro-F1, best epoch, seconds per epoch, settings."""
    cells = latest_cells("finetune", ["mode", "weights_used"], experiment)
    cols = ["mode", "weights_used", "test_accuracy", "macro_f1", "best_val_accuracy", "best_epoch",
            "epoch_seconds", "epochs", "image_size", "run_id"]
    if cells.empty:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame({
        "mode": cells["mode"], "weights_used": cells["weights_used"],
        "test_accuracy": 100 * _col(cells, "metrics.test_accuracy"), "macro_f1": _col(cells, "metrics.macro_f1"),
        "best_val_accuracy": 100 * _col(cells, "metrics.best_val_accuracy"),
        "best_epoch": _col(cells, "metrics.best_epoch"), "epoch_seconds": _col(cells, "metrics.epoch_seconds"),
        "epochs": _col(cells, "params.epochs"), "image_size": _col(cells, "params.image_size"),
        "run_id": cells["run_id"],
    })
    return out.reset_index(drop=True)


def learning_curves(experiment: str | None = None,
                    metrics: tuple[str, ...] = ("train_loss", "train_accuracy", "val_accuracy")) -> pd.DataFrame:
    """Long table (mode, weights_used, metric, epoch, value) of the fine-tune runs' per-epoch metrics."""
    rows = []
    for _, r in finetune_table(experiment).iterrows():
        for m in metrics:
            for step, value in tracking.metric_history(r["run_id"], m):
                rows.append({"mode": r["mode"], "weights_used": r["weights_used"], "metric": m, "epoch": step,
                             "value": value})
    return pd.DataFrame(rows, columns=["mode", "weights_used", "metric", "epoch", "value"])


def predictions(run_id: str) -> dict[str, np.ndarray]:
    """A classify or finetune run's ``predictions.npz`` (test index, label, predicted, scores), checksum verified."""
    from .steps.base import PREDICTIONS, verify_artifacts

    path = verify_artifacts(run_id).get(PREDICTIONS)
    if path is None:
        raise FileNotFoundError(f"run {run_id} recorded no {PREDICTIONS} (logged before runs kept their "
                                f"predictions); re-run it with --force")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def scored_cells(experiment: str | None = None, dataset: str | None = "fashion-mnist") -> pd.DataFrame:
    """Every classify cell and fine-tune mode (latest FINISHED run each) that kept its test predictions."""
    rows = []
    for _, r in latest_cells("classify", ["model", "feature"], experiment, dataset).iterrows():
        rows.append({"cell": f"{MODEL_NAMES.get(r['model'], r['model'])} on {r['feature']}", "step": "classify",
                     "model": r["model"], "feature": r["feature"], "run": r})
    for _, r in latest_cells("finetune", ["mode", "weights_used"], experiment, dataset).iterrows():
        rows.append({"cell": f"ResNet-18 fine-tune {r['mode']}, {r['weights_used']}", "step": "finetune",
                     "model": f"finetune:{r['mode']}", "feature": r["weights_used"], "run": r})
    out = []
    for row in rows:
        r = row.pop("run")
        try:
            pred = predictions(r["run_id"])
        except Exception as e:  # a run without (intact) predictions is left out of the tests, not fatal
            log.warning("significance: leaving out run %s (%s): %s", r["run_id"], row["cell"], e)
            continue
        out.append({**row, "accuracy": float(r["metrics.test_accuracy"]), "run_id": r["run_id"],
                    "data_digest": r.get("tags.fmnist.data_digest"), "label": pred["label"],
                    "correct": pred["label"] == pred["predicted"]})
    return pd.DataFrame(out, columns=["cell", "step", "model", "feature", "accuracy", "run_id", "data_digest",
                                      "label", "correct"])


SIGNIFICANCE_COLUMNS = ["family", "a", "b", "accuracy_a", "accuracy_b", "n_test", "only_a", "only_b", "p_value",
                        "p_holm", "significant"]


def significance_table(experiment: str | None = None, dataset: str | None = "fashion-mnist",
                       alpha: float = 0.05) -> pd.DataFrame:
    """Paired tests on the shared test images, one row per pair (McNemar's exact test, two-sided).

    Family ``vs best``: the most accurate cell (classify or fine-tune) against every other; family
    ``features per model``: for each classifier, every pair of feature sets. ``p_holm`` is Holm-corrected
    within its family; ``significant`` is ``p_holm < alpha``. Only runs scored on the same test images are
    paired: those on the data (digest) with the largest test set, e.g. the full profile's runs when a quick
    one shares the experiment. Accuracies in %.
    """
    from .significance import holm, mcnemar_exact

    cells = scored_cells(experiment, dataset)
    if cells.empty:
        return pd.DataFrame(columns=SIGNIFICANCE_COLUMNS)
    cells["data_digest"] = cells["data_digest"].fillna("")
    cells["n_test"] = [len(lab) for lab in cells["label"]]
    cells["runs_on_data"] = cells["data_digest"].map(cells["data_digest"].value_counts())
    chosen = cells.sort_values(["n_test", "runs_on_data"], ascending=False).iloc[0]["data_digest"]
    cells = cells[cells["data_digest"] == chosen]
    cells = cells.sort_values(["accuracy", "cell"], ascending=[False, True]).reset_index(drop=True)  # ties: by name

    def pair(family: str, a: pd.Series, b: pd.Series) -> dict | None:
        if a["data_digest"] != b["data_digest"] or not np.array_equal(a["label"], b["label"]):
            return None
        t = mcnemar_exact(a["correct"], b["correct"])
        return {"family": family, "a": a["cell"], "b": b["cell"], "accuracy_a": 100 * a["accuracy"],
                "accuracy_b": 100 * b["accuracy"], "n_test": len(a["label"]), "only_a": t.only_a, "only_b": t.only_b,
                "p_value": t.p_value}

    best = cells.iloc[0]
    families = [[pair("vs best", best, c) for _, c in cells.iloc[1:].iterrows()]]
    per_model = []
    for model in _order(cells.loc[cells["step"] == "classify", "model"], MODEL_ORDER):
        group = cells[(cells["step"] == "classify") & (cells["model"] == model)]
        group = group.set_index("feature").loc[_order(group["feature"], FEATURE_ORDER)].reset_index()
        per_model += [pair("features per model", group.iloc[i], group.iloc[j])
                      for i in range(len(group)) for j in range(i + 1, len(group))]
    families.append(per_model)
    rows = []
    for fam in families:
        fam = [r for r in fam if r is not None]
        for r, adj in zip(fam, holm([r["p_value"] for r in fam])):
            rows.append({**r, "p_holm": float(adj), "significant": bool(adj < alpha)})
    return pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)


def tied_with_best(experiment: str | None = None, dataset: str | None = "fashion-mnist") -> list[str]:
    """The best cell and the cells not significantly worse than it (Holm-corrected McNemar, p >= 0.05)."""
    sig = significance_table(experiment, dataset)
    vs = sig[sig["family"] == "vs best"]
    if sig.empty:
        return []
    best = vs["a"].iloc[0] if len(vs) else None
    return ([best] if best else []) + vs.loc[~vs["significant"], "b"].tolist()


def _significance_findings(experiment: str | None, dataset: str | None) -> list[str]:
    sig = significance_table(experiment, dataset)
    if sig.empty:
        return []
    out = []
    vs = sig[sig["family"] == "vs best"]
    if len(vs):
        best, ties = vs["a"].iloc[0], vs.loc[~vs["significant"], "b"].tolist()
        if ties:
            out.append(f"{best} is the most accurate cell, but not significantly more accurate than "
                       + ", ".join(ties) + " (McNemar's exact test on the shared test images, Holm-corrected, "
                       "p >= 0.05): treat those as ties.")
        else:
            out.append(f"{best} is significantly more accurate than every other cell (McNemar's exact test, "
                       f"Holm-corrected over {len(vs)} comparisons, p < 0.05).")
    fm = sig[sig["family"] == "features per model"]
    for model in dict.fromkeys(c.split(" on ")[0] for c in fm["a"]):
        rows = fm[fm["a"].str.startswith(f"{model} on ")]
        won = [f"{(r['a'] if r['accuracy_a'] >= r['accuracy_b'] else r['b']).split(' on ')[1]} over "
               f"{(r['b'] if r['accuracy_a'] >= r['accuracy_b'] else r['a']).split(' on ')[1]}"
               for _, r in rows.iterrows() if r["significant"]]
        same = [f"{r['a'].split(' on ')[1]} ~ {r['b'].split(' on ')[1]}" for _, r in rows.iterrows()
                if not r["significant"]]
        text = f"{model}: " + ("; ".join(won) if won else "no feature set significantly better than another")
        out.append(text + (f" (no significant difference: {', '.join(same)})." if same and won else "."))
    return out


def findings(experiment: str | None = None) -> list[str]:
    """Short written findings computed from the numbers (nothing hard-coded)."""
    out = []
    acc = comparison_table(experiment=experiment)
    if not acc.empty and acc.shape[0] > 1:
        body = acc.drop(index="Average", columns="Average")
        feats = acc.loc["Average"].drop("Average").dropna()
        models = acc["Average"].drop("Average").dropna()
        if len(feats):
            out.append(f"Best feature set on average over classifiers: {feats.idxmax()} ({feats.max():.2f}%); "
                       f"worst: {feats.idxmin()} ({feats.min():.2f}%).")
        if len(models):
            out.append(f"Best classifier on average over feature sets: {MODEL_NAMES.get(models.idxmax(), models.idxmax())} "
                       f"({models.max():.2f}%).")
        stacked = body.stack().dropna()
        if len(stacked):
            (m, f), v = stacked.idxmax(), stacked.max()
            ci = _interval(experiment, m, f)
            out.append(f"Best single cell: {MODEL_NAMES.get(m, m)} on {f} with {v:.2f}% test accuracy{ci}.")
    out += _significance_findings(experiment, "fashion-mnist")
    sep = separation_table(experiment)
    if not sep.empty and sep["knn_accuracy"].notna().any():
        best = sep.loc[sep["knn_accuracy"].idxmax()]
        by_method = sep.groupby("method")["knn_accuracy"].mean().sort_values(ascending=False)
        out.append(f"2-D view that separates the classes best (k-NN accuracy in 2-D): {best['method']} on "
                   f"{best['feature']} ({100 * best['knn_accuracy']:.1f}%); averaged over features the methods rank "
                   + ", ".join(f"{k} {100 * v:.1f}%" for k, v in by_method.items()) + ".")
    ft = finetune_table(experiment)
    if not ft.empty and ft["test_accuracy"].notna().any():
        best = ft.loc[ft["test_accuracy"].idxmax()]
        out.append(f"Best fine-tune: {best['mode']} with {best['weights_used']} weights, "
                   f"{best['test_accuracy']:.2f}% test accuracy after {best['epochs']} epochs.")
    if not out:
        out.append("No finished runs found yet: run the study (`make run`) first.")
    return out


def _interval(experiment: str | None, model: str, feature: str) -> str:
    """`` (95% CI a-b%)`` for a classify cell that logged one, else nothing."""
    cells = latest_cells("classify", ["model", "feature"], experiment)
    row = cells[(cells["model"] == model) & (cells["feature"] == feature)]
    lo, hi = (_col(row, f"metrics.test_accuracy_ci_{k}") for k in ("low", "high"))
    if row.empty or lo.isna().all() or hi.isna().all():
        return ""
    return f" (95% CI {100 * lo.iloc[0]:.2f}-{100 * hi.iloc[0]:.2f}%)"
