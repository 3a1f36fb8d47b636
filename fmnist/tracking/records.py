"""What a run records: params, metrics, tags, artifacts, datasets and models (all to the active run)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow

from .store import _client, retry_on_conflict
from ..tags import CLASSES_META, IMAGE_MODEL_ID_TAG, INPUT_META, PROBABILITIES_META

IMAGE_MODEL_TAG = IMAGE_MODEL_ID_TAG  # the run's servable model (an MLflow 3 logged model)
# MLflow truncates nothing for us: values past this are rejected by the store.
_MAX_PARAM = 6000


def log_params(params: dict[str, Any]) -> None:
    """Log params to the active run. A key already logged with the same value (``mlflow run`` logs every
    ``-P``) is skipped; with another value (``features=all`` resolved to the list it ran, ``epochs=0``
    to the profile's) the resolved value goes in ``<key>_used``: MLflow forbids changing a param."""
    clean = {k: ("" if v is None else str(v))[:_MAX_PARAM] for k, v in params.items()}
    run = mlflow.active_run()
    done = _client().get_run(run.info.run_id).data.params if run else {}
    out = {}
    for k, v in clean.items():
        if k not in done:
            out[k] = v
        elif not _same_param(done[k], v):
            out[f"{k}_used"] = v
    if out:
        mlflow.log_params(out)


def _same_param(a: str, b: str) -> bool:
    """'1' == '1.0', 'true' == 'True': the CLI's parsed value against the string given to ``mlflow run``."""
    if a == b or a.lower() == b.lower():
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def set_tags(tags: dict[str, Any]) -> None:
    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_artifact(path: str | os.PathLike, artifact_path: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_figure(fig, artifact_file: str) -> None:
    """Log a matplotlib figure as a PNG (or whatever the file's suffix says)."""
    mlflow.log_figure(fig, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_dict(data: dict, artifact_file: str) -> None:
    mlflow.log_dict(data, artifact_file)


def log_table(df, artifact_file: str) -> None:
    """A pandas DataFrame as CSV (readable in the UI's artifact view) or JSON by suffix."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / Path(artifact_file).name
        if p.suffix == ".json":
            p.write_text(df.to_json(orient="records", indent=1))
        else:
            df.to_csv(p, index=False)
        parent = str(Path(artifact_file).parent)
        mlflow.log_artifact(str(p), artifact_path=None if parent == "." else parent)


def log_numpy_input(features, targets, *, name: str, digest: str, source: str, context: str) -> None:
    """Record a dataset the run used (``mlflow.log_input``) under our own stable digest."""
    log_dataset(numpy_dataset(features, targets, name=name, digest=digest, source=source), context)


def log_dataset(dataset, context: str) -> None:
    """Record ``dataset`` (``numpy_dataset``) as an input of the active run."""
    # Two processes logging the same dataset at once race on its row: retry, the second then links to it.
    retry_on_conflict(lambda: mlflow.log_input(dataset, context=context))


def pinned_requirements(*packages: str) -> list[str]:
    """``pkg==installed version`` for the model's environment. Passing these to ``log_model`` skips
    MLflow's inference of them: a subprocess that re-imports the model's libraries, ~10 s a model."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for p in ("mlflow", "numpy", "cloudpickle", *packages):
        try:
            out.append(f"{p}=={version(p)}")
        except PackageNotFoundError:
            continue
    return out


def numpy_dataset(features, targets, *, name: str, digest: str, source: str):
    """An MLflow dataset of arrays under our own stable digest (``source``: a folder, a URI, or "synthetic")."""
    from mlflow.data.dataset_source_registry import get_registered_sources
    from mlflow.data.numpy_dataset import from_numpy

    # Pick the local source class ourselves: resolving a path string warns that two classes match.
    local = next(s for s in get_registered_sources() if s.__name__ == "LocalArtifactDatasetSource")
    if source and Path(source).exists():
        source = str(Path(source).resolve())
    return from_numpy(features=features, targets=targets, source=local(source or "synthetic"), name=name,
                      digest=digest[:36])


def log_evaluation(metrics: dict[str, float], dataset, model_id: str | None) -> None:
    """Evaluation metrics with the dataset they were computed on, linked to the logged model ``model_id``
    (the experiment's models page sorts models by them). The run logs ``dataset`` as an input itself."""
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, dataset=dataset, model_id=model_id)


# The image model's declared input: what `fmnist.predictor.as_images` turns every accepted form into.
IMAGE_INPUT = ("uint8", (-1, 28, 28))
IMAGE_INPUT_NOTE = ("a batch of 28x28 images: integers 0-255 as declared, or floats 0-1, and shape (N, 28, 28) or "
                    "flattened (N, 784); one image (28, 28) is a batch of one")


def log_image_model(predictor, *, name: str, input_example, packages: tuple[str, ...] = ()) -> str:
    """The model a user serves: raw images in, classes out (``fmnist.predictor``), with this package inside;
    its logged model id.

    Its signature declares the input as uint8 (N, 28, 28) and the output columns. The model also takes floats
    0-1 and flattened rows (``IMAGE_INPUT_NOTE``, in its metadata), which one tensor spec cannot say; MLflow
    would cast every request to the declared dtype (float pixels silently to 0) and answer bad input with its
    own multi-line message. So the signature is marked as one the model validates itself (as MLflow does for
    signatures from type hints): MLflow passes requests through and ``as_images`` answers bad ones in one line.
    """
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import Schema, TensorSpec

    import fmnist

    out = predictor.predict(input_example)
    with _quiet(), tempfile.TemporaryDirectory() as d:
        signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(IMAGE_INPUT[0]), IMAGE_INPUT[1])]),
                                   outputs=infer_signature(None, out).outputs)
        signature._is_signature_from_type_hint = True  # validation is the model's own (see above)
        code = Path(d) / "fmnist"  # the package without its bytecode caches
        shutil.copytree(Path(fmnist.__file__).parent, code, ignore=shutil.ignore_patterns("__pycache__"))
        files = Path(d) / "files"
        files.mkdir()
        info = mlflow.pyfunc.log_model(
            name=name, python_model=str(Path(__file__).with_name("image_model.py")),
            artifacts=predictor.save(files), code_paths=[str(code)],
            signature=signature, input_example=np.asarray(input_example),
            pip_requirements=pinned_requirements("pandas", "scikit-learn", "scipy", "skops", "torch", "torchvision",
                                                 "kymatio", "tqdm", *packages),
            metadata={INPUT_META: IMAGE_INPUT_NOTE, CLASSES_META: list(predictor.classes),
                      PROBABILITIES_META: predictor.has_probabilities})
    set_tags({IMAGE_MODEL_TAG: info.model_id})  # what the registry's versions point at
    return info.model_id


def log_pytorch_model(model, *, name: str, input_example) -> None:
    """``input_example``: a numpy array the model accepts (the signature is inferred from it)."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    model = model.cpu().eval()
    with torch.inference_mode():
        out = model(torch.as_tensor(input_example)).numpy()
    with _quiet():
        signature = infer_signature(input_example, out)
        mlflow.pytorch.log_model(model, name=name, signature=signature, input_example=input_example,
                                 pip_requirements=pinned_requirements("torch", "torchvision"))


@contextmanager
def _quiet():
    """MLflow's notes while logging a model ("Validating input example", the hint that integer columns cannot
    hold missing values: class indices never miss) say nothing to a user of this project."""
    loggers = [logging.getLogger(n) for n in ("mlflow.pyfunc", "mlflow.models", "mlflow.types")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*Inferred schema contains integer column")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
