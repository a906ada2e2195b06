"""MLflow server faults, against a real `mlflow server` with basic auth (a subprocess, no mocks).

- a wrong password fails the task once, with one clear message (connection, URI, user, what to
  fix) and no password in the task log;
- a user without permission on the experiment gets a clear message naming user and experiment;
- a server that is down fails the task fast (well under a minute) with an ordinary, retryable
  exception naming the URI, and a new call succeeds once the server is back on the same port;
- a server that accepts connections but never answers fails each call within a bound (< 60 s);
- `MlflowHook.test_connection()` says what is wrong for a wrong password and for a dead server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import yaml

from airflow_mlops.core import mlflow_auth
from airflow_mlops.core.errors import MlflowUnavailableError
from airflow_mlops.hooks import mlflow as mlflow_hook
from airflow_mlops.hooks.mlflow import MlflowHook

MLFLOW_CLI = Path(sys.executable).with_name("mlflow")
ADMIN, ADMIN_PASSWORD = "admin", secrets.token_urlsafe(16)
USER, PASSWORD = "alice", secrets.token_urlsafe(16)
WRONG_PASSWORD = "wrong-" + secrets.token_urlsafe(12)
CONN_ID = "mlflow_faults"
PIPELINE = "fault_pipeline"  # alice creates its experiment and owns it
GUARDED = "guarded_pipeline"  # created by the admin: alice has no permission on it
MLFLOW_ENV = (
    mlflow_auth.AUTH_ENV,
    mlflow_hook.HTTP_MAX_RETRIES_ENV,
    mlflow_hook.HTTP_BACKOFF_FACTOR_ENV,
    mlflow_hook.HTTP_TIMEOUT_ENV,
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_URI",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class MlflowServer:
    """`mlflow server --app-name basic-auth` on SQLite stores in `root`, started and stopped on one port."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        (root / "auth.ini").write_text(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{root / 'auth.db'}\n"
            f"admin_username = {ADMIN}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )

    def start(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "MLFLOW_AUTH_CONFIG_PATH": str(self.root / "auth.ini"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job-runner processes: a faster start
        }
        command = [
            str(MLFLOW_CLI), "server", "--app-name", "basic-auth",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        with open(self.root / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer /health within 180 s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the server's process group (the server and its uvicorn worker); SIGKILL if it lingers."""
        if self.process is None:
            return
        process, self.process = self.process, None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while (process.poll() is None or _port_open(self.port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def log_tail(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")[-3000:]

    def admin(self, path: str, body: dict) -> dict:
        """POST an MLflow REST call as the admin."""
        response = requests.post(
            f"{self.url}/api/2.0/mlflow/{path}", json=body, auth=(ADMIN, ADMIN_PASSWORD), timeout=30
        )
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not MLFLOW_CLI.exists():
        pytest.skip(f"no mlflow CLI at {MLFLOW_CLI}")
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        server.admin("users/create", {"username": USER, "password": PASSWORD})
        server.admin("experiments/create", {"name": GUARDED})
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _restore_mlflow_state():
    """The hook sets MLflow's process-wide settings and credentials: put them back after each test."""
    import mlflow

    saved = {name: os.environ.get(name) for name in MLFLOW_ENV}
    uris = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    mlflow_auth.clear_basic_auth()
    mlflow.set_tracking_uri(uris[0])
    mlflow.set_registry_uri(uris[1])


def _connect(monkeypatch, url: str, password: str = PASSWORD, conn_id: str = CONN_ID) -> None:
    conn = {"conn_type": "mlflow", "host": url, "login": USER, "password": password}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.fixture(scope="module")
def training_input(tmp_path_factory, breast_cancer):
    """A pipeline config per experiment name and a snapshot for TrainModelOperator."""
    from airflow_mlops.core.data import content_digest

    root = tmp_path_factory.mktemp("training-input")
    frame = breast_cancer[["mean_radius", "mean_texture", "mean_area", "target"]]
    frame.to_parquet(root / "snapshot.parquet")
    configs = {}
    for pipeline in (PIPELINE, GUARDED):
        configs[pipeline] = root / f"{pipeline}.yaml"
        configs[pipeline].write_text(yaml.safe_dump({
            "pipeline": pipeline,
            "source": {"path": "data/test"},
            "target": {"column": "target", "task": "binary_classification"},
            "features": [{"name": n, "type": "numeric"} for n in ("mean_radius", "mean_texture", "mean_area")],
            "validation": {"suite": "s.json"},
            "model": {"name": f"{pipeline}_model", "candidates": [
                {"name": "logreg", "estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}},
            ]},
            "metrics": {"primary": "roc_auc"},
            "seed": 3,
        }))  # fmt: skip
    snapshot = {"uri": str(root / "snapshot.parquet"), "digest": content_digest(frame)}
    return configs, snapshot


def _train_operator(training_input, pipeline: str = PIPELINE):
    from airflow_mlops.operators.training import TrainModelOperator

    configs, snapshot = training_input
    return TrainModelOperator(
        task_id="train", config_path=str(configs[pipeline]), snapshot=snapshot, candidate="logreg",
        mlflow_conn_id=CONN_ID,
    )  # fmt: skip


def _context() -> dict:
    ti = SimpleNamespace(dag_id="faults", run_id="manual__faults", task_id="train", try_number=1, map_index=-1,
                         xcom_push=lambda key, value: None)  # fmt: skip
    return {"ti": ti, "dag_run": SimpleNamespace(run_type="manual")}


DAG_FILE = """
import datetime as dt

from airflow.sdk import DAG

from airflow_mlops.operators.training import TrainModelOperator

with DAG("mlflow_wrong_password", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
         default_args={{"retries": 2, "retry_delay": dt.timedelta(seconds=1)}}):
    TrainModelOperator(task_id="train", config_path={config!r}, snapshot={snapshot!r}, candidate="logreg",
                       mlflow_conn_id={conn_id!r})
"""


@pytest.fixture
def wrong_password_dag(training_input, airflow_db, tmp_path, monkeypatch):
    """A one-task DAG (retries=2) in its own DAG bundle, next to the project's dags folder."""
    from airflow.dag_processing.dagbag import DagBag

    configs, snapshot = training_input
    (tmp_path / "mlflow_wrong_password.py").write_text(
        DAG_FILE.format(config=str(configs[PIPELINE]), snapshot=snapshot, conn_id=CONN_ID)
    )
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles = [  # this bundle first: dag.test() parses bundles in this order until it finds the DAG
        {"name": "mlflow-faults", "classpath": local, "kwargs": {"path": str(tmp_path)}},
        {"name": "dags-folder", "classpath": local, "kwargs": {}},
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    return DagBag(dag_folder=str(tmp_path)).get_dag("mlflow_wrong_password")


def test_wrong_password_fails_the_task_once_with_a_clear_message(server, wrong_password_dag, monkeypatch, capfd):
    _connect(monkeypatch, server.url, password=WRONG_PASSWORD)
    capfd.readouterr()

    dag_run = wrong_password_dag.test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))

    (ti,) = dag_run.get_task_instances()
    assert str(ti.state) == "failed", ti.state
    assert ti.try_number == 1, "a wrong password cannot be fixed by a retry: the task must not be retried"
    out = capfd.readouterr()
    log = out.out + out.err
    expected = (
        f"MLflow at {server.url} (Airflow connection {CONN_ID!r}) rejected the login of user {USER!r} "
        f"(HTTP 401: wrong password or unknown user): fix the login/password of connection {CONN_ID!r}."
    )
    assert expected in log, log[-4000:]
    assert WRONG_PASSWORD not in log
    assert "MlflowException" not in log and "direct cause" not in log, "the MLflow traceback is not hidden"


def test_missing_permission_names_the_user_and_the_experiment(server, training_input, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    _connect(monkeypatch, server.url)

    with pytest.raises(AirflowFailException) as failed:
        _train_operator(training_input, GUARDED).execute(_context())

    message = str(failed.value)
    assert f"MLflow at {server.url} (Airflow connection {CONN_ID!r}) denied user {USER!r}" in message
    assert f"grant user {USER!r} permission on experiment {GUARDED!r}" in message
    assert failed.value.__suppress_context__ and failed.value.__cause__ is None


def test_server_down_fails_fast_and_retryable_then_a_new_call_succeeds(server, training_input, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    _connect(monkeypatch, server.url)
    server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(MlflowUnavailableError) as down:
            _train_operator(training_input).execute(_context())
        elapsed = time.monotonic() - started

        assert not isinstance(down.value, AirflowFailException), "a retry can fix this: Airflow must retry it"
        assert str(down.value).startswith(f"Cannot reach MLflow at {server.url} (Airflow connection {CONN_ID!r}): ")
        assert "Connection refused" in str(down.value)
        assert down.value.__cause__ is None and down.value.__suppress_context__
        assert elapsed < 30, f"the task took {elapsed:.1f}s to fail with the server down"
    finally:
        server.start()

    # Back on the same port: what the retried task does first, through the same process-wide HTTP session.
    client = MlflowHook(CONN_ID).get_conn()
    experiment_id = client.create_experiment("after_the_restart")
    assert client.get_experiment_by_name("after_the_restart").experiment_id == experiment_id


def test_a_server_that_never_answers_fails_within_the_bound(monkeypatch):
    """A port that accepts connections and never answers (a hung server): retries x timeout, then a clear error."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        _connect(monkeypatch, url)
        hook = MlflowHook(CONN_ID, http_timeout=1)

        started = time.monotonic()
        ok, message = hook.test_connection()
        elapsed = time.monotonic() - started

    assert not ok
    assert message.startswith(f"Cannot reach MLflow at {url} (Airflow connection {CONN_ID!r}): Read timed out")
    assert elapsed < 3 * 1 + 3 + 5, f"{elapsed:.1f}s"
    # The same arithmetic with the defaults: (retries + 1) x timeout + backoff (0 s, 2 s + <= 1 s jitter).
    worst = (mlflow_hook.DEFAULT_HTTP_MAX_RETRIES + 1) * mlflow_hook.DEFAULT_HTTP_TIMEOUT + 3
    assert worst < 60, f"a hung MLflow server would hold a task for {worst}s per call"


def test_test_connection_says_what_is_wrong(server, monkeypatch):
    _connect(monkeypatch, server.url)
    assert MlflowHook(CONN_ID).test_connection() == (True, f"Connected to MLflow at {server.url}")

    _connect(monkeypatch, server.url, password=WRONG_PASSWORD)
    ok, message = MlflowHook(CONN_ID).test_connection()
    assert not ok
    assert f"rejected the login of user {USER!r}" in message
    assert f"fix the login/password of connection {CONN_ID!r}" in message
    assert WRONG_PASSWORD not in message

    dead = f"http://127.0.0.1:{_free_port()}"
    _connect(monkeypatch, dead)
    ok, message = MlflowHook(CONN_ID).test_connection()
    assert not ok
    assert message.startswith(f"Cannot reach MLflow at {dead} (Airflow connection {CONN_ID!r}): ")
