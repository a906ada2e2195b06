"""Helpers for the Models page tests and benchmark: the real Airflow API server (its embedded SQLite state,
SimpleAuthManager users admin and viewer) over a real MLflow store holding a real champion, and headless Chromium."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, churn_stream, free_port

MODEL_FROM_CHURN = "churn_classifier"  # the model include/pipelines/churn.yaml serves
PASSWORDS = {"admin": "admin-pw-1", "viewer": "viewer-pw-1"}
SECRET = "ui-tests-secret-key"
XSS_REASON = "<script>window.__xss = 'reason'</script>"
XSS_TRIGGER = "<img src=x onerror=\"window.__xss='trigger'\">"
SCREENSHOTS = ROOT / "tests" / "ui" / "screenshots"


@dataclass
class Server:
    url: str
    home: Path
    client: object
    model: str
    log: Path
    extra: dict = field(default_factory=dict)

    def token(self, user: str) -> str:
        r = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": PASSWORDS[user]}, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["access_token"]

    def http(self, user: str | None = None) -> httpx.Client:
        cookies = {"_token": self.token(user)} if user else {}
        return httpx.Client(base_url=self.url, cookies=cookies, timeout=60)


def make_champion(client, config, df: object, model: str) -> dict:
    """Versions 1 and 2 of `model` trained, registered, judged by the real gate and promoted (v2 champion,
    v1 previous_champion), as the retraining DAG does; v2's verdict carries a reason holding a <script>."""
    from airflow_mlops.core import evaluation, registry, training
    from airflow_mlops.core.rows import split_roles

    split = split_roles(df, config)
    versions = []
    for i in (1, 2):
        result = training.train_candidate(
            split,
            config,
            "logistic_regression",
            client=client,
            experiment=config.name,
            data_digest=f"sha256:{i}" + "ab" * 20,
            data_uri="file:///x.parquet",
            tags={},
        )
        tags = {
            "data.digest": f"sha256:{i}" + "ab" * 20,
            "airflow.dag_id": "churn_retrain",
            "airflow.run_id": f"manual__2026-02-1{i}",
            "mlops.trigger": "schedule" if i == 1 else XSS_TRIGGER,
        }
        versions.append(
            registry.register_challenger(client, model, result["model_uri"], result["run_id"], tags=tags)["version"]
        )
    v1, v2 = (str(v) for v in versions)
    task = {"airflow.dag_id": "churn_retrain", "airflow.run_id": "manual__2026-02-11", "airflow.task_id": "deploy"}
    registry.promote(client, model, v1, expected_champion=None, actor=task, reason="first model: floors hold")
    result = evaluation.evaluate(
        client, config, split.test, challenger_uri=f"models:/{model}/{v2}", champion_uri=f"models:/{model}/{v1}"
    )
    evaluation.log_evaluation(
        client,
        result,
        experiment=f"{config.name}-evaluation",
        run_name="evaluate",
        tags={"airflow.dag_id": "churn_retrain"},
        model_name=model,
        challenger_version=v2,
        champion_version=v1,
    )
    reasons = [*result.verdict.reasons, XSS_REASON]
    client.set_model_version_tag(model, v2, "decision.reasons", json.dumps(reasons))
    task = {**task, "airflow.run_id": "manual__2026-02-12"}
    registry.promote(client, model, v2, expected_champion=v1, actor=task, reason=f"beats v1 {XSS_TRIGGER}")
    return {"v1": v1, "v2": v2, "reasons": reasons}


def start_api_server(home: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """`airflow api-server` on loopback; returns once /api/v2/monitor/health answers (or fails with its log)."""
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=env,
        cwd=home,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"api-server exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"api-server did not answer in 120 s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def server_env(home: Path, port: int) -> dict[str, str]:
    """The test session's Airflow settings, this module's MLflow home, two users with known passwords."""
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"}
    env.update({
        "AIRFLOW_MLOPS_HOME": str(home / "mlops"),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__SECRET_KEY": SECRET,
        "AIRFLOW__API_AUTH__JWT_SECRET": SECRET + "-jwt",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__MLOPS__MLFLOW_UI_URL": "http://127.0.0.1:5000",
        "PYTHONPATH": str(ROOT / "plugins"),
    })  # fmt: skip
    return env


def churn_rows():
    """10 days of 200 churn rows (the time split's 3 test days hold 600)."""
    import pandas as pd

    return pd.concat(
        [churn_stream.daily_batch(dt.date(2026, 1, 1) + dt.timedelta(days=i), rows=200) for i in range(10)],
        ignore_index=True,
    )


@contextmanager
def running_server(home: Path, churn_config, prepare=None, *, champion: bool = True) -> Iterator[Server]:
    """The API server on a MLflow store in `home` holding `churn_classifier` v1 (previous champion) and v2
    (champion; none with `champion=False`); `prepare(client)` may add more before the server starts."""
    from mlflow import MlflowClient

    from airflow_mlops.core import tracking

    (home / "mlops").mkdir()
    uri = f"sqlite:///{home / 'mlops' / 'mlflow.db'}"
    previous_home = os.environ.get("AIRFLOW_MLOPS_HOME")
    os.environ["AIRFLOW_MLOPS_HOME"] = str(home / "mlops")  # artifacts of this store go under it
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        tracking.configure(client)
        made = make_champion(client, churn_config, churn_rows(), MODEL_FROM_CHURN) if champion else {}
        if prepare is not None:
            prepare(client)
    finally:
        if previous_home is None:
            os.environ.pop("AIRFLOW_MLOPS_HOME", None)
        else:
            os.environ["AIRFLOW_MLOPS_HOME"] = previous_home
    port = free_port()
    log = home / "api-server.log"
    proc = start_api_server(home, port, server_env(home, port), log)
    try:
        yield Server(
            url=f"http://127.0.0.1:{port}", home=home, client=client, model=MODEL_FROM_CHURN, log=log, extra=made
        )
    finally:
        stop(proc)


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return (browser, driver) if browser and driver else None


def chrome():
    """Headless Debian Chromium driven by Selenium (the system chromedriver: nothing is downloaded)."""
    paths = chromium_paths()
    if paths is None:
        pytest.fail(
            "chromium and chromium-driver are not installed: run `make browser` "
            "(Debian: apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1000",
        "--force-prefers-reduced-motion",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=paths[1]))
    driver.set_page_load_timeout(60)
    return driver
