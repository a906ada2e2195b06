"""Who may see and who may act on the Models page, and the page's protection against forged requests.

Airflow does not protect a plugin's FastAPI app: every route here depends on `get_user` (the core
API's own dependency: the session cookie or a bearer token; 401 without, 403 for a bad one) and
asks Airflow's auth manager:

- seeing a model needs GET on the DAGs of the pipeline that serves it (any DAG for a model no
  pipeline serves); acting (roll back) needs PUT on every one of them (on all DAGs when unknown);
- a POST must carry `X-CSRF-Token`, a token the page received, signed with the API server's
  `[api] secret_key` and bound to the user (so another site can neither read nor forge it), a JSON
  body (a cross-site form cannot send one without a CORS preflight, which this app never grants),
  and, when the browser sends one, an `Origin` of this server.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status

from airflow_mlops import airflow_internals

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

CSRF_HEADER = "X-CSRF-Token"
#: A page's token stays valid this long (a page left open for a working day still works).
CSRF_MAX_AGE_S = 12 * 3600


@dataclass(frozen=True)
class Access:
    """What the user may do with one model."""

    read: bool
    edit: bool


def user_name(user: BaseUser) -> str:
    """The Airflow user's name as the ledger records it."""
    return str(user.get_name() or user.get_id())


def user_ids(user: BaseUser) -> dict[str, str]:
    """The Airflow user as the ledger's actor records a person: the id and the display name (and `user`, the name)."""
    name = user_name(user)
    return {"user": name, "user.id": str(user.get_id()), "user.name": name}


def pipeline_dag_ids(pipeline: str | None) -> list[str]:
    """The DAGs airflow-mlops built for `pipeline` (tagged `mlops` and the pipeline's name), from Airflow's DB."""
    if not pipeline:
        return []
    return airflow_internals.dags_tagged(pipeline, "mlops")


def access(user: BaseUser, dag_ids: list[str]) -> Access:
    """Read: GET on the first of `dag_ids` (any DAG when empty); edit: PUT on all of them (on all DAGs when empty)."""
    read = airflow_internals.dag_authorized(user, "GET", dag_ids[:1])[0]
    edit = read and all(airflow_internals.dag_authorized(user, "PUT", dag_ids))
    return Access(read=read, edit=edit)


def can_read_dag(user: BaseUser, dag_id: str) -> bool:
    return airflow_internals.dag_authorized(user, "GET", [dag_id])[0]


def _own_hosts(request: Request) -> set[str]:
    """This server as the browser addresses it: the Host header, and `[api] base_url`'s host when set."""
    from airflow.configuration import conf

    hosts = {(request.headers.get("host") or "").lower()}
    base = conf.get("api", "base_url", fallback="") or ""
    if base.startswith(("http://", "https://")):
        hosts.add(urlsplit(base).netloc.lower())
    return hosts - {""}


# --------------------------------------------------------------------------- signing: CSRF tokens, evidence URLs


def _secret() -> bytes:
    return ("airflow-mlops-ui:" + airflow_internals.api_secret_key()).encode()


def sign(*parts: str) -> str:
    """An HMAC of `parts` with the API server's secret key (hex, 32 characters)."""
    message = "\x1f".join(parts).encode()
    return hmac.new(_secret(), message, hashlib.sha256).hexdigest()[:32]


def csrf_token(user: BaseUser, now: float | None = None) -> str:
    """`<issued>.<signature>`: bound to the user and the time it was issued."""
    issued = str(int(now if now is not None else time.time()))
    return f"{issued}.{sign('csrf', user.get_id(), issued)}"


def check_csrf(request: Request, user: BaseUser) -> None:
    """Refuse (403) a state-changing request that does not come from our own page."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and origin != "null":
        if urlsplit(origin).netloc.lower() not in _own_hosts(request):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused (Origin is not this server)")
    elif origin == "null":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused (opaque Origin)")
    if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the action as JSON (application/json)")
    token = request.headers.get(CSRF_HEADER, "")
    issued, _, signature = token.partition(".")
    if not issued.isdigit() or not signature:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing or malformed {CSRF_HEADER}: reload the page")
    if not hmac.compare_digest(signature, sign("csrf", user.get_id(), issued)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{CSRF_HEADER} does not match this user: reload the page")
    if time.time() - int(issued) > CSRF_MAX_AGE_S:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{CSRF_HEADER} expired: reload the page")
