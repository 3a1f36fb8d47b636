"""The team server's basic-auth check (``authorization_function`` in its basic_auth.ini), run inside ``mlflow server``.

MLflow's own check hashes the password on every request: about 0.3 s of server CPU per API call here, which
made a small study over HTTP spend most of its time waiting on password hashing. This one reads the user's row
on every request, as MLflow's does, so a removed user or a changed password is refused at once on every worker,
and hashes a given (user, stored hash, password) only once per server process. The cache keys hold an HMAC of
the password under a per-process random key, never the password.
"""

from __future__ import annotations

import hmac
import secrets
import threading

_KEY = secrets.token_bytes(32)
_MAX = 10_000  # distinct credentials remembered; beyond that the oldest half is forgotten
_verified: dict[tuple[str, str, bytes], None] = {}
_lock = threading.Lock()


def authenticate():
    """A Flask request's ``Authorization`` when its basic-auth credentials are valid, else a 401 response."""
    from flask import request
    from mlflow.exceptions import MlflowException
    from mlflow.server import auth
    from werkzeug.security import check_password_hash

    given = request.authorization
    if given is None or not given.username or given.password is None:
        return auth.make_basic_auth_response()
    try:
        user = auth.store.get_user(given.username)  # every request: removals and new passwords count at once
    except MlflowException:
        return auth.make_basic_auth_response()
    key = (user.username, user.password_hash, hmac.new(_KEY, given.password.encode(), "sha256").digest())
    with _lock:
        if key in _verified:
            return given
    if not check_password_hash(user.password_hash, given.password) or \
            auth._is_disabled_legacy_admin_login(given.username, given.password, user):
        return auth.make_basic_auth_response()
    with _lock:
        if len(_verified) >= _MAX:
            for k in list(_verified)[:_MAX // 2]:
                del _verified[k]
        _verified[key] = None
    return given
