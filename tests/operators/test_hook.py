"""MlflowHook: connection -> client, SQLite fallback, basic auth without env vars, fail fast."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airflow_mlops.core import mlflow_auth
from airflow_mlops.hooks.mlflow import MlflowHook

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "mlops-user", "s3cret-Pa55word!"


@pytest.fixture(autouse=True)
def _isolated_mlflow_env(monkeypatch):
    """Restore MLflow's process-wide settings and forget registered credentials after each test."""
    for name in (
        mlflow_auth.AUTH_ENV,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_URI",
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
    mlflow_auth.clear_basic_auth()


def _set_connection(monkeypatch, conn_id: str = "mlflow_default", **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "mlflow", **fields}))


class _FakeMlflowServer:
    """A loopback HTTP server that answers every MLflow REST call with `{}` and records the requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        recorder = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.append((self.command, self.path, self.headers.get("Authorization")))
                body = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _FakeMlflowServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_from_env_var_gives_client_on_its_uris(monkeypatch, tmp_path):
    tracking = f"sqlite:///{tmp_path / 'tracking.db'}"
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    _set_connection(monkeypatch, host=tracking, extra={"registry_uri": registry})

    client = MlflowHook().get_conn()

    assert client.tracking_uri == tracking
    assert client._registry_uri == registry


def test_registry_uri_defaults_to_tracking_uri(monkeypatch):
    _set_connection(monkeypatch, conn_id="mlflow_remote", host="http://mlflow.example:5000/")
    hook = MlflowHook(mlflow_conn_id="mlflow_remote")

    client = hook.get_conn()

    assert client.tracking_uri == "http://mlflow.example:5000"
    assert client._registry_uri == "http://mlflow.example:5000"


def test_uri_form_connection_host_and_port_become_http_url(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_URI_FORM", "mlflow://mlflow-server:5000")

    client = MlflowHook(mlflow_conn_id="mlflow_uri_form").get_conn()

    assert client.tracking_uri == "http://mlflow-server:5000"


def test_missing_default_connection_falls_back_to_local_sqlite(mlops_home, capfd):
    hook = MlflowHook()
    client = hook.get_conn()

    expected = f"sqlite:///{mlops_home / 'mlflow.db'}"
    assert client.tracking_uri == expected
    assert client._registry_uri == expected
    captured = capfd.readouterr()
    assert "using the local MLflow store" in captured.out + captured.err

    ok, message = hook.test_connection()
    assert ok, message
    assert (mlops_home / "mlflow.db").exists()


def test_missing_non_default_connection_is_an_error(mlops_home):
    from airflow.sdk.exceptions import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException):
        MlflowHook(mlflow_conn_id="no_such_mlflow_conn").get_conn()


def test_basic_auth_reaches_the_server_without_env_vars(monkeypatch):
    with _FakeMlflowServer() as server:
        _set_connection(monkeypatch, host=server.url, login=USER, password=PASSWORD)
        hook = MlflowHook()

        ok, message = hook.test_connection()

        assert ok, message
        assert server.requests, "the client sent no request"
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert all(auth == expected for _, _, auth in server.requests), server.requests
        assert any("experiments/search" in path for _, path, _ in server.requests)

    assert "MLFLOW_TRACKING_USERNAME" not in os.environ
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    # Only the connection the test itself defined may hold the password.
    assert not [n for n, v in os.environ.items() if PASSWORD in v and not n.startswith("AIRFLOW_CONN_")]


def test_basic_auth_also_applies_to_the_fluent_api(monkeypatch):
    import mlflow

    from airflow_mlops.core import tracking

    previous_tracking, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        with _FakeMlflowServer() as server:
            _set_connection(monkeypatch, host=server.url, login=USER, password=PASSWORD)
            tracking.configure(MlflowHook().get_conn())

            mlflow.search_experiments(max_results=1)

            assert server.requests
            assert all(auth and auth.startswith("Basic ") for _, _, auth in server.requests)
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)


def test_credentials_are_sent_only_to_their_own_server(monkeypatch):
    with _FakeMlflowServer() as with_auth, _FakeMlflowServer() as other:
        _set_connection(monkeypatch, host=with_auth.url, login=USER, password=PASSWORD)
        MlflowHook().get_conn()
        _set_connection(monkeypatch, conn_id="mlflow_other", host=other.url)

        MlflowHook(mlflow_conn_id="mlflow_other").get_conn().search_experiments(max_results=1)

        assert other.requests
        assert all(auth is None for _, _, auth in other.requests)


def test_userinfo_in_host_is_moved_out_of_the_tracking_uri(monkeypatch):
    with _FakeMlflowServer() as server:
        host = server.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        _set_connection(monkeypatch, conn_id="mlflow_userinfo", host=host)

        client = MlflowHook(mlflow_conn_id="mlflow_userinfo").get_conn()
        client.search_experiments(max_results=1)

        assert client.tracking_uri == server.url
        assert PASSWORD not in client.tracking_uri
        assert server.requests[-1][2] == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def test_password_is_masked_in_logs(monkeypatch):
    from airflow.sdk._shared.secrets_masker import redact

    _set_connection(monkeypatch, conn_id="mlflow_masked", host="http://127.0.0.1:1", login=USER, password=PASSWORD)
    MlflowHook(mlflow_conn_id="mlflow_masked").get_conn()

    assert PASSWORD not in str(redact(f"token={PASSWORD}"))


def test_dead_server_fails_fast_with_a_clear_message(monkeypatch):
    port = _free_port()
    _set_connection(monkeypatch, host=f"http://127.0.0.1:{port}")

    started = time.monotonic()
    ok, message = MlflowHook().test_connection()
    elapsed = time.monotonic() - started

    assert not ok
    assert f"Cannot reach MLflow at http://127.0.0.1:{port}" in message
    assert elapsed < 10, f"took {elapsed:.1f}s: MLflow's HTTP retries are not bounded"


def test_http_retry_bounds_default_from_env_and_kwargs(monkeypatch, mlops_home):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    MlflowHook().get_conn()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"  # the user's setting wins over the default

    MlflowHook(http_max_retries=0, http_timeout=3).get_conn()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"


def test_ui_field_behaviour_shape():
    behaviour = MlflowHook.get_ui_field_behaviour()

    assert set(behaviour) == {"hidden_fields", "relabeling", "placeholders"}
    assert {"schema", "port"} <= set(behaviour["hidden_fields"])
    assert behaviour["relabeling"] == {
        "host": "Tracking URI",
        "login": "Username",
        "password": "Password (basic auth)",
    }
    assert "host" in behaviour["placeholders"]
    # Airflow validates the same dict against its schema for provider connection forms.
    import jsonschema

    schema_path = Path(jsonschema.__file__).parents[1] / "airflow" / "customized_form_field_behaviours.schema.json"
    jsonschema.validate(behaviour, json.loads(schema_path.read_text()))


def test_hook_attributes():
    assert MlflowHook.conn_name_attr == "mlflow_conn_id"
    assert MlflowHook.default_conn_name == "mlflow_default"
    assert MlflowHook.conn_type == "mlflow"
    assert MlflowHook.hook_name == "MLflow"


def test_light_modules_do_not_import_heavy_libraries(tmp_path):
    code = (
        "import sys\n"
        "import airflow_mlops.hooks.mlflow, airflow_mlops.plugin, airflow_mlops.links, airflow_mlops.provider\n"
        "heavy = sorted(m for m in ('mlflow', 'pandas', 'sklearn', 'great_expectations') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(ROOT / "plugins")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1:] in ([], [""]), result.stdout
