"""Alerts that reach a person, through real channels: a real SMTP server on loopback (aiosmtpd, the
session's `smtp_default`, see conftest) and a real HTTP server on loopback for webhooks.

A failed run, a promotion, a rejection's log line and a rollback each deliver a message whose
subject and body name the pipeline, the event and where to look; a channel that cannot be reached
never fails the task nor hides its error; bad alert configs are refused naming the key.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import quote

import pytest
from conftest import ROOT, free_port, smtp_connection, task_states

from airflow_mlops.core.alerts import Alert, redact
from airflow_mlops.core.config import parse_config
from airflow_mlops.core.errors import ConfigError

LOGICAL = dt.datetime(2026, 1, 28, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).get_dag("churn_retrain")


def conf(source, **extra) -> dict:
    # Every param explicitly: in dag.test() one run's conf leaks into the next run's params.
    return {"source": str(source), "as_of": None, "config": "churn_fast", **extra}


# --------------------------------------------------------------------------- through the DAG, into a mailbox


def test_a_failed_run_and_a_promotion_each_deliver_an_email(
    dag, mlops_home, mlflow_client, mailbox, tmp_path, churn_dir
):
    before = len(mailbox.messages)
    failed = dag.test(logical_date=LOGICAL, run_conf=conf(tmp_path / "nowhere.csv"))
    assert task_states(failed)["snapshot"] == "failed"
    [mail] = mailbox.matching("churn: run failed", failed.run_id, since=before)
    body = mailbox.body(mail)
    assert (
        mail["subject"].startswith("[airflow-mlops] churn: run failed: churn_retrain run")
        and "'snapshot'" in mail["subject"]
    )
    assert mail["to"] == "ml-team@example.com"
    assert "nowhere.csv: source not found" in body  # the first line of the task's own error
    assert f"/dags/churn_retrain/runs/{quote(failed.run_id, safe='')}/tasks/snapshot" in body  # its log
    assert "The serving champion was not changed" in body
    assert len(mailbox.messages) == before + 1  # one alert for one failed run (the DAG callback adds none)

    promoted = dag.test(logical_date=LOGICAL, run_conf=conf(churn_dir))
    assert task_states(promoted)["deploy"] == "success"
    [mail] = mailbox.matching("churn: new champion", "churn_classifier v1 is the new champion", since=before)
    body = mailbox.body(mail)
    assert "NO_BASELINE_PROMOTE" in mail["subject"]
    version = mlflow_client.get_model_version("churn_classifier", "1")
    assert f"#/runs/{version.tags['evaluation.run_id']}" in body  # the MLflow evaluation run
    assert (
        "#/models/churn_classifier/versions/1" in body
        and f"/dags/churn_retrain/runs/{quote(promoted.run_id, safe='')}" in body
    )
    assert "judged on 600 test rows" in body and "started by: manual" in body


def test_a_rollback_from_the_cli_delivers_an_email_naming_who_and_why(
    dag, mlops_home, mlflow_client, mailbox, churn_dir, caplog
):
    from airflow_mlops import cli

    caplog.set_level(logging.INFO, logger="airflow_mlops.alerts")
    before = len(mailbox.messages)
    for day in ("2026-01-27", "2026-01-28"):
        dag.test(logical_date=LOGICAL, run_conf=conf(churn_dir, as_of=day))
    # day 2 is rejected: churn.yaml routes that to the log only, with the failing checks
    assert "churn: challenger rejected: churn_classifier v2 was rejected; the champion stays v1" in caplog.text
    assert "- failed: " in caplog.text and not mailbox.matching("challenger rejected", since=before)
    from airflow_mlops.core import registry

    registry.promote(mlflow_client, "churn_classifier", "2", expected_champion="1",
                     actor={"actor": "test"}, reason="by hand, for the test")  # fmt: skip
    assert cli.main(["rollback", "churn_classifier", "--reason", "complaints since 9:00"]) == 0
    [mail] = mailbox.matching("churn: champion rolled back", "complaints since 9:00", since=before)
    body = mailbox.body(mail)
    assert "the champion is v1 again (rollback by cli:" in body
    assert "#/models/churn_classifier/versions/1" in body


def test_under_airflow_dags_test_the_failure_alert_fires_and_no_callback_fails(
    airflow_db, mailbox, tmp_path, mlops_home
):
    """`airflow dags test` hands DAG-level callbacks a SerializedDAG (no template env in 3.3)."""
    import os

    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")}
    missing = tmp_path / "gone.csv"
    before = len(mailbox.messages)
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "churn_retrain", "2026-01-28T02:00:00+00:00",
         "-c", json.dumps({"source": str(missing), "config": "churn_fast"})],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = out.stdout + out.stderr
    assert "Callback failed" not in log and "get_template_env" not in log, log[-3000:]
    assert "gone.csv: source not found" in log
    assert mailbox.matching("churn: run failed", "gone.csv: source not found", since=before)


def test_an_smtp_server_that_is_down_never_fails_the_task_nor_hides_its_error(
    dag, mlops_home, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(free_port()))  # nothing listens there
    caplog.set_level(logging.INFO)
    run = dag.test(logical_date=LOGICAL, run_conf=conf(tmp_path / "absent.csv"))
    assert task_states(run)["snapshot"] == "failed"
    text = caplog.text
    assert "absent.csv: source not found" in text  # the task's own error, as it was
    assert "the run_failed alert was NOT sent to channel 'ml_team' (email through connection 'smtp_default')" in text
    assert "[airflow-mlops alert] [airflow-mlops] churn: run failed" in text  # the log channel always has it


# --------------------------------------------------------------------------- channels, directly


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers["Content-Length"])
        Hook.received.append({"body": json.loads(self.rfile.read(length)), "auth": self.headers.get("Authorization")})
        self.send_response(Hook.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hook.received, Hook.status = [], 200
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks/mlops"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLOPS_WEBHOOK",
        json.dumps({"conn_type": "http", "host": url, "login": "bot", "password": "s3cret"}),
    )
    yield Hook
    server.shutdown()


def alert_config(churn_config, channels: dict, events: dict):
    raw = copy.deepcopy(churn_config.raw)
    raw["alerts"] = {"channels": channels, "events": events}
    return parse_config(raw, file=churn_config.path, check_estimators=False)


ALERT = Alert(
    event="promoted",
    pipeline="churn",
    summary="churn_classifier v7 is the new champion (was v6), PROMOTE.",
    meaning="models:/churn_classifier@champion now serves v7.",
    details=["roc_auc improved by 0.0100"],
    links={"MLflow evaluation run": "http://mlflow:5000/#/runs/abc"},
)


@pytest.mark.parametrize("fmt", ["json", "slack"])
def test_a_webhook_channel_posts_to_a_real_http_server(churn_config, webhook, fmt):
    from airflow_mlops.alerting import send_alert

    config = alert_config(
        churn_config, {"chat": {"type": "webhook", "conn_id": "mlops_webhook", "format": fmt}}, {"promoted": ["chat"]}
    )
    assert send_alert(ALERT, config) == {"chat": "sent"}
    [got] = webhook.received
    assert got["auth"].startswith("Basic ")
    if fmt == "slack":
        assert set(got["body"]) == {"text"} and "churn: new champion" in got["body"]["text"]
    else:
        assert got["body"]["event"] == "promoted" and got["body"]["pipeline"] == "churn"
        assert got["body"]["links"] == {"MLflow evaluation run": "http://mlflow:5000/#/runs/abc"}
    assert "s3cret" not in json.dumps(got["body"])


def test_a_failing_channel_is_logged_naming_pipeline_channel_and_connection(churn_config, webhook, caplog):
    from airflow_mlops.alerting import send_alert

    webhook.status = 500
    config = alert_config(
        churn_config,
        {"chat": {"type": "webhook", "conn_id": "mlops_webhook"},
         "nobody": {"type": "email", "conn_id": "smtp_missing", "to": ["a@example.com"]}},
        {"promoted": ["chat", "nobody"]},
    )  # fmt: skip
    caplog.set_level(logging.INFO, logger="airflow_mlops.alerts")
    outcomes = send_alert(ALERT, config)
    assert outcomes["chat"] == "the webhook answered HTTP 500 Internal Server Error"
    assert "Airflow connection 'smtp_missing' does not exist" in outcomes["nobody"]
    assert (
        "pipeline 'churn': the promoted alert was NOT sent to channel 'nobody' (email through connection "
        "'smtp_missing'): Airflow connection 'smtp_missing' does not exist" in caplog.text
    )
    assert "AIRFLOW_CONN_SMTP_MISSING" in caplog.text


def test_messages_never_carry_credentials():
    leaky = Alert(
        event="run_failed",
        pipeline="churn",
        summary="connect to postgresql://airflow:hunter2@db:5432/x failed; password=hunter2 token: abc123",
        meaning="m",
        details=["https://user:pw@mlflow.example.com/api failed"],
    )
    for text in (leaky.subject(), leaky.text(), leaky.html(), json.dumps(leaky.payload())):
        assert "hunter2" not in text and "abc123" not in text and "user:pw" not in text
    assert redact("https://bob:x@h/p") == "https://***@h/p"


@pytest.mark.parametrize(
    ("alerts", "match"),
    [
        ({"events": {"run_exploded": []}}, r"alerts\.events: unknown event 'run_exploded'"),
        (
            {"channels": {"m": {"type": "email", "conn_id": "smtp_default", "to": "a@example.com"}}},
            r"alerts\.channels\.m\.to: expected list",
        ),
        (
            {"channels": {"m": {"type": "email", "conn_id": "smtp_default", "to": ["not-an-address"]}}},
            r"alerts\.channels\.m\.to: expected a list of e-mail addresses",
        ),
        ({"channels": {"m": {"type": "pager", "conn_id": "x"}}}, r"alerts\.channels\.m\.type: 'pager' is not one of"),
        ({"events": {"promoted": ["nobody"]}}, r"alerts\.events: promoted: unknown channel\(s\) 'nobody'"),
    ],
)
def test_bad_alert_config_names_the_key(churn_config, alerts, match):
    raw = copy.deepcopy(churn_config.raw)
    raw["alerts"] = alerts
    with pytest.raises(ConfigError, match=match):
        parse_config(raw, file=churn_config.path, check_estimators=False)


# --------------------------------------------------------------------------- params that cannot be paths


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("data/churn\x00.csv", ["NUL byte", "not a usable path"]),
        ("data/churn\n.csv", ["control character '\\n'"]),
        ("data/" + "x" * 5000, ["characters long", "not a usable path"]),
    ],
)
def test_a_param_that_cannot_be_a_path_fails_once_with_our_message(dag, mlops_home, caplog, source, words):
    caplog.set_level(logging.INFO)
    run = dag.test(logical_date=LOGICAL, run_conf=conf(source))
    snapshot = [ti for ti in run.get_task_instances() if ti.task_id == "snapshot"][0]
    assert str(snapshot.state) == "failed" and snapshot.try_number == 1  # no retry: bad input
    for word in words:
        assert word in caplog.text
    assert "embedded null byte" not in caplog.text


def test_an_as_of_that_is_not_a_date_fails_once_naming_the_param(dag, mlops_home, caplog, churn_dir):
    caplog.set_level(logging.INFO)
    run = dag.test(logical_date=LOGICAL, run_conf=conf(churn_dir, as_of="2026-13-45"))
    snapshot = [ti for ti in run.get_task_instances() if ti.task_id == "snapshot"][0]
    assert str(snapshot.state) == "failed" and snapshot.try_number == 1
    assert "param as_of='2026-13-45' is not a date: use YYYY-MM-DD" in caplog.text


def test_a_nul_byte_in_a_source_is_bad_input_for_core_too(churn_config):
    from airflow_mlops.core.data import take_snapshot
    from airflow_mlops.core.errors import DataSourceError

    with pytest.raises(DataSourceError, match="NUL byte"):
        take_snapshot(churn_config, source="data/a\x00b", window_end=dt.date(2026, 1, 28))
