"""``fmnist serve`` (a registered model over HTTP, MLflow's scoring server) and ``fmnist predict`` (a CSV)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

MODEL_HELP = ("NAME@ALIAS (fmnist-scatnet@champion; mnist-raw@champion for MNIST), NAME/VERSION, or a model URI "
              "(runs:/RUN_ID/svm-scatnet, runs:/RUN_ID/finetune-full, models:/...)")


@click.command()
@click.option("--model", "spec", required=True, help=MODEL_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=5001, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Server processes (each loads the model).")
def serve(spec: str, host: str, port: int, workers: int) -> None:
    """Serve a model through MLflow's scoring server (POST /invocations {"inputs": images}).

    The model is built from its data files (no code or pickle from the store runs), as ``fmnist predict`` does."""
    from .. import tracking
    from ..steps.register import model_prefixes
    from ..tracking.serving import MODEL_PATH_VAR

    uri = tracking.resolve_model(spec, model_prefixes())
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar line per model file otherwise
    folder = tracking.download_model(uri, data_only=True)
    tracking.predictor_from_folder(folder)  # a model it cannot load fails here, in one line, not in each worker
    bindir = os.path.dirname(sys.executable)
    uvicorn = shutil.which("uvicorn", path=bindir) or "uvicorn"
    click.echo(f"[fmnist] serving {uri} on http://{host}:{port}/invocations (POST {{\"inputs\": [28x28 images]}})",
               err=True)
    sys.stderr.flush()
    os.environ[MODEL_PATH_VAR] = str(folder)
    os.execv(uvicorn, [uvicorn, "--host", host, "--port", str(port), "--workers", str(workers),
                       "fmnist.tracking.serving:app"])


@click.command()
@click.option("--model", "spec", required=True, help=MODEL_HELP)
@click.option("--images", "images_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="An IDX images file (.gz), a .npy array (N, 28, 28) or a folder of 28x28 PNGs.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("predictions.csv"),
              show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=1024, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True, help="A progress bar on a terminal.")
def predict(spec: str, images_path: Path, output: Path, batch_size: int, progress: bool) -> None:
    """Write a CSV of a model's predictions (one row per image) for a file or folder of images."""
    import pandas as pd

    from .. import tracking
    from ..data import read_images
    from ..steps.register import model_prefixes

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking.resolve_model(spec, model_prefixes())
    images, names = read_images(images_path)
    model = tracking.load_predictor(uri)  # its data files only: the model's code copy does not run here
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=len(images), desc="predict", unit="img", disable=None if progress else True) as bar:
        for s in range(0, len(images), batch_size):
            parts.append(model.predict(images[s:s + batch_size]))
            bar.update(len(parts[-1]))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out.insert(0, "image", names)
    tmp = output.with_name(output.name + ".tmp")
    out.to_csv(tmp, index=False)
    tmp.replace(output)  # never a half-written CSV
    counts = out["class_name"].value_counts().head(3)
    click.echo(f"[fmnist] {len(out)} images -> {output} (most predicted: "
               f"{', '.join(f'{k} {v}' for k, v in counts.items())})", err=True)


@click.command()
@click.option("--run", "run_ids", multiple=True, help="A FINISHED classify or finetune run (repeatable) "
              "[default: the cells of the newest study in the experiment].")
@click.option("--experiment", default="", help="[default: $MLFLOW_EXPERIMENT_NAME or fmnist]")
def register(run_ids: tuple[str, ...], experiment: str) -> None:
    """Register the most accurate run per feature (and of fine-tuning) as a new model version; alias champion
    only when significantly more accurate than the current champion (the study does this itself)."""
    from .. import tracking
    from ..errors import FmnistError
    from ..steps.register import register_best
    from ..tags import STEP_TAG

    if not run_ids:
        names = [experiment] if experiment else None
        studies = tracking.search_runs(f"tags.`{STEP_TAG}` = 'study' and attributes.status = 'FINISHED'", names)
        if studies.empty:
            raise FmnistError("no FINISHED study in the experiment: run the study, or name runs with --run")
        import pandas as pd

        # steps.csv lists every cell, reused ones too (those are children of the study that first ran them)
        steps = pd.read_csv(tracking.artifact_local_path(studies["run_id"].iloc[0], "steps.csv"))
        run_ids = tuple(steps.loc[steps["status"].isin(["ran", "cached"]), "run_id"].dropna())
    for r in register_best(list(run_ids)):
        click.echo(f"{r.name} v{r.version}: {r.alias}; run {r.run_id}, test accuracy {100 * r.test_accuracy:.2f}%"
                   f"{f' on {r.n_test} images' if r.n_test else ''}; compared on "
                   f"{'no images' if r.compared_on is None else f'{r.compared_on} shared test images'}: {r.why}")
