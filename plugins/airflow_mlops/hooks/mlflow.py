"""MlflowHook: an Airflow Connection (`mlflow_default`) -> a configured `mlflow.MlflowClient`.

Connection fields: host = tracking URI (`http://mlflow:5000`, `https://...`, `sqlite:///...`);
login/password = optional basic auth; extra `{"registry_uri": ...}` when the model registry lives
elsewhere. Without an `mlflow_default` connection the hook uses the project-local SQLite store.

Credentials never go into os.environ: they are masked in logs and handed to MLflow through an
in-process request-auth provider (see `airflow_mlops.core.mlflow_auth`). MLflow's HTTP retries
and timeout are bounded so a dead server fails the task in seconds, not minutes, and
`explain_error()` turns MLflow's failures into one clear exception: a wrong password or a missing
permission fails the task for good, an unreachable server is retried by Airflow.
"""

from __future__ import annotations

import copy
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from airflow_mlops import settings
from airflow_mlops.core.errors import MlflowUnavailableError, exception_chain, unreachable_cause
from airflow_mlops.provider import UI_FIELD_BEHAVIOUR

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: MLflow's HTTP settings (environment variables, not secrets) and the hook's defaults for them.
HTTP_MAX_RETRIES_ENV = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
HTTP_BACKOFF_FACTOR_ENV = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
HTTP_TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"
DEFAULT_HTTP_MAX_RETRIES = 2
DEFAULT_HTTP_BACKOFF_FACTOR = 1
#: Worst case for one call to a server that never answers: (retries + 1) * timeout + backoff
#: (0 s, then 2 s + up to 1 s jitter) = 3 * 15 + 3 = 48 s, under a minute; a closed port fails in ~2 s.
DEFAULT_HTTP_TIMEOUT = 15


class MlflowHook(BaseHook):
    """Connects to an MLflow tracking server and model registry.

    :param mlflow_conn_id: the Airflow connection; `mlflow_default` falls back to the local
        SQLite store when it is not defined.
    :param fallback_conn_id: used when `mlflow_conn_id` is not defined (e.g. `mlflow_promoter` ->
        `mlflow_default` on a laptop, where one identity does everything).
    :param http_max_retries: MLflow HTTP retries per call (env MLFLOW_HTTP_REQUEST_MAX_RETRIES, else 2).
    :param http_backoff_factor: whole seconds, doubled per retry (env MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, else 1).
    :param http_timeout: seconds per HTTP request (env MLFLOW_HTTP_REQUEST_TIMEOUT, else 30).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(
        self,
        mlflow_conn_id: str = default_conn_name,
        *,
        fallback_conn_id: str | None = None,
        http_max_retries: int | None = None,
        http_backoff_factor: int | None = None,
        http_timeout: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self.fallback_conn_id = fallback_conn_id
        self.http_max_retries = http_max_retries
        self.http_backoff_factor = http_backoff_factor
        self.http_timeout = http_timeout
        self.tracking_uri: str | None = None
        self.registry_uri: str | None = None
        self.username: str | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel and hide fields of the connection form (also declared in the provider info)."""
        return copy.deepcopy(UI_FIELD_BEHAVIOUR)

    def get_conn(self) -> MlflowClient:
        """A `MlflowClient` on the connection's tracking and registry URIs, credentials applied."""
        from mlflow import MlflowClient

        self._bound_http_retries()
        tracking_uri, registry_uri, login, password = self._resolve()
        if login or password:
            from airflow.sdk.log import mask_secret

            from airflow_mlops.core import mlflow_auth

            if password:
                mask_secret(password)
            if not mlflow_auth.set_basic_auth({tracking_uri, registry_uri}, login or "", password or ""):
                self.log.warning(
                    "Connection %r has a username/password but no http(s) tracking URI; they are not used.",
                    self.mlflow_conn_id,
                )
        self.tracking_uri, self.registry_uri, self.username = tracking_uri, registry_uri, login
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)

    def test_connection(self) -> tuple[bool, str]:
        """(True, message) when the tracking server answers a search for one experiment."""
        try:
            client = self.get_conn()
            client.search_experiments(max_results=1)
        except Exception as exc:
            clear = self.explain_error(exc)
            if clear is not None:
                return False, str(clear)
            return False, f"Cannot reach MLflow at {self.tracking_uri or '?'}: {type(exc).__name__}: {exc}"
        return True, f"Connected to MLflow at {self.tracking_uri}"

    def explain_error(
        self, exc: BaseException, *, experiment: str | None = None, model: str | None = None
    ) -> Exception | None:
        """The clear exception to raise instead of `exc`, a failed MLflow call through this hook; else None.

        HTTP 401/403 -> AirflowFailException (a retry cannot fix a wrong password or a missing permission);
        server unreachable or timed out -> MlflowUnavailableError (ordinary: Airflow retries it).
        `experiment` and `model` name what a 403 was about.
        """

        if self.tracking_uri is None or isinstance(exc, AirflowFailException | MlflowUnavailableError):
            return None
        where = f"MLflow at {self.tracking_uri} (Airflow connection {self.mlflow_conn_id!r})"
        status, endpoint = _http_status(exc)
        if status == 401:
            if not self.username:
                return AirflowFailException(
                    f"{where} requires a login: set the login/password of connection {self.mlflow_conn_id!r}."
                )
            return AirflowFailException(
                f"{where} rejected the login of user {self.username!r} (HTTP 401: wrong password or unknown user): "
                f"fix the login/password of connection {self.mlflow_conn_id!r}."
            )
        if status == 403:
            if "registered-models" in endpoint or "model-versions" in endpoint:
                what = f"registered model {model!r}" if model else "the registered model"
            else:
                what = f"experiment {experiment!r}" if experiment else "the experiment"
            user = f"user {self.username!r}" if self.username else "anonymous requests"
            rule = _server_rule(exc)
            if rule:  # the airflow-mlops-auth server app's separation of duties: a grant would not fix it
                return AirflowFailException(f"{where} refused {user} (HTTP 403): {rule}")
            return AirflowFailException(
                f"{where} denied {user} access to {what} (HTTP 403 on {endpoint or 'a request'}): "
                f"grant {user} permission on {what} in MLflow, or give connection {self.mlflow_conn_id!r} "
                "a user that has it."
            )
        cause = unreachable_cause(exc)
        if cause is not None:
            return MlflowUnavailableError(
                f"Cannot reach MLflow at {self.tracking_uri} (Airflow connection {self.mlflow_conn_id!r}): "
                f"{_reason(cause)}. Check that the server is up and reachable from this worker; a retry will try again."
            )
        return None

    def _resolve(self) -> tuple[str, str, str | None, str | None]:
        """(tracking URI, registry URI, login, password) from the connection, or the local fallback."""
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            if self.fallback_conn_id and self.fallback_conn_id != self.mlflow_conn_id:
                self.log.info(
                    "No Airflow connection %r is defined: using %r", self.mlflow_conn_id, self.fallback_conn_id
                )
                self.mlflow_conn_id, self.fallback_conn_id = self.fallback_conn_id, None
                return self._resolve()
            if self.mlflow_conn_id != self.default_conn_name:
                raise
            uri = settings.default_tracking_uri()
            settings.mlops_home().mkdir(parents=True, exist_ok=True)
            self.log.info(
                "No Airflow connection %r is defined: using the local MLflow store %s", self.mlflow_conn_id, uri
            )
            return uri, uri, None, None

        if not conn.host:
            raise ValueError(
                f"Connection {self.mlflow_conn_id!r} has no host: set it to the MLflow tracking URI, "
                "e.g. http://mlflow:5000 or sqlite:////path/to/mlflow.db"
            )
        tracking_uri, url_login, url_password = _split_userinfo(_tracking_uri(conn.host, conn.port))
        extra = conn.extra_dejson or {}
        registry_uri = extra.get("registry_uri") or extra.get("extra__mlflow__registry_uri") or tracking_uri
        login = conn.login or url_login
        password = conn.password or url_password
        return tracking_uri, registry_uri, login, password

    def _bound_http_retries(self) -> None:
        """Bound MLflow's HTTP retries/timeout: explicit hook kwargs win, then the environment, then defaults."""
        for env, value, default in (
            (HTTP_MAX_RETRIES_ENV, self.http_max_retries, DEFAULT_HTTP_MAX_RETRIES),
            (HTTP_BACKOFF_FACTOR_ENV, self.http_backoff_factor, DEFAULT_HTTP_BACKOFF_FACTOR),
            (HTTP_TIMEOUT_ENV, self.http_timeout, DEFAULT_HTTP_TIMEOUT),
        ):
            if value is not None:
                os.environ[env] = str(value)
            else:
                os.environ.setdefault(env, str(default))


def _http_status(exc: BaseException) -> tuple[int | None, str]:
    """(401 or 403, endpoint path) when an MLflow or requests error in `exc`'s chain has that HTTP status."""
    import requests
    from mlflow.exceptions import MlflowException

    for e in exception_chain(exc):
        if isinstance(e, requests.HTTPError) and e.response is not None:
            status, endpoint = e.response.status_code, urlsplit(e.response.url or "").path
        elif isinstance(e, MlflowException):
            match = re.search(r"endpoint (\S+)", e.message)
            status, endpoint = e.get_http_status_code(), match.group(1) if match else ""
        else:
            continue
        if status in (401, 403):
            return status, endpoint
    return None, ""


def _server_rule(exc: BaseException) -> str:
    """The rule an airflow-mlops-auth server named in its 403 (e.g. only the promoter moves `champion`); else ""."""
    for e in exception_chain(exc):
        match = re.search(r"airflow-mlops-auth: ([^\"}]{1,400})", str(e))
        if match:
            return match.group(1).strip()
    return ""


def _reason(error: BaseException) -> str:
    """'[Errno 111] Connection refused', 'Read timed out. (read timeout=15)'... from a requests error."""
    reason = getattr(error.args[0], "reason", error.args[0]) if error.args else error
    return str(reason).rsplit("): ", 1)[-1] or type(error).__name__


def _tracking_uri(host: str, port: int | None) -> str:
    """The host field as a URI: `mlflow` / `mlflow:5000` (URI-form connections) become http URLs."""
    host = host.strip()
    if "://" not in host and not host.startswith(("databricks", "file:", "sqlite:")):
        host = f"http://{host}"
    if port and host.startswith(("http://", "https://")) and urlsplit(host).port is None:
        parts = urlsplit(host)
        host = urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))
    return host.rstrip("/") if host.startswith(("http://", "https://")) else host


def _split_userinfo(uri: str) -> tuple[str, str | None, str | None]:
    """Move `user:password@` out of an http(s) URI: MLflow prints tracking URIs in its logs."""
    if not uri.startswith(("http://", "https://")):
        return uri, None, None
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, None, None
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return urlunsplit(parts._replace(netloc=netloc)), user, password
