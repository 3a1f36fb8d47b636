"""The Model Registry: versions of ``fmnist-<feature>`` / ``fmnist-finetune`` (``<dataset>-<feature>`` for
other datasets), their tags and aliases."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import mlflow
from mlflow.exceptions import MlflowException

from ..errors import FmnistError
from .accounts import current
from .records import IMAGE_MODEL_TAG
from .store import _client, tracking_uri


class Version(NamedTuple):
    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]
    tags: dict[str, str]


@contextmanager
def _writing(name: str) -> Iterator[None]:
    """A server refusing this user on ``name`` fails in one line saying who grants it."""
    try:
        yield
    except MlflowException as e:
        if getattr(e, "error_code", "") == "PERMISSION_DENIED" or "error code 403" in str(e):
            who = current()
            user = f"user '{who.username}'" if who else "anonymous"
            raise FmnistError(f"permission denied on registered model {name} for {user}: it needs EDIT there to "
                              f"register versions; an admin can grant it: scripts/team_server.sh grant "
                              f"{who.username if who else 'NAME'} EXPERIMENT EDIT (the study's experiment and "
                              f"its registered models)") from None
        raise


def _version(mv) -> Version:
    return Version(mv.name, str(mv.version), mv.run_id or "", tuple(getattr(mv, "aliases", ()) or ()),
                   dict(mv.tags or {}))


def ensure_model(name: str, description: str) -> None:
    """Create the registered model unless it exists."""
    client = _client()
    with _writing(name):
        try:
            client.get_registered_model(name)
            return
        except MlflowException as e:
            if getattr(e, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                raise
        try:
            client.create_registered_model(name, description=description)
        except MlflowException as e:  # another process created it meanwhile
            if getattr(e, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise


def versions(name: str, run_id: str | None = None) -> list[Version]:
    """Versions of ``name`` (of one run, if given), newest first; none if the model does not exist."""
    query = f"name='{name}'" + (f" and run_id='{run_id}'" if run_id else "")
    found = [_version(mv) for mv in _client().search_model_versions(query)]
    # search results carry no aliases on every store: read them from the model
    aliases = _aliases(name) if found else {}
    found = [v._replace(aliases=tuple(a for a, n in aliases.items() if n == v.version)) for v in found]
    return sorted(found, key=lambda v: int(v.version), reverse=True)


def _aliases(name: str) -> dict[str, str]:
    try:
        return {a: str(v) for a, v in (_client().get_registered_model(name).aliases or {}).items()}
    except MlflowException:
        return {}


def by_alias(name: str, alias: str) -> Version | None:
    try:
        mv = _client().get_model_version_by_alias(name, alias)
    except MlflowException as e:
        if getattr(e, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise
    return _version(mv)._replace(aliases=tuple(a for a, n in _aliases(name).items() if n == str(mv.version)))


def register(name: str, run_id: str, artifact: str, tags: dict[str, Any]) -> Version:
    """A new version of ``name`` from the run's logged model ``artifact``, tagged."""
    client = _client()
    model_id = client.get_run(run_id).data.tags.get(IMAGE_MODEL_TAG)
    if not model_id:
        raise FmnistError(f"run {run_id} has no {artifact} to register: an older fmnist logged it; re-run it "
                          f"with --force")
    with _writing(name):
        mv = client.create_model_version(name, f"models:/{model_id}", run_id=run_id, model_id=model_id,
                                         tags={k: str(v) for k, v in tags.items()})
    return _version(mv)


def set_alias(name: str, alias: str, version: str) -> None:
    with _writing(name):
        _client().set_registered_model_alias(name, alias, version)


def set_version_tags(name: str, version: str, tags: dict[str, Any]) -> None:
    client = _client()
    with _writing(name):
        for k, v in tags.items():
            client.set_model_version_tag(name, version, k, str(v))


def registered_models(prefix: str | tuple[str, ...] = "") -> dict[str, dict[str, str]]:
    """{model name: {alias: version}} of the registered models whose name starts with ``prefix`` (or with one
    of several)."""
    out, token = {}, None
    query = f"name LIKE '{prefix}%'" if isinstance(prefix, str) and prefix else None
    while True:  # every page: a team server may hold more models than one page
        page = _client().search_registered_models(query, page_token=token)
        for rm in page:
            if rm.name.startswith(prefix):
                out[rm.name] = {a: str(v) for a, v in (rm.aliases or {}).items()}
        token = page.token
        if not token:
            return dict(sorted(out.items()))


def resolve(spec: str, prefix: str | tuple[str, ...] = "") -> str:
    """``NAME@ALIAS`` / ``NAME/VERSION`` / a ``models:/`` or ``runs:/`` URI / a folder -> a URI MLflow loads;
    an unknown name or alias fails in one line naming the registered models and their aliases."""
    if not spec.startswith("models:/") and (":/" in spec or Path(spec).exists()):
        return spec  # a run's model, another URI or a model folder: MLflow says what is wrong with it
    body = spec.removeprefix("models:/")
    if spec.startswith("models:/m-") and "/" not in body and "@" not in body:
        return spec  # a logged model's id (what a registry version points at): MLflow says if there is none
    name, sep, ref = body.partition("@") if "@" in body else body.partition("/")
    known = registered_models(prefix)
    listing = "; ".join(f"{n} ({', '.join(f'@{a}=v{v}' for a, v in sorted(al.items())) or 'no aliases'})"
                        for n, al in known.items()) or "none yet: run the study (make run) first"
    if name not in known:
        raise FmnistError(f"no registered model {name!r} on {tracking_uri().split('?')[0]}; registered: {listing}")
    if sep == "@" and ref not in known[name]:
        raise FmnistError(f"model {name!r} has no alias {ref!r}; registered: {listing}")
    if sep == "/" and not any(v.version == ref for v in versions(name)):
        raise FmnistError(f"model {name!r} has no version {ref!r}; registered: {listing}")
    return f"models:/{name}{sep}{ref}" if sep else f"models:/{name}@champion"


def download_model(uri: str, data_only: bool = False) -> Path:
    """The model folder at ``uri`` (``resolve`` it first) on local disk; ``data_only``: its MLmodel file and
    ``artifacts/`` only, without the code copy a pyfunc load would run."""
    import tempfile

    import mlflow.artifacts
    from mlflow.models import get_model_info

    from .queries import _download_root

    if Path(uri).exists():
        return Path(uri)
    if not data_only:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    where = mlflow.get_logged_model(get_model_info(uri).model_id).artifact_location.rstrip("/")
    folder = tempfile.mkdtemp(prefix="model-", dir=_download_root())  # removed at exit, like other downloads
    for part in ("MLmodel", "artifacts"):
        mlflow.artifacts.download_artifacts(artifact_uri=f"{where}/{part}", dst_path=folder)
    return Path(folder)


def predictor_from_folder(folder: str | os.PathLike):
    """The ``fmnist.predictor.ImagePredictor`` in a downloaded image model, built from its data files only:
    neither the model's code copy nor its MLmodel's loader runs, and nothing is unpickled."""
    from mlflow.models import Model

    from ..predictor import load_predictor

    folder = Path(folder)
    flavor = Model.load(folder / "MLmodel").flavors.get("python_function", {})  # YAML, safe-loaded
    artifacts = {k: (folder / v["path"]).resolve() for k, v in (flavor.get("artifacts") or {}).items()}
    if "predictor" not in artifacts or any(folder.resolve() not in p.parents for p in artifacts.values()):
        raise FmnistError(f"{folder}: not an fmnist image model (no predictor file among its artifacts)")
    return load_predictor({k: str(p) for k, p in artifacts.items()})


def load_predictor(uri: str):
    """The image model at ``uri`` as an ``ImagePredictor`` (see ``predictor_from_folder``)."""
    return predictor_from_folder(download_model(uri, data_only=True))


def run_model_uri(run_id: str) -> str:
    """``models:/<id>`` of a classify or finetune run's image model."""
    model_id = _client().get_run(run_id).data.tags.get(IMAGE_MODEL_TAG)
    if not model_id:
        raise FmnistError(f"run {run_id} logged no image model")
    return f"models:/{model_id}"


def load_image_model(uri: str):
    """The pyfunc at ``uri`` (``resolve`` it first), for in-process predictions."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(uri)
