"""The Models page's actions under races, in the real Airflow API server over a real MLflow store: two rollbacks
sent at once (one wins, the other gets 409 naming the champion), an approval after the champion changed (refused
as stale, recorded as stale), and both in Airflow's audit log with the user.

A one-task DAG in its own bundle runs PromotionBranchOperator with dag.test() in a subprocess (the task runner
wants a main thread of its own): its request, `churn_classifier` v3 judged against champion v2, waits for a person.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from conftest import ROOT
from ui_server import running_server, stop

from airflow_mlops.core import approval, registry

pytestmark = pytest.mark.timeout(300)

RACE_MODEL = "races_model"  # no pipeline serves it: acting needs edit on every DAG (the admin has it)
DAG_ID = "races_approval"
DAG_FILE = """
import datetime as dt

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_mlops.operators.evaluation import PromotionBranchOperator

with DAG({dag_id!r}, schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)):
    PromotionBranchOperator(task_id="branch", verdict={verdict!r}) >> [EmptyOperator(task_id="deploy"),
                                                                       EmptyOperator(task_id="record_rejection")]
"""
RUNNER = """
import sys
from airflow.dag_processing.dagbag import DagBag

DagBag(dag_folder=sys.argv[1]).get_dag(sys.argv[2]).test()
"""


def _verdict(model: str, version: str, champion: str) -> dict:
    config = str(ROOT / "include" / "pipelines" / "churn.yaml")
    verdict = {
        "model_name": model,
        "challenger_version": version,
        "champion_version": champion,
        "decision": "REJECT",
        "promote": False,
        "needs_approval": True,
        "evaluation_run_id": "none",
        "reasons": ["FAIL: gain within the band"],
        "approval_reasons": ["borderline gain"],
    }
    ev = approval.evidence(verdict, {"primary_metric": "roc_auc"}, timeout_hours=2)
    return {**verdict, "approval": {"evidence": ev, "config_path": config}}


@pytest.fixture(scope="module")
def server(tmp_path_factory, airflow_db, churn_config):
    base = tmp_path_factory.mktemp("ui_races")
    dags = base / "dags"
    dags.mkdir()
    runner: dict = {}

    def prepare(client) -> None:
        source = client.get_model_version("churn_classifier", "2")
        for i in (1, 2, 3):
            registry.register_challenger(
                client, RACE_MODEL, source.source, source.run_id, tags={"data.digest": f"sha256:race{i}"}
            )
        actor = {"actor": "test-setup"}
        registry.promote(client, RACE_MODEL, "1", expected_champion=None, actor=actor, reason="first")
        registry.promote(client, RACE_MODEL, "2", expected_champion="1", actor=actor, reason="second")
        v3 = registry.register_challenger(
            client, "churn_classifier", source.source, source.run_id, tags={"data.digest": "sha256:churn3"}
        )["version"]
        (dags / f"{DAG_ID}.py").write_text(
            DAG_FILE.format(dag_id=DAG_ID, verdict=_verdict("churn_classifier", v3, "2"))
        )
        local = "airflow.dag_processing.bundles.local.LocalDagBundle"
        bundles = [
            {"name": "races", "classpath": local, "kwargs": {"path": str(dags)}},
            {"name": "dags-folder", "classpath": local, "kwargs": {}},
        ]
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "plugins"),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        }
        runner["proc"] = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(dags), DAG_ID],
            env=env,
            cwd=base,
            stdout=(base / "runs.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        runner["version"] = v3

    with running_server(base, churn_config, prepare=prepare) as s:
        s.extra["runner"] = runner
        try:
            s.extra["pending"] = _wait_for_request(runner["proc"], base)
            yield s
        finally:
            if runner["proc"].poll() is None:  # dag.test waits for the answer: end it (our own process group)
                os.killpg(runner["proc"].pid, signal.SIGKILL)
            stop(runner["proc"])
            _fail_waiting_tasks()


def _wait_for_request(proc, base) -> dict:
    from airflow_mlops import approval_requests

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        pending = approval_requests.pending_approvals(dag_ids=[DAG_ID])
        if pending:
            return pending[0]
        assert proc.poll() is None, (base / "runs.log").read_text()[-4000:]
        time.sleep(0.5)
    raise AssertionError(f"the request never waited:\n{(base / 'runs.log').read_text()[-4000:]}")


def _fail_waiting_tasks() -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.dag_id == DAG_ID, TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
            .values(state=TaskInstanceState.FAILED)
        )


def _csrf(admin: httpx.Client, model: str) -> str:
    page = admin.get(f"/mlops/models/{model}").text
    return page.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]


def _rollback(admin: httpx.Client, token: str, model: str, expected: str, reason: str) -> httpx.Response:
    return admin.post(
        f"/mlops/api/models/{model}/rollback",
        headers={"X-CSRF-Token": token},
        json={"reason": reason, "expected_champion": expected},
    )


def _champion_moved_since_the_request(server, admin: httpx.Client) -> str:
    """Roll churn_classifier back through the page if its champion is still the one the request was judged
    against; the champion now."""
    expected = server.extra["pending"]["champion_version"]
    now = registry.read_aliases(server.client, server.model)["champion"]
    if now == expected:
        moved = _rollback(admin, _csrf(admin, server.model), server.model, expected, "bad v2 in production")
        assert moved.status_code == 200, moved.text
        now = moved.json()["champion"]
    assert now != expected
    return now


def _approve(server, admin: httpx.Client) -> httpx.Response:
    pending = server.extra["pending"]
    return admin.post(
        f"/mlops/api/models/{server.model}/approvals",
        headers={"X-CSRF-Token": _csrf(admin, server.model)},
        json={"dag_id": DAG_ID, "run_id": pending["run_id"], "decision": "approve", "comment": "ship it"},
    )


def test_two_rollbacks_sent_at_once_one_wins_the_other_gets_409_naming_the_champion(server):
    before = registry.read_aliases(server.client, RACE_MODEL)
    with server.http("admin") as admin:
        token = _csrf(admin, RACE_MODEL)
        barrier, answers = threading.Barrier(2), [None, None]

        def send(i: int) -> None:
            with server.http("admin") as own:
                barrier.wait()
                answers[i] = _rollback(own, token, RACE_MODEL, before["champion"], f"rollback {i} sent at once")

        threads = [threading.Thread(target=send, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)

    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    won = next(a for a in answers if a.status_code == 200).json()
    lost = next(a for a in answers if a.status_code == 409).json()["detail"]
    assert won["champion"] == before["previous_champion"]
    assert f"the champion is now version {won['champion']}" in lost and "reload the page" in lost
    assert registry.read_aliases(server.client, RACE_MODEL) == {
        "champion": before["previous_champion"],
        "previous_champion": before["champion"],
    }
    last = registry.history(server.client, RACE_MODEL)[-1]
    assert (last["action"], last["by"]) == ("rollback", "airflow-ui:admin")
    assert (last["actor"]["user.id"], last["actor"]["user.name"]) == ("admin", "admin")


def test_an_approval_after_the_champion_changed_is_refused_as_stale(server):
    version = server.extra["pending"]["version"]
    with server.http("admin") as admin:
        champion = _champion_moved_since_the_request(server, admin)
        answer = _approve(server, admin)

    assert answer.status_code == 409, answer.text
    detail = answer.json()["detail"]
    assert "Stale approval refused" in detail and f"champion is now v{champion}" in detail
    tags = server.client.get_model_version(server.model, version).tags
    assert tags["approval.decision"] == approval.STALE and tags.get("decision") != "PROMOTE"
    assert (tags["approval.expected_champion"], tags["approval.found_champion"]) == ("2", champion)
    entry = [e for e in registry.history(server.client, server.model) if e["action"] == approval.STALE_ACTION][-1]
    assert (entry["version"], entry["by"], entry["expected_champion"], entry["found_champion"]) == (
        version,
        "airflow-user:admin",
        "2",
        champion,
    )
    assert (entry["actor"]["user.id"], entry["actor"]["user.name"]) == ("admin", "admin") and entry["at"]
    assert registry.read_aliases(server.client, server.model)["champion"] == champion  # untouched
    from airflow_mlops import approval_requests

    assert [p["run_id"] for p in approval_requests.pending_approvals(dag_ids=[DAG_ID])] == [
        server.extra["pending"]["run_id"]
    ]  # still waiting: reject it, or it times out


def test_the_page_answers_are_in_airflows_audit_log_with_the_user(server):
    with server.http("admin") as admin:
        now = registry.read_aliases(server.client, RACE_MODEL)["champion"]
        assert _rollback(admin, _csrf(admin, RACE_MODEL), RACE_MODEL, now, "audited rollback").status_code == 200
        _champion_moved_since_the_request(server, admin)
        assert _approve(server, admin).status_code == 409
        rollbacks = admin.get("/api/v2/eventLogs", params={"event": "mlops.rollback", "owner": "admin"}).json()
        approvals = admin.get("/api/v2/eventLogs", params={"event": "mlops.approval", "owner": "admin"}).json()

    assert any(json.loads(e["extra"]).get("reason") == "audited rollback" for e in rollbacks["event_logs"]), rollbacks
    mine = [e for e in approvals["event_logs"] if e["run_id"] == server.extra["pending"]["run_id"]]
    assert mine and mine[-1]["dag_id"] == DAG_ID and json.loads(mine[-1]["extra"])["decision"] == "approve"


def test_a_pending_request_judged_against_another_champion_says_so_on_the_page():
    from airflow_mlops.ui import render

    pending = {
        "model": "m",
        "version": "3",
        "champion_version": "2",
        "dag_id": DAG_ID,
        "run_id": "r1",
        "task_id": "branch",
        "subject": "Promote m v3?",
        "evidence": {},
        "can_respond": True,
    }
    detail = {
        "status": {"name": "m", "champion": "1"},
        "pending_approvals": [pending],
        "evidence": [],
        "versions": [],
        "versions_before": None,
        "versions_older": None,
        "ledger": [],
        "ledger_total": 0,
        "ledger_page": 1,
        "page_size": 25,
    }
    page = render.model_detail(detail, render.Urls("/mlops", ""), can_edit=False)
    assert "judged against v2, now v1): an approval is refused as stale" in page
    detail["status"]["champion"] = "2"
    assert 'class="stale"' not in render.model_detail(detail, render.Urls("/mlops", ""), can_edit=False)
