"""Who may change the registry through the MLflow server: its basic-auth app, the users in it and
their permission on each registered model.

    env = server_auth_env(folder, admin, csrf)   # for `mlflow server --app-name basic-auth` only
    password = add_reviewer("http://127.0.0.1:5000", admin, "ada", ["card-grader"])

Everyone signed in may read (the `default_permission`); a reviewer is a user with EDIT on the
registered models, which is what setting the `approval` and `approved_by` tags in the UI needs.
The caller keeps the admin password and the CSRF secret (`gradeline up` in its stack folder,
mode 0600); they reach nothing but the server's own environment.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ADMIN = "admin"
AUTH_APP = "basic-auth"
AUTH_CACHE_SECONDS = 60
# REST routes of MLflow's auth app (mlflow/server/auth/routes.py; importing that module starts
# the app's own initialisation, so the paths are written here).
_CREATE_USER = "/api/2.0/mlflow/users/create"
_GRANT = "/api/3.0/mlflow/users/permissions/grant"


class AccessError(RuntimeError):
    """The MLflow server refused a user or permission change; the message says why."""


def server_auth_env(folder: Path, admin_password: str, csrf_secret: str,
                    users_uri: str | None = None) -> dict[str, str]:
    """The environment of an MLflow server with the basic-auth app: its config file (written to
    `folder`, mode 0600; users in the database `users_uri`, by default `folder`/mlflow-auth.db;
    everyone signed in may read), the admin's password and the CSRF secret (the caller keeps
    both)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "mlflow-auth.ini"
    users_uri = users_uri or f"sqlite:///{(folder / 'mlflow-auth.db').as_posix()}"
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = {users_uri}\n"
                      f"admin_username = {ADMIN}\n"
                      # Checking a password costs 0.33 s here (PBKDF2), on every request: a
                      # model's dozens of artifact files took 43 s to log through the server.
                      # A credential verified once is trusted this long by that server worker.
                      f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n"
                      "authorization_function = "
                      "mlflow.server.auth:authenticate_request_basic_auth\n")
    config.chmod(0o600)
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": csrf_secret}


def _post(url: str, body: dict[str, str], user: str, password: str) -> None:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30):
            return
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:300]
        raise AccessError(f"MLflow refused {url.rsplit('/api/', 1)[-1]} "
                          f"({error.code}): {detail}") from None


def add_reviewer(server_url: str, admin: str, name: str, models: Sequence[str]) -> str:
    """Create MLflow user `name` with a new random password and EDIT on each of `models`;
    returns the password (kept nowhere else). AccessError when the server refuses, e.g. a
    user of that name exists."""
    password = secrets.token_urlsafe(18)
    base = server_url.rstrip("/")
    _post(base + _CREATE_USER, {"username": name, "password": password}, ADMIN, admin)
    for model in models:
        _post(base + _GRANT, {"username": name, "resource_type": "registered_model",
                              "resource_id": model, "permission": "EDIT"}, ADMIN, admin)
    return password
