"""A borderline promotion waits for a person (evaluation.approval), with the real task runner (dag.test()),
MLflow (SQLite) and GX. The person answers through Airflow's own HITL response route (approval_requests.respond);
the timeout through the scheduler's own awaiting-input sweep.

The pipeline `gate` is churn_fast with `margin: 0` and `approval: {mode: borderline, band: 1.0}`: the first run
has no champion (nothing to be borderline about: it promotes without waiting); every later run on the same data
retrains the same model, so the gain is exactly 0, the interval [0, 0], and the gate's REJECT (the interval is not
above zero, within the band of it) waits for a person, deterministically.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time

import pytest
import yaml
from conftest import ROOT, churn_stream, task_states

LOGICAL = dt.datetime(2026, 1, 28, 2, 0, tzinfo=dt.UTC)
MODEL = "gate_classifier"
DAG_ID = "gate_retrain"


def _gate_config(**approval) -> dict:
    config = yaml.safe_load((ROOT / "include" / "pipelines" / "churn_fast.yaml").read_text())
    del config["variant_of"], config["scoring"]
    config["pipeline"] = "gate"
    config["model"]["name"] = MODEL
    config["schedule"] = {"retrain": None, "drift_monitor": None, "scoring": None, "performance_monitor": None}
    config["evaluation"]["margin"] = 0.0
    config["evaluation"]["approval"] = {"mode": "borderline", "band": 1.0, **approval}
    config["alerts"]["events"]["approval_waiting"] = ["ml_team"]
    return config


@pytest.fixture(scope="module")
def gate(airflow_db, tmp_path_factory):
    """The `gate` project (and its variant `gate_quick` that waits 1.8 s), its data, an MLflow home and a champion."""
    root = tmp_path_factory.mktemp("approval") / "project"
    (root / "include" / "pipelines").mkdir(parents=True)
    shutil.copytree(ROOT / "include" / "expectations", root / "include" / "expectations")
    (root / "include" / "pipelines" / "gate.yaml").write_text(yaml.safe_dump(_gate_config(timeout_hours=2)))
    quick = _gate_config(timeout_hours=0.0005)
    quick["variant_of"] = "gate"
    (root / "include" / "pipelines" / "gate_quick.yaml").write_text(yaml.safe_dump(quick))
    data = root.parent / "data"
    churn_stream.write_stream(data, dt.date(2026, 1, 1), 28, rows=200)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_MLOPS_PROJECT_ROOT", str(root))
        mp.setenv("AIRFLOW_MLOPS_HOME", str(root.parent / "mlops"))
        from airflow.dag_processing.dagbag import DagBag
        from mlflow import MlflowClient

        from airflow_mlops import settings
        from airflow_mlops.core import tracking

        bag = DagBag(dag_folder=str(ROOT / "dags"))
        assert bag.import_errors == {}
        dag = bag.get_dag(DAG_ID)
        client = MlflowClient(
            tracking_uri=settings.default_tracking_uri(), registry_uri=settings.default_tracking_uri()
        )
        tracking.configure(client)
        first = dag.test(logical_date=LOGICAL, run_conf={"source": str(data)})
        # No champion yet: nothing borderline, no request, promoted at once.
        assert task_states(first) == {t: "success" for t in dag.task_ids} | {"record_rejection": "skipped"}
        assert _hitl_requests(first.run_id) == []
        yield {"dag": dag, "client": client, "data": str(data), "runs": [first]}


def _hitl_requests(run_id: str) -> list:
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(
            session.scalars(
                select(HITLDetail.subject)
                .join(TaskInstance, HITLDetail.ti_id == TaskInstance.id)
                .where(TaskInstance.run_id == run_id)
            )
        )


def _run_while(gate: dict, answer, days: int, **conf) -> tuple:
    """dag.test() one run (in this thread: the task runner wants the main thread) while `answer(pending)` runs
    in another once the run waits; returns (dag_run, what answer returned, the pending request it saw)."""
    from airflow_mlops import approval_requests as approval

    seen: dict = {}

    def respond_when_waiting() -> None:
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                pending = approval.pending_approvals(dag_ids=[DAG_ID])
                if pending:
                    seen["pending"] = pending
                    seen["result"] = answer(pending[0])
                    return
                time.sleep(0.5)
            seen["error"] = "the run never waited for a person"
        except BaseException:  # surfaced by the test, not lost in the thread
            import traceback

            seen["error"] = traceback.format_exc()
            print(seen["error"], flush=True)
            _fail_waiting_tasks()  # else dag.test() waits for ever

    thread = threading.Thread(target=respond_when_waiting, daemon=True)
    thread.start()
    run = gate["dag"].test(logical_date=LOGICAL + dt.timedelta(hours=days), run_conf={"source": gate["data"], **conf})
    thread.join(timeout=30)
    assert "error" not in seen, seen.get("error")
    return run, seen["result"], seen["pending"]


def _fail_waiting_tasks() -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
            .values(state=TaskInstanceState.FAILED)
        )


def _user(name: str):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return SimpleAuthManagerUser(username=name, role="user")


def test_a_borderline_challenger_waits_and_a_named_person_approves_it(gate, mailbox):
    from airflow_mlops import approval_requests as approval
    from airflow_mlops.core import registry

    client = gate["client"]
    before = str(client.get_model_version_by_alias(MODEL, "champion").version)

    def approve(pending):
        assert pending["model"] == MODEL and pending["task_id"] == "branch" and pending["map_index"] == -1
        assert pending["version"] != before and pending["champion_version"] == before
        ev = pending["evidence"]
        assert ev["gain"] == 0.0 and ev["ci_low"] == 0.0 and ev["test_rows"] >= 500
        assert ev["evaluation_run_id"] and "within evaluation.approval.band 1" in ev["why"][0]
        assert "roc_auc (primary)" in pending["body"] and "#/runs/" + ev["evaluation_run_id"] in pending["body"]
        return approval.respond(
            dag_id=pending["dag_id"],
            run_id=pending["run_id"],
            approve=True,
            user=_user("alice"),
            comment="gain is flat but the data is newer: ship it",
        )

    run, answer, [pending] = _run_while(gate, approve, 1)

    assert answer["chosen"] == approval.APPROVE and answer["by"] == "alice"
    states = task_states(run)
    assert states["branch"] == "success" and states["deploy"] == "success" and states["record_rejection"] == "skipped"
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert str(version.version) == pending["version"] != before
    tags = version.tags
    assert tags["decision.gate"] == "REJECT" and tags["decision"] == "PROMOTE"  # the gate alone would have rejected
    assert tags["approval.decision"] == "approved" and tags["approval.by"] == "alice"
    assert tags["approval.comment"] == "gain is flat but the data is newer: ship it" and tags["approval.at"]
    assert tags["approval.required"] == "true"
    promoted = [e for e in registry.history(client, MODEL) if e["action"] == "promote" and e["alias"] == "champion"][-1]
    assert promoted["to"] == str(version.version) and promoted["by"] == "airflow-user:alice"
    assert promoted["actor"]["approval.comment"] == tags["approval.comment"]
    assert promoted["actor"]["airflow.run_id"] == run.run_id
    assert promoted["reason"].startswith(f"v{version.version} approved by alice: gain is flat")
    assert mailbox.matching("gate: approval waiting", f"{MODEL} v{version.version} waits for a person")
    assert mailbox.matching("gate: new champion", f"v{version.version} approved by alice: gain is flat")


def test_a_person_rejects_a_borderline_challenger_and_the_champion_stays(gate):
    from airflow_mlops import approval_requests as approval
    from airflow_mlops.core import registry

    client = gate["client"]
    before = str(client.get_model_version_by_alias(MODEL, "champion").version)

    def reject(pending):
        with pytest.raises(approval.ApprovalNotFound):  # only approval requests are answered here
            approval.respond(
                dag_id=DAG_ID, run_id=pending["run_id"], task_id="evaluate", approve=True, user=_user("bob")
            )
        return approval.respond(
            dag_id=pending["dag_id"],
            run_id=pending["run_id"],
            approve=False,
            user=_user("bob"),
            comment="no gain: not worth a deploy",
        )

    run, answer, [pending] = _run_while(gate, reject, 2)

    states = task_states(run)
    assert states["record_rejection"] == "success" and states["deploy"] == "skipped"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == before
    tags = client.get_model_version(MODEL, pending["version"]).tags
    assert tags["approval.decision"] == "rejected" and tags["approval.by"] == "bob" and tags["decision"] == "REJECT"
    assert tags["approval.comment"] == "no gain: not worth a deploy"
    entry = registry.history(client, MODEL)[-1]
    assert entry["action"] == "reject" and entry["version"] == pending["version"] and entry["by"] == "airflow-user:bob"
    assert entry["reason"] == f"v{pending['version']} rejected by bob: no gain: not worth a deploy"
    assert entry["alias"] is None and entry["to"] is None
    with pytest.raises(approval.ApprovalAlreadyDecided):  # the first answer stands
        approval.respond(dag_id=DAG_ID, run_id=run.run_id, approve=True, user=_user("carol"))


def test_no_answer_in_time_is_a_reject_with_that_reason(gate):
    """The timeout is the scheduler's: dag.test() has no scheduler, so the test runs its sweep once the time is up."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    from airflow_mlops.core import registry

    client = gate["client"]
    before = str(client.get_model_version_by_alias(MODEL, "champion").version)

    def let_it_time_out(pending):
        assert pending["evidence"]["timeout_hours"] == 0.0005
        time.sleep(2.5)  # 0.0005 h = 1.8 s
        SchedulerJobRunner(job=Job(), executors=[]).check_awaiting_input_timeouts()
        return None

    run, _, [pending] = _run_while(gate, let_it_time_out, 3, config="gate_quick")

    states = task_states(run)
    assert states["record_rejection"] == "success" and states["deploy"] == "skipped"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == before
    tags = client.get_model_version(MODEL, pending["version"]).tags
    assert tags["approval.decision"] == "timed_out" and "approval.by" not in tags
    assert tags["approval.reason"] == f"no approval within 0.0005 h: v{pending['version']} rejected, the champion stays"
    entry = registry.history(client, MODEL)[-1]
    assert (
        entry["action"] == "reject" and entry["by"] == "approval-timeout" and entry["reason"] == tags["approval.reason"]
    )
