"""Basic-auth credentials for MLflow tracking servers, held in this process and never in os.environ.

MLflow's own basic auth reads MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD from the
environment, where every child process and every crash dump would see them. Instead the hook
calls `set_basic_auth()`, which keeps the credentials in a module-level table keyed by server
origin (scheme, host, port), and selects MLflow's documented request-auth plugin mechanism
(`MLFLOW_TRACKING_AUTH=airflow_mlops`, a provider name, not a secret). Every MLflow HTTP call,
from `MlflowClient`, the fluent API (`mlflow.start_run`, `log_model`) or the artifact proxy,
then passes through `_BasicAuthForKnownServers`, which adds the `Authorization` header only
for a server that was given credentials.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests.auth
from mlflow.tracking.request_auth.abstract_request_auth_provider import RequestAuthProvider

if TYPE_CHECKING:
    from collections.abc import Iterable

log = logging.getLogger(__name__)

AUTH_PROVIDER_NAME = "airflow_mlops"
AUTH_ENV = "MLFLOW_TRACKING_AUTH"

_Origin = tuple[str, str, int]
_lock = threading.Lock()
_credentials: dict[_Origin, tuple[str, str]] = {}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> _Origin | None:
    """(scheme, host, port) of an http(s) URL; None for any other URI (sqlite, file, databricks...)."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        return scheme, parts.hostname.lower(), parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None


def set_basic_auth(uris: Iterable[str], username: str, password: str) -> bool:
    """Send basic auth to the servers of `uris` on every MLflow request; True if any URI is http(s)."""
    origins = {o for o in map(_origin, uris) if o is not None}
    if not origins:
        return False
    with _lock:
        for origin in origins:
            _credentials[origin] = (username, password)
    install()
    return True


def clear_basic_auth(uris: Iterable[str] | None = None) -> None:
    """Forget the credentials of `uris` (all of them when None)."""
    with _lock:
        if uris is None:
            _credentials.clear()
            return
        for origin in map(_origin, uris):
            _credentials.pop(origin, None)  # type: ignore[arg-type]


def credentials_for(url: str) -> tuple[str, str] | None:
    origin = _origin(url)
    if origin is None:
        return None
    with _lock:
        return _credentials.get(origin)


class _BasicAuthForKnownServers(requests.auth.AuthBase):
    """A requests auth that adds basic auth for the origins registered with `set_basic_auth`."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        creds = credentials_for(request.url or "")
        if creds is not None:
            token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode("ascii")
            request.headers["Authorization"] = f"Basic {token}"
        return request


class AirflowMlopsRequestAuthProvider(RequestAuthProvider):
    """MLflow request-auth plugin named `airflow_mlops` (selected through MLFLOW_TRACKING_AUTH)."""

    def get_name(self) -> str:
        return AUTH_PROVIDER_NAME

    def get_auth(self) -> requests.auth.AuthBase:
        return _BasicAuthForKnownServers()


def install() -> None:
    """Register the provider in MLflow's request-auth registry (once) and select it.

    Works without the package's entry points (plugins-folder deployments). Leaves an
    MLFLOW_TRACKING_AUTH chosen by the user alone, with a warning.
    """
    from mlflow.tracking.request_auth import registry

    with _lock:
        if not any(p.get_name() == AUTH_PROVIDER_NAME for p in registry._request_auth_provider_registry):
            registry._request_auth_provider_registry.register(AirflowMlopsRequestAuthProvider)
    current = os.environ.get(AUTH_ENV)
    if not current:
        os.environ[AUTH_ENV] = AUTH_PROVIDER_NAME
    elif current != AUTH_PROVIDER_NAME:
        log.warning(
            "%s=%s is set, so MLflow uses that auth provider and the connection's username/password "
            "are not sent. Unset %s to use the connection's credentials.",
            AUTH_ENV,
            current,
            AUTH_ENV,
        )
