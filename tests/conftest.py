"""Shared fixtures: a private MLOps home, a real MLflow SQLite store, the churn config and data."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
CHURN_CONFIG = ROOT / "include" / "pipelines" / "churn.yaml"

# Airflow reads its config at import: give the test session its own home and metadata DB
# before anything imports airflow.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-mlops-tests-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "AIRFLOW_MLOPS_HOME": str(_AIRFLOW_HOME / "mlops"),
    }
)


def _load_stream_module():
    spec = importlib.util.spec_from_file_location("churn_stream", ROOT / "include" / "churn_stream.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


churn_stream = _load_stream_module()


@pytest.fixture(scope="session", autouse=True)
def data_roots(tmp_path_factory) -> Iterator[Path]:
    """Sources must live in allowed folders: the tests' temporary folders are one (AIRFLOW_MLOPS_DATA_ROOTS)."""
    root = tmp_path_factory.getbasetemp()
    previous = os.environ.get("AIRFLOW_MLOPS_DATA_ROOTS")
    os.environ["AIRFLOW_MLOPS_DATA_ROOTS"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("AIRFLOW_MLOPS_DATA_ROOTS", None)
    else:
        os.environ["AIRFLOW_MLOPS_DATA_ROOTS"] = previous


def task_states(dag_run) -> dict[str, str]:
    """Task id -> state of a dag.test() run (for a mapped task: 'success' only if every mapped instance succeeded)."""
    out: dict[str, str] = {}
    for ti in dag_run.get_task_instances():
        if out.get(ti.task_id, "success") == "success":
            out[ti.task_id] = str(ti.state)
    return out


class Mailbox:
    """What a real SMTP server on loopback (aiosmtpd) received: one email.message.EmailMessage a mail."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        import email
        from email import policy

        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

    @staticmethod
    def body(message) -> str:
        return "\n".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")

    def matching(self, *words: str, since: int = 0) -> list:
        """The messages (from the `since`-th on: the session's mailbox holds every test's) whose subject or body
        holds every word."""
        return [m for m in self.messages[since:] if all(w in f"{m['subject']}\n{self.body(m)}" for w in words)]


def smtp_connection(port: int) -> str:
    """An Airflow SMTP connection (JSON, for AIRFLOW_CONN_*) to a plain SMTP server on loopback."""
    import json

    extra = {
        "disable_tls": True,
        "disable_ssl": True,
        "timeout": 5,
        "retry_limit": 0,
        "from_email": "airflow-mlops@tests.local",
    }
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": extra})


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def mailbox() -> Iterator[Mailbox]:
    """Every alert of the session goes to a real SMTP server on loopback: the pipelines' `smtp_default`."""
    from aiosmtpd.controller import Controller

    port = free_port()
    box = Mailbox(port)
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = smtp_connection(port)
    yield box
    controller.stop()
    os.environ.pop("AIRFLOW_CONN_SMTP_DEFAULT", None)


@pytest.fixture
def mlops_home(tmp_path, monkeypatch) -> Path:
    """A fresh AIRFLOW_MLOPS_HOME: its own SQLite tracking store, artifacts and snapshots."""
    home = tmp_path / "mlops"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_MLOPS_HOME", str(home))
    return home


@pytest.fixture
def mlflow_client(mlops_home):
    """A real MlflowClient on a SQLite store inside the test's MLOps home."""
    from mlflow import MlflowClient

    from airflow_mlops import settings
    from airflow_mlops.core import tracking

    client = MlflowClient(tracking_uri=settings.default_tracking_uri(), registry_uri=settings.default_tracking_uri())
    tracking.configure(client)
    return client


@pytest.fixture(scope="session")
def churn_config():
    from airflow_mlops.core.config import load_config

    return load_config(CHURN_CONFIG)


@pytest.fixture
def churn_dir(tmp_path) -> Path:
    """28 clean daily churn files in a temp folder (2026-01-01 .. 2026-01-28), 200 rows a day."""
    out = tmp_path / "data" / "churn"
    churn_stream.write_stream(out, dt.date(2026, 1, 1), 28, rows=200)
    return out


@pytest.fixture
def churn_frame():
    """A clean churn dataframe of 2,000 rows (10 days of 200: the time split's 3 test days hold 600 rows)."""
    import pandas as pd

    return pd.concat(
        [churn_stream.daily_batch(dt.date(2026, 1, 1) + dt.timedelta(days=i), rows=200) for i in range(10)],
        ignore_index=True,
    )


@pytest.fixture
def bad_churn_frame():
    """A churn batch with the generator's bad-batch switch on."""
    return churn_stream.daily_batch(dt.date(2026, 1, 3), rows=400, bad=True)


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata DB (SQLite) for dag.test() runs in this session."""
    from airflow.models.pool import Pool
    from airflow.utils import db

    db.resetdb()
    Pool.create_or_update_pool("mlops_promotion", 1, "One promotion at a time", include_deferred=False)
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def binary_config(model: str, features=("mean_radius", "mean_texture", "mean_area"), *, pipeline: str = "unit_test"):
    """A small binary-classification pipeline config over breast-cancer features (one logistic regression)."""
    from airflow_mlops.core.config import parse_config

    return parse_config(
        {
            "pipeline": pipeline,
            "source": {"path": "data/test"},
            "target": {"column": "target", "task": "binary_classification"},
            "features": [{"name": n, "type": "numeric"} for n in features],
            "validation": {"suite": "s.json"},
            "model": {
                "name": model,
                "candidates": [
                    {
                        "name": "logreg",
                        "estimator": "sklearn.linear_model.LogisticRegression",
                        "params": {"max_iter": 300},
                    },
                ],
            },
            "metrics": {"primary": "roc_auc"},
            "seed": 3,
        }
    )


@pytest.fixture(scope="session")
def breast_cancer():
    """scikit-learn's breast-cancer data set as a frame, column names without spaces."""
    from sklearn.datasets import load_breast_cancer

    df = load_breast_cancer(as_frame=True).frame
    df.columns = [c.replace(" ", "_") for c in df.columns]
    return df


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A browser test that fails saves what the browser showed: tests/ui/screenshots/failed_<test>.png."""
    report = yield
    browser = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and browser is not None:
        path = ROOT / "tests" / "ui" / "screenshots" / f"failed_{item.name}.png"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(path))
            report.sections.append(("browser", f"screenshot: {path}\nurl: {browser.current_url}"))
        except Exception as exc:  # the browser may be gone: the failure itself is what matters
            report.sections.append(("browser", f"no screenshot: {exc}"))
    return report
