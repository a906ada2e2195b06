"""The distributed stack, driven as a user or a CI job would: through Airflow's REST API v2.

Brings up its own native stack (PostgreSQL and Redis on loopback, MLflow server with basic
auth on PostgreSQL, Airflow with CeleryExecutor: api-server, scheduler, dag-processor,
triggerer, two Celery workers) in .stack-test/ on fresh databases, and tears it down at the end.
The tests run in order and build on each other: first champion -> drift -> retrain by Asset event.

    make stack-test
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from urllib.parse import quote

import pytest
from conftest import smtp_connection

from tools.stack import manager
from tools.stack.api import AirflowApi
from tools.stack.components import PROJECT_ROOT, StackSettings, load_secrets
from tools.stack.processes import StackError, check_service

pytestmark = [pytest.mark.stack, pytest.mark.timeout(2400)]

RETRAIN, MONITOR, MODEL = "churn_retrain", "churn_drift_monitor", "churn_classifier"
DRIFT_FROM = "2026-02-01"  # the ground truth shifts on this day
FIRST_CHAMPION_AS_OF = "2026-01-29"  # 28 days of the old world
LAST_DAY_ON_DISK = "2026-02-26"
LATE_DAY = "2026-02-27"  # lands only after the monitor waits for it (deferred)


def _require_services() -> None:
    try:
        check_service("PostgreSQL", "127.0.0.1", 5432, "")
        check_service("Redis", "127.0.0.1", 6379, "")
    except StackError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI has PostgreSQL and Redis on loopback, but: {exc}")
        pytest.skip(f"the stack test needs local PostgreSQL and Redis: {exc}")


def _generate(out, start: str, days: int) -> None:
    subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "include" / "churn_stream.py"), "--out", str(out), "--start", start,
         "--days", str(days), "--drift-from", DRIFT_FROM],
        check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def stack():
    _require_services()
    home = PROJECT_ROOT / ".stack-test"
    settings = dataclasses.replace(
        StackSettings.from_env("cluster", home=home), database_prefix="airflow_mlops_stacktest"
    )
    manager.down(settings, log=lambda _: None)  # a run killed earlier left processes behind
    shutil.rmtree(home, ignore_errors=True)
    manager.drop_databases(settings)
    data = home / "data" / "churn"
    _generate(data, "2026-01-01", 57)  # 2026-01-01 .. 2026-02-26
    os.environ["AIRFLOW_MLOPS_DRIFT_POKE_INTERVAL"] = "5"  # the triggerer looks every 5 s, not 5 min
    # The stack gets its SMTP connection as a user gives it one (the `api` fixture), not from this process.
    smtp_env = os.environ.pop("AIRFLOW_CONN_SMTP_DEFAULT", None)
    try:
        manager.up(settings, log=print, timeout=600)
        yield settings, data
    finally:
        os.environ.pop("AIRFLOW_MLOPS_DRIFT_POKE_INTERVAL", None)
        if smtp_env is not None:
            os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = smtp_env
        manager.down(settings, log=print)


@pytest.fixture(scope="module")
def api(stack, mailbox):
    settings, _ = stack
    client = AirflowApi(settings.api_url, "admin", load_secrets(settings)["AIRFLOW_ADMIN_PASSWORD"])
    # The pipelines' alert channel: Airflow's smtp_default, pointed at the test's SMTP server on loopback.
    smtp = json.loads(smtp_connection(mailbox.port))
    client.request("POST", "/connections", json={"connection_id": "smtp_default", "conn_type": "smtp",
                                                 "host": smtp["host"], "port": smtp["port"],
                                                 "extra": json.dumps(smtp["extra"])})  # fmt: skip
    for dag_id in (RETRAIN, MONITOR):
        client.wait_for_dag(dag_id)
        client.unpause_skipping_missed_run(dag_id)
    yield client
    client.close()


@pytest.fixture(scope="module")
def registry(stack):
    """An MlflowClient on the stack's MLflow server, as its admin (read-only use here)."""
    from mlflow import MlflowClient

    settings, _ = stack
    os.environ["MLFLOW_TRACKING_USERNAME"] = "admin"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = load_secrets(settings)["MLFLOW_ADMIN_PASSWORD"]
    yield MlflowClient(tracking_uri=settings.mlflow_url)
    os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
    os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)


def _states(api: AirflowApi, dag_id: str, run_id: str) -> dict[str, str]:
    return {
        ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): ti["state"]
        for ti in api.task_instances(dag_id, run_id)
    }


def _assert_success(api: AirflowApi, dag_id: str, run: dict) -> None:
    assert run["state"] == "success", f"{dag_id} {run['dag_run_id']}: {_states(api, dag_id, run['dag_run_id'])}"


def _mail(mailbox, *words: str, timeout: float = 60.0):
    """The one e-mail holding every word (a worker sends it as its task ends: allow a moment)."""
    deadline = time.monotonic() + timeout
    while not mailbox.matching(*words):
        assert time.monotonic() < deadline, f"no e-mail with {words}; got {[m['subject'] for m in mailbox.messages]}"
        time.sleep(1)
    [mail] = mailbox.matching(*words)
    return mail


def test_nightly_dag_promotes_a_first_champion_and_mapped_training_spreads_over_both_workers(
    stack, api, registry, mailbox
):
    settings, data = stack
    run_id = api.trigger(RETRAIN, {"source": str(data), "as_of": FIRST_CHAMPION_AS_OF})
    run = api.wait_for_run(RETRAIN, run_id, timeout=1200)
    _assert_success(api, RETRAIN, run)

    champion = registry.get_model_version_by_alias(MODEL, "champion")
    assert champion.tags["decision"] == "NO_BASELINE_PROMOTE"
    assert champion.tags["airflow.run_id"] == run_id
    assert champion.tags["mlops.trigger"] == "manual"

    train = [ti for ti in api.task_instances(RETRAIN, run_id) if ti["task_id"] == "train"]
    assert len(train) == 3 and all(ti["state"] == "success" for ti in train)
    workers = {ti["hostname"].split("@")[0] for ti in api.task_instances(RETRAIN, run_id)}
    assert {"worker1", "worker2"} <= workers, f"tasks ran on {workers}: both Celery workers should have taken some"

    # A Celery worker sent the promotion alert through the stack's smtp_default connection.
    mail = _mail(
        mailbox, "churn: new champion", f"{MODEL} v{champion.version} is the new champion", quote(run_id, safe="")
    )
    version_page = f"{settings.mlflow_url}/#/models/{MODEL}/versions/{champion.version}"
    assert version_page in mailbox.body(mail)  # the stack's MLflow server, not the local default
    links = f"/dags/{RETRAIN}/dagRuns/{quote(run_id, safe='')}/taskInstances/{{}}/links"
    assert api.request("GET", links.format("deploy"))["extra_links"]["Model version"] == version_page
    evaluation_run = champion.tags["evaluation.run_id"]
    assert api.request("GET", links.format("evaluate"))["extra_links"]["MLflow run"] == (
        f"{settings.mlflow_url}/#/experiments/{registry.get_run(evaluation_run).info.experiment_id}/runs/{evaluation_run}"
    )


def test_drift_is_waited_for_in_the_triggerer_and_its_asset_event_schedules_the_retrain(stack, api, registry, mailbox):
    settings, data = stack
    known_retrains = {r["dag_run_id"] for r in api.dag_runs(RETRAIN)}

    # First drift check on data that is all on disk: drift, but 1 check of the 2 needed.
    first = api.trigger(MONITOR, {"source": str(data), "as_of": LAST_DAY_ON_DISK})
    _assert_success(api, MONITOR, api.wait_for_run(MONITOR, first, timeout=600))
    assert _states(api, MONITOR, first)["request_retrain"] == "skipped"

    # Second check for a day that has not landed: the sensor defers to the triggerer.
    second = api.trigger(MONITOR, {"source": str(data), "as_of": LATE_DAY})
    deadline = time.monotonic() + 300
    while _states(api, MONITOR, second).get("check_drift") != "deferred":
        assert time.monotonic() < deadline, f"check_drift never deferred: {_states(api, MONITOR, second)}"
        time.sleep(2)
    _generate(data, LATE_DAY, 1)  # the upstream export lands; the trigger sees it and the task resumes
    _assert_success(api, MONITOR, api.wait_for_run(MONITOR, second, timeout=600))
    assert _states(api, MONITOR, second)["request_retrain"] == "success"

    # The scheduler itself turns the retrain-request Asset event into a retraining run.
    retrain = api.wait_for_new_run(RETRAIN, known_retrains, run_type="asset_triggered", timeout=300)
    run = api.wait_for_run(RETRAIN, retrain["dag_run_id"], timeout=1200)
    _assert_success(api, RETRAIN, run)

    champion = registry.get_model_version_by_alias(MODEL, "champion")
    assert champion.tags["airflow.run_id"] == retrain["dag_run_id"]
    assert champion.tags["decision"] == "PROMOTE"
    assert champion.tags["mlops.trigger"] == "drift"
    assert "drift" in champion.tags["mlops.trigger.summary"].lower()
    _mail(mailbox, "churn: drift confirmed, retrain requested", quote(second, safe=""))
    promoted = _mail(mailbox, "churn: new champion", quote(retrain["dag_run_id"], safe=""))
    assert "started by: drift" in mailbox.body(promoted)


def test_final_aliases_and_ledger_tell_the_whole_story(stack, registry):
    from airflow_mlops.core import registry as reg

    champion = registry.get_model_version_by_alias(MODEL, "champion")
    previous = registry.get_model_version_by_alias(MODEL, "previous_champion")
    assert int(previous.version) < int(champion.version)
    assert previous.tags["decision"] == "NO_BASELINE_PROMOTE"

    moves = [m for m in reg.history(registry, MODEL) if m["alias"] == "champion"]
    assert [str(m["to"]) for m in moves] == [previous.version, champion.version]
    assert all(m["actor"] for m in moves), "every move names the Airflow run that made it"


def test_the_trainer_is_refused_on_the_ledger_and_the_champion(stack, registry, capsys):
    """The workers' own identity (mlflow_default: trainer) cannot rewrite the ledger, take its lock or move champion."""
    import requests

    from airflow_mlops.core import registry as reg

    settings, _ = stack
    trainer = ("trainer", load_secrets(settings)["MLFLOW_TRAINER_PASSWORD"])
    history = reg.history(registry, MODEL)
    champion = registry.get_model_version_by_alias(MODEL, "champion").version
    ledger = registry.get_run(registry.get_registered_model(MODEL).tags[reg.LEDGER_RUN_TAG])
    api = f"{settings.mlflow_url}/api/2.0"
    artifacts = ledger.info.artifact_uri.removeprefix("mlflow-artifacts:")
    attempts = {
        "rewrite the ledger": requests.put(f"{api}/mlflow-artifacts/artifacts{artifacts}/{reg.LEDGER_ARTIFACT}",
                                           data=b"[]", auth=trainer, timeout=30),
        "take the promotion lock": requests.post(f"{api}/mlflow/runs/log-parameter", auth=trainer, timeout=30, json={
            "run_id": ledger.info.run_id, "key": "lock.999", "value": "{}"}),
        "move champion": requests.post(f"{api}/mlflow/registered-models/alias", auth=trainer, timeout=30, json={
            "name": MODEL, "alias": "champion", "version": "1"}),
    }  # fmt: skip
    statuses = {what: response.status_code for what, response in attempts.items()}
    with capsys.disabled():  # in `make stack-test`'s output
        print(f"\nMLflow refused the trainer: {', '.join(f'{what}: HTTP {code}' for what, code in statuses.items())}")
    assert statuses == dict.fromkeys(attempts, 403)
    assert reg.history(registry, MODEL) == history
    assert registry.get_model_version_by_alias(MODEL, "champion").version == champion
