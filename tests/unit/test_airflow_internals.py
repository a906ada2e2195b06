"""Each wrapper of airflow_internals against the installed Airflow: an upgrade that changes an internal fails here.

One real dag.test() run (a DAG tagged TAGS) parks a task with `write_hitl_request` + `await_input`; another thread finds it with
`pending_hitl_requests` and answers it with `answer_hitl`, and the task resumes with the answer.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest

from airflow_mlops import airflow_internals as internals

DAG_ID = "airflow_internals_probe"
TAGS = ("airflow-internals-probe", "mlops-probe-2")


def _user(name: str, role: str = "user"):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return SimpleAuthManagerUser(username=name, role=role)


def test_serialized_fields_asked_once_of_base_operator_are_inherited_by_every_operator_class():
    from airflow.sdk import BaseOperator

    internals.share_operator_serialized_fields()

    class Fresh(BaseOperator):
        pass

    fields = Fresh.get_serialized_fields()
    assert fields is BaseOperator.get_serialized_fields()  # inherited from BaseOperator, not computed for Fresh
    assert "task_id" in fields


PROBE_DAG = f"""
import datetime as dt

from airflow.sdk import DAG, BaseOperator

from airflow_mlops import airflow_internals as internals
from airflow_mlops.links import MlflowModelVersionLink, MlflowRunLink


class ProbeApprovalOperator(BaseOperator):
    def execute(self, context):
        internals.write_hitl_request(ti_id=context["task_instance"].id, options=["Yes", "No"], subject="Go?",
                                     body="Probe", defaults=["No"], params={{}})
        context["ti"].xcom_push(key="probe_request", value={{"asked": True}})
        internals.await_input(method_name="execute_complete", timeout=dt.timedelta(hours=1))

    def execute_complete(self, context, event):
        return event.get("chosen_options")


class ProbeLinkedOperator(BaseOperator):
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())

    def execute(self, context):
        for key, value in {{"mlflow_run_id": "r1", "mlflow_experiment_id": "2", "model_name": "churn",
                           "model_version": "5"}}.items():
            context["ti"].xcom_push(key=key, value=value)


with DAG({DAG_ID!r}, schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tags={list(TAGS)!r}) as dag:
    ProbeApprovalOperator(task_id="ask")
    ProbeLinkedOperator(task_id="linked")
"""


@pytest.fixture(scope="module")
def probe_dag(airflow_db, tmp_path_factory):
    """A one-task DAG (from a file, as dag.test() needs) whose task asks a person with the wrappers."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    path = tmp_path_factory.mktemp("internals") / "probe_dag.py"
    path.write_text(PROBE_DAG)
    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)  # dag.test() runs only serialized DAGs of a configured bundle
    return bag.get_dag(DAG_ID)


def test_a_task_asks_waits_is_listed_answered_and_resumes_with_the_answer(probe_dag):
    seen: dict[str, Any] = {}

    def answer_when_waiting() -> None:
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                pending = internals.pending_hitl_requests("ProbeApprovalOperator", [DAG_ID], "probe_request")
                if pending:
                    [request] = pending
                    seen["request"] = request
                    seen["operator"] = internals.task_operator(DAG_ID, request["run_id"], "ask", -1)
                    seen["by"], seen["at"] = internals.answer_hitl(
                        dag_id=DAG_ID,
                        run_id=request["run_id"],
                        task_id="ask",
                        map_index=-1,
                        chosen=["Yes"],
                        params_input={},
                        user=_user("alice"),
                    )
                    try:
                        internals.answer_hitl(
                            dag_id=DAG_ID,
                            run_id=request["run_id"],
                            task_id="ask",
                            map_index=-1,
                            chosen=["No"],
                            params_input={},
                            user=_user("bob"),
                        )
                    except internals.HITLResponseRefused as exc:
                        seen["again"] = exc.status_code
                    return
                time.sleep(0.3)
            seen["error"] = "the task never waited for input"
        except BaseException as exc:  # surfaced by the test
            seen["error"] = repr(exc)
            _fail_waiting_tasks()

    thread = threading.Thread(target=answer_when_waiting, daemon=True)
    thread.start()
    run = probe_dag.test()
    thread.join(timeout=30)
    assert "error" not in seen, seen["error"]
    assert "request" in seen, (
        f"the task did not wait for input: {[(t.task_id, t.state) for t in run.get_task_instances()]}"
    )

    request = seen["request"]
    assert (request["dag_id"], request["task_id"], request["map_index"]) == (DAG_ID, "ask", -1)
    assert (request["subject"], request["body"], request["xcom"]) == ("Go?", "Probe", {"asked": True})
    assert isinstance(request["created_at"], dt.datetime) and isinstance(request["timeout_at"], dt.datetime)
    assert seen["operator"] == "ProbeApprovalOperator"
    assert seen["by"] == "alice" and isinstance(seen["at"], dt.datetime)
    assert seen["again"] == 409  # already answered
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {"ask": "success", "linked": "success"}
    assert internals.pending_hitl_requests("ProbeApprovalOperator", [DAG_ID], "probe_request") == []
    assert internals.dags_tagged(*TAGS) == [DAG_ID]  # the run wrote the DAG and its tags
    assert internals.dags_tagged(TAGS[0], "a-tag-nobody-uses") == []

    # The worker computed each extra link from the task's XComs through `xcom_value`, and stored it.
    assert _stored_links(run.run_id, "linked") == {
        "_link_MlflowRunLink": "http://localhost:5000/#/experiments/2/runs/r1",
        "_link_MlflowModelVersionLink": "http://localhost:5000/#/models/churn/versions/5",
    }


def test_answering_a_task_that_never_asked_is_refused_with_404(airflow_db):
    with pytest.raises(internals.HITLResponseRefused) as refused:
        internals.answer_hitl(
            dag_id="no_such_dag",
            run_id="no_run",
            task_id="ask",
            map_index=-1,
            chosen=["Yes"],
            params_input={},
            user=_user("alice"),
        )
    assert refused.value.status_code == 404
    assert internals.task_operator("no_such_dag", "no_run", "ask", -1) is None


def test_the_auth_manager_answers_per_dag_and_method(airflow_db):
    viewer, admin = _user("vera", role="viewer"), _user("ada", role="admin")
    assert internals.dag_authorized(viewer, "GET", [DAG_ID, "other"]) == [True, True]
    assert internals.dag_authorized(viewer, "PUT", [DAG_ID], hitl=True) == [False]
    assert internals.dag_authorized(admin, "PUT", [], hitl=True) == [True]
    login = internals.login_url("http://localhost/mlops/models")
    assert login is not None and "login" in login


def test_the_api_secret_key_is_one_stable_string(airflow_db):
    key = internals.api_secret_key()
    assert isinstance(key, str) and key and internals.api_secret_key() == key


def test_the_audit_log_dependency_writes_airflows_log_table(airflow_db):
    from airflow.api_fastapi.core_api.security import get_user
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    app = FastAPI()

    @app.post("/act", dependencies=[Depends(internals.audit_log("mlops.internals_probe"))])
    def act() -> dict:
        return {}

    app.dependency_overrides[get_user] = lambda: _user("ada", role="admin")
    assert TestClient(app).post("/act", json={"reason": "probe"}).status_code == 200
    with create_session() as session:
        events = session.scalars(select(Log.owner).where(Log.event == "mlops.internals_probe")).all()
    assert events == ["ada"]


def _stored_links(run_id: str, task_id: str) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == DAG_ID,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key.like("_link_%"),
            )
        ).all()
        return {row.key: XComModel.deserialize_value(row) for row in rows}


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


#: Airflow modules the package may import outside airflow_internals.py: the Task SDK, the providers, the
#: configuration, trigger bases, and the auth dependencies the plugin docs describe (the user and `get_user`).
PUBLIC_AIRFLOW = (
    "airflow.sdk",
    "airflow.providers.",
    "airflow.configuration",
    "airflow.triggers.base",
    "airflow.api_fastapi.auth.managers.models.base_user",
    "airflow.api_fastapi.core_api.security",
)
INTERNAL_AIRFLOW = ("airflow.sdk.execution_time", "airflow.sdk.definitions", "airflow.sdk._")


def test_no_module_but_airflow_internals_imports_an_airflow_internal():
    import ast
    from pathlib import Path

    package = Path(internals.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "airflow_internals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                if name != "airflow" and not name.startswith("airflow."):
                    continue
                public = name.startswith(PUBLIC_AIRFLOW) and not name.startswith(INTERNAL_AIRFLOW)
                where = str(path.relative_to(package))
                if not public:
                    found.append(f"{where}:{node.lineno} imports {name}")
    assert found == [], "use airflow_internals (or a public Airflow API) instead:\n" + "\n".join(found)
