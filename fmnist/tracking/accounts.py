"""Accounts on a tracking server running MLflow's ``basic-auth`` app, and what a client's credentials allow.

The admin side (users, per-experiment grants) goes through MLflow's own auth REST client
(``mlflow.server.get_app_client("basic-auth", ...)``); clients use MLflow's standard
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` or ``~/.mlflow/credentials``.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.credentials import read_mlflow_creds

from ..envvars import environ
from ..errors import FmnistError

USER_VAR, PASSWORD_VAR = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
SET_CREDENTIALS = f"set {USER_VAR} and {PASSWORD_VAR} (or put them in ~/.mlflow/credentials)"


class Credentials(NamedTuple):
    username: str
    password: str


def current() -> Credentials | None:
    """The credentials this process would send: MLflow's environment variables, else ~/.mlflow/credentials."""
    c = read_mlflow_creds()
    return Credentials(c.username, c.password or "") if c.username else None


def as_env() -> dict[str, str]:
    """The credentials as environment variables, for workers on machines without this one's credentials file."""
    c = current()
    return {USER_VAR: c.username, PASSWORD_VAR: c.password} if c else {}


def _as(who: Credentials):
    # MLflow's clients read credentials from the environment only: set them for the calls, then put back.
    return environ({USER_VAR: who.username, PASSWORD_VAR: who.password})


def get_app_client(name: str, tracking_uri: str):
    # Imported here: mlflow.server pulls in the whole Flask app, seconds every client would pay for nothing.
    # Its import warns about Starlette internals an admin command has no use for: keep them off stderr.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mlflow.server import get_app_client as app_client

        return app_client(name, tracking_uri=tracking_uri)  # loads the auth app's client module


def _error(e: MlflowException, uri: str, admin: Credentials, what: str) -> FmnistError:
    code = getattr(e, "error_code", "")
    if code == "UNAUTHENTICATED" or "error code 401" in str(e):
        return FmnistError(f"the server at {uri} refused admin '{admin.username}' (wrong password in the state "
                           "folder's admin.password?)")
    if code == "PERMISSION_DENIED" or "error code 403" in str(e):
        return FmnistError(f"user '{admin.username}' may not {what} on {uri} (not an admin)")
    first = (str(getattr(e, "message", e)).strip().splitlines() or [""])[0]
    return FmnistError(f"could not {what}: {first}")


def add_user(uri: str, admin: Credentials, name: str, password: str) -> None:
    with _as(admin):
        try:
            get_app_client("basic-auth", tracking_uri=uri).create_user(name, password)
        except MlflowException as e:
            if getattr(e, "error_code", "") == "RESOURCE_ALREADY_EXISTS":
                raise FmnistError(f"user '{name}' already exists on {uri}") from None
            raise _error(e, uri, admin, f"create user '{name}'") from None


def remove_user(uri: str, admin: Credentials, name: str) -> None:
    with _as(admin):
        try:
            get_app_client("basic-auth", tracking_uri=uri).delete_user(name)
        except MlflowException as e:
            if getattr(e, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                raise FmnistError(f"no user '{name}' on {uri}") from None
            raise _error(e, uri, admin, f"remove user '{name}'") from None


def grant(uri: str, admin: Credentials, name: str, experiment: str, level: str,
          models: tuple[str, ...] = ()) -> tuple[str, bool]:
    """Give ``name`` ``level`` on ``experiment`` (created if missing) and on the registered ``models`` (created,
    empty, if missing: the study registers versions of them); returns (experiment id, created)."""
    with _as(admin):
        try:
            client = MlflowClient(uri)
            exp = client.get_experiment_by_name(experiment)
            created = exp is None
            exp_id = client.create_experiment(experiment) if created else exp.experiment_id
            auth = get_app_client("basic-auth", tracking_uri=uri)
            auth.grant_user_permission(name, "experiment", exp_id, level)
            for model in models:
                try:
                    client.create_registered_model(model)
                except MlflowException as e:
                    if getattr(e, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                        raise
                auth.grant_user_permission(name, "registered_model", model, level)
        except MlflowException as e:
            if getattr(e, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                raise FmnistError(f"no user '{name}' on {uri}; add it first: scripts/team_server.sh user add "
                                  f"{name}") from None
            raise _error(e, uri, admin, f"grant {level} on {experiment} to '{name}'") from None
    return exp_id, created


def denied(err: BaseException, experiment: str | None) -> str | None:
    """A one-line explanation when ``err`` is the server refusing this user, else None."""
    if not isinstance(err, MlflowException):
        return None
    code, text = getattr(err, "error_code", ""), str(err)
    who = current()
    user = f"user '{who.username}'" if who else "anonymous"
    if code == "PERMISSION_DENIED" or "error code 403" in text:
        exp = experiment or "this experiment"
        hint = (f"; an admin can grant it: scripts/team_server.sh grant {who.username} {exp} EDIT" if who else "")
        return f"permission denied on experiment {exp} for {user}: it needs EDIT there to write runs{hint}"
    if code == "UNAUTHENTICATED" or "error code 401" in text:
        return f"the tracking server refused {user}: {SET_CREDENTIALS}"
    return None
