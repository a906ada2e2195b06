"""The MLflow server's auth app `airflow-mlops-auth`: MLflow's basic auth plus separation of duties.

Runs inside `mlflow server --app-name airflow-mlops-auth` (entry point `mlflow.app`), never in Airflow.
MLflow's permission levels cannot tell registering a version from moving `champion`: both are an
update (EDIT) of the registered model. This app adds one rule in front of the registry's writes:
moving an alias (other than setting `challenger`), renaming a model and writing its ledger pointer
(tag `champion_history.*`) need MANAGE on the model; creating a model needs an admin (MLflow makes its
creator MANAGE). The ledger experiment needs no rule: the trainer's READ on it already refuses writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Aliases any user with EDIT on the model may set (= core.registry.CHALLENGER: the trainer's registration).
OPEN_ALIASES = frozenset({"challenger"})
#: Registered-model tags only a model's managers may write (core.registry.LEDGER_RUN_TAG points at the ledger).
MANAGED_TAG_PREFIX = "champion_history."
_WRITES = frozenset({"POST", "DELETE", "PUT", "PATCH"})
_ROUTE = re.compile(r"/(?:ajax-)?api/\d+\.\d+/mlflow/registered-models/(alias|rename|set-tag|delete-tag|create)/*$")


def create_app() -> Any:
    """MLflow's basic-auth app with the rule above run after its own checks (a factory, as `basic-auth` is)."""
    from mlflow.server import app as flask_app
    from mlflow.server.auth import create_app as basic_auth_app

    with _bootstrap_lock():  # each worker creates the auth tables and the admin: one at a time
        served = basic_auth_app(flask_app)
    flask_app.before_request(_separation_of_duties)  # after basic auth's own before_request
    return served


def _separation_of_duties() -> Any:
    """None to let the request through; a 403 naming the user, the model and the rule otherwise."""
    from flask import request
    from mlflow.server import auth

    match = _ROUTE.search(request.path)
    if match is None or request.method not in _WRITES or auth.sender_is_admin():  # GET .../alias reads a version
        return None
    action = match.group(1)
    user = getattr(auth.authenticate_request(), "username", "?")  # authenticated already: basic auth ran first
    name = ", ".join(sorted(_values("name"))) or "?"
    if action == "create":
        return _refuse(
            f"user {user!r} may not create registered model {name!r}: on this server only an admin creates "
            "registered models (MLflow gives a model's creator MANAGE, which moves its champion). Ask the MLflow "
            "admin to create it and grant the trainer EDIT and the promoter MANAGE on it (the stack does this "
            "for every pipeline in include/pipelines: `make stack-up`, or the compose stack's airflow-init)"
        )
    if action == "alias" and request.method == "POST" and _values("alias") == OPEN_ALIASES:
        return None
    if action in ("set-tag", "delete-tag"):
        keys = _values("key")
        if keys and not any(key.startswith(MANAGED_TAG_PREFIX) for key in keys):
            return None
    if _can_manage():
        return None
    what = {
        "alias": f"{'set' if request.method == 'POST' else 'delete'} alias {', '.join(sorted(_values('alias'))) or '?'!r}",
        "rename": "rename it",
        "set-tag": f"set tag {', '.join(sorted(_values('key'))) or '?'!r}",
        "delete-tag": f"delete tag {', '.join(sorted(_values('key'))) or '?'!r}",
    }[action]
    return _refuse(
        f"user {user!r} may not {what} of registered model {name!r}: moving aliases (other than "
        f"{', '.join(sorted(OPEN_ALIASES))}), renaming and the ledger tags need MANAGE on the model. "
        "Promotions, rollbacks and ledger records go through the promoter's connection (mlflow_promoter)"
    )


def _can_manage() -> bool:
    """MANAGE on the request's registered model, as MLflow resolves it (user, role and default grants)."""
    from mlflow.exceptions import MlflowException
    from mlflow.server import auth

    try:
        return bool(auth.validate_can_manage_registered_model())
    except MlflowException:  # no `name`, or no such model: refused (the handler would fail anyway)
        return False


def _values(field: str) -> set[str]:
    """Every value `field` has in the request: its query string and its JSON body (as MLflow's handlers read it).

    A rule checks all of them, so a request cannot show the rule one value and the handler another.
    """
    from flask import request

    found = set(request.args.getlist(field))
    body = request.get_json(force=True, silent=True)
    if isinstance(body, str):  # older clients double-encode their JSON
        try:
            body = json.loads(body)
        except ValueError:
            body = None
    if isinstance(body, dict) and field in body:
        value = body[field]
        found.add(value if isinstance(value, str) else json.dumps(value))
    return found


def _refuse(message: str) -> Any:
    from flask import jsonify

    response = jsonify({"error_code": "PERMISSION_DENIED", "message": f"airflow-mlops-auth: {message}"})
    response.status_code = 403
    return response


@contextlib.contextmanager
def _bootstrap_lock() -> Iterator[None]:
    """An exclusive file lock per auth config: workers starting together would race to create the same tables."""
    config = os.path.abspath(os.environ.get("MLFLOW_AUTH_CONFIG_PATH", "default"))
    path = os.path.join(
        tempfile.gettempdir(), f"airflow-mlops-auth-{hashlib.sha256(config.encode()).hexdigest()[:16]}.lock"
    )
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
