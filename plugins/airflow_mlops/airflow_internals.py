"""Every use of an Airflow internal (a name Airflow does not document as public), in one place.

Each wrapper says what it uses and why no public API does the job in Airflow 3.3. The rest of the
package calls these functions and imports only public Airflow names (`airflow.sdk`, the providers'
operators and hooks, `airflow.configuration.conf`, the auth manager's user and `get_user` dependency).
tests/unit/test_airflow_internals.py exercises each wrapper against the installed Airflow, so an
upgrade that changes an internal fails there, by name, instead of in a running approval.

Airflow is imported inside the functions: the plugin imports this package in every Airflow process,
and operators/base.py imports this module at every DAG parse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NoReturn

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Collection

    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser


#: An HTTP method as the auth manager's checks take it.
Method = Literal["GET", "POST", "PUT", "DELETE"]


class HITLResponseRefused(Exception):
    """Airflow's HITL response route refused an answer: `status_code` is its HTTP status, `detail` its reason."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


# --------------------------------------------------------------------------- DAG parsing


def share_operator_serialized_fields() -> None:
    """Compute `BaseOperator.get_serialized_fields()` once, on BaseOperator, so every operator class inherits it.

    Uses: the classmethod's cache (a private class attribute set on the class asked, read through
    inheritance). Serializing a DAG asks each operator class; the answer is the same for every class
    (the attributes of a bare BaseOperator) but Airflow computes it per class by building a BaseOperator.
    Asked once of BaseOperator, one computation per DAG parse instead of one per class (measured).
    No public API: Airflow offers no way to share or precompute it.
    """
    from airflow.sdk import BaseOperator

    BaseOperator.get_serialized_fields()


# --------------------------------------------------------------------------- extra links (in the worker)


def xcom_value(ti_key: Any, key: str) -> Any:
    """The XCom `key` of the task instance `ti_key`, through the configured XCom backend; None when absent.

    Uses: `airflow.sdk.execution_time.xcom.XCom`, the backend `[core] xcom_backend` resolves to, as the
    standard provider's extra links read it. The public `airflow.sdk.BaseXCom.get_value` reads the same
    rows but ignores a custom backend (one that keeps values in a bucket would return its reference).
    """
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_value(ti_key=ti_key, key=key)


# --------------------------------------------------------------------------- asking a person (inside a task)


def write_hitl_request(
    *,
    ti_id: Any,
    options: list[str],
    subject: str,
    body: str,
    defaults: list[str],
    params: dict[str, Any],
) -> None:
    """Write the HITL request (one choice of `options`, `params` to fill in) of the running task instance.

    Uses: `airflow.sdk.execution_time.hitl.upsert_hitl_detail`, exactly as the standard provider's
    HITLOperator / HITLBranchOperator do. The public way is to be one of those operators; the promotion
    branch asks only when the verdict needs a person, and importing the provider's HITL module costs
    every parse of the DAG file 3-8 ms. `defaults` is the answer when nobody answers in time.
    """
    from airflow.sdk.execution_time.hitl import upsert_hitl_detail

    upsert_hitl_detail(
        ti_id=ti_id, options=options, subject=subject, body=body, defaults=defaults, multiple=False, params=params
    )


def await_input(*, method_name: str, timeout: dt.timedelta) -> NoReturn:
    """Park the running task in the awaiting-input state; Airflow resumes it in `method_name` with the answer
    (or with a timeout event after `timeout`).

    Uses: `airflow.sdk.exceptions.TaskAwaitingInput`, raised as the provider's HITL operators raise it
    (Airflow documents the HITL operators, not this exception). Call `write_hitl_request` first.
    """
    from airflow.sdk.exceptions import TaskAwaitingInput

    raise TaskAwaitingInput(method_name=method_name, timeout=timeout)


# --------------------------------------------------------------------------- HITL requests (in the API server)


def pending_hitl_requests(operator: str, dag_ids: Collection[str] | None, xcom_key: str) -> list[dict[str, Any]]:
    """The HITL requests nobody answered yet of tasks of type `operator`, oldest first, each with its XCom `xcom_key`.

    Each: {dag_id, run_id, task_id, map_index, created_at, timeout_at, subject, body, xcom}.
    Uses: Airflow's metadata models (TaskInstance, HITLDetail, XComModel) and `create_session`. The public
    REST API lists HITL details (GET /api/v2/dags/~/dagRuns/~/hitlDetails) but only with a user's token
    over HTTP; this runs inside the API server with a `BaseUser`, and in tests without a server.
    """
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    query = (
        select(TaskInstance, HITLDetail)
        .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
        .where(
            TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
            TaskInstance.operator == operator,
            HITLDetail.responded_at.is_(None),
        )
        .order_by(HITLDetail.created_at)
    )
    if dag_ids is not None:
        query = query.where(TaskInstance.dag_id.in_(list(dag_ids)))
    out = []
    with create_session() as session:
        for ti, detail in session.execute(query).all():
            row = session.scalar(
                XComModel.get_many(
                    run_id=ti.run_id, key=xcom_key, dag_ids=ti.dag_id, task_ids=ti.task_id, map_indexes=ti.map_index
                )
            )
            out.append(
                {
                    "dag_id": ti.dag_id,
                    "run_id": ti.run_id,
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "created_at": detail.created_at,
                    "timeout_at": ti.trigger_timeout,
                    "subject": detail.subject,
                    "body": detail.body,
                    "xcom": XComModel.deserialize_value(row) if row is not None else None,
                }
            )
    return out


def task_operator(dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The operator class name of one task instance, None when there is no such task instance.

    Uses: the TaskInstance model and `create_session`. Public alternative: GET .../taskInstances/{task_id}
    of the REST API, with a user's token over HTTP (see `pending_hitl_requests`).
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(
            select(TaskInstance.operator).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        )


def answer_hitl(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    chosen: list[str],
    params_input: dict[str, Any],
    user: BaseUser,
) -> tuple[str, dt.datetime | None]:
    """Answer a waiting HITL request as `user`, through the core API's own PATCH .../hitlDetails route function.

    Returns (who answered, when). Raises HITLResponseRefused with the route's status (404 no request,
    409 already answered, 400 a bad answer). Uses: the route function
    `airflow.api_fastapi.core_api.routes.public.hitl.update_hitl_detail` and its payload model, called
    in-process with a DB session; the route checks nothing about the user (its access dependency does:
    the caller checks `dag_authorized(..., hitl=True)` first). Public alternative: the same PATCH over
    HTTP with the user's token, which this in-process caller (a `BaseUser`, no token) does not have.
    """
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session
    from fastapi import HTTPException

    payload = UpdateHITLDetailPayload(chosen_options=chosen, params_input=params_input)
    try:
        with create_session() as session:
            result = update_hitl_detail(
                dag_id=dag_id,
                dag_run_id=run_id,
                task_id=task_id,
                update_hitl_detail_payload=payload,
                user=user,
                session=session,
                map_index=map_index,
            )
    except HTTPException as exc:
        raise HITLResponseRefused(exc.status_code, str(exc.detail)) from None
    return result.responded_by.name, result.responded_at


# --------------------------------------------------------------------------- the auth manager and DAG metadata


def dag_authorized(user: BaseUser, method: Method, dag_ids: list[str], *, hitl: bool = False) -> list[bool]:
    """For each of `dag_ids` (one check on all DAGs when empty): may `user` do `method` on it (on its HITL
    details with `hitl`)? Asks the configured auth manager, with each DAG's team.

    Uses: `airflow.api_fastapi.app.create_auth_manager` (the API server's auth manager singleton),
    `DagDetails` / `DagAccessEntity` and `DagModel`'s team lookup. The auth manager's
    `is_authorized_dag` is its documented interface; how a plugin reaches the instance and a DAG's
    team is not (the core API's `requires_access_dag` does the same, as a route dependency).
    """
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    manager = create_auth_manager()
    entity = DagAccessEntity.HITL_DETAIL if hitl else None
    if not dag_ids:
        return [
            bool(manager.is_authorized_dag(method=method, access_entity=entity, details=DagDetails(id=None), user=user))
        ]
    teams = DagModel.get_dag_id_to_team_name_mapping(dag_ids)
    return [
        bool(
            manager.is_authorized_dag(
                method=method, access_entity=entity, details=DagDetails(id=d, team_name=teams.get(d)), user=user
            )
        )
        for d in dag_ids
    ]


def dags_tagged(*tags: str) -> list[str]:
    """The DAG ids (sorted) that carry every one of `tags`, from Airflow's metadata DB.

    Uses: the DagTag model and `create_session`. Public alternative: GET /api/v2/dags?tags=..., over HTTP
    with a user's token (see `pending_hitl_requests`).
    """
    from airflow.models.dag import DagTag
    from airflow.utils.session import create_session
    from sqlalchemy import select

    found: set[str] | None = None
    with create_session() as session:
        for tag in tags:
            ids = set(session.scalars(select(DagTag.dag_id).where(DagTag.name == tag)).all())
            found = ids if found is None else found & ids
    return sorted(found or ())


def login_url(next_url: str) -> str | None:
    """Where the auth manager logs a person in (then back to `next_url`); None when it cannot say.

    Uses: `airflow.api_fastapi.app.get_auth_manager` to reach the auth manager; `get_url_login` is its
    documented interface.
    """
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return get_auth_manager().get_url_login(next_url=next_url)
    except Exception:
        return None


def api_secret_key() -> str:
    """The API server's `[api] secret_key` (made and stored when unset, as the API server does).

    Uses: `airflow.api_fastapi.auth.tokens.get_signing_key`. Public alternative: `conf.get("api",
    "secret_key")`, which does not make the key when it is unset (the API server's behaviour).
    """
    from airflow.api_fastapi.auth.tokens import get_signing_key

    return get_signing_key("api", "secret_key")


def audit_log(event: str) -> Callable[..., Any]:
    """A FastAPI dependency that records the request in Airflow's audit log (table `log`) as `event`, with the user.

    Uses: `airflow.api_fastapi.logging.decorators.action_logging`, the dependency the core API's routes use.
    No public API writes the audit log from a plugin.
    """
    from airflow.api_fastapi.logging.decorators import action_logging

    return action_logging(event=event)
