"""The promotions waiting for a person in Airflow (human-in-the-loop requests of the retrain DAG's `branch`).

What the Models page calls:

- `pending_approvals()`: the promotions waiting for a person, with their evidence;
- `respond(...)`: approve or reject one as an Airflow user, through Airflow's own HITL response
  route (the waiting task resumes, exactly as from the Required Actions page);
- `can_respond(user, dag_id)`: whether Airflow's auth manager lets the user answer.

The request's text and the record of the answer are plain Python, in `core.approval`. Airflow is
imported inside the functions (the plugin imports this package in every Airflow process).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.approval import (
    APPROVAL_OPERATOR,
    APPROVAL_TASK_ID,
    APPROVE,
    COMMENT,
    COMMENT_LIMIT,
    REJECT,
    ApprovalAlreadyDecided,
    ApprovalError,
    ApprovalForbidden,
    ApprovalNotFound,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Collection

log = logging.getLogger(__name__)

def pending_approvals(*, dag_ids: Collection[str] | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """The promotions waiting for a person, oldest first.

    Each: {model, version, champion_version, dag_id, run_id, task_id, map_index, waiting_since, timeout_at,
    subject, body, evidence}; `evidence` is `evidence()`'s dict (numbers, reasons, evaluation_run_id).
    Filter by `dag_ids` (e.g. the ones the user may see) and/or `model`.
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
        .where(TaskInstance.state == TaskInstanceState.AWAITING_INPUT, TaskInstance.operator == APPROVAL_OPERATOR,
               HITLDetail.responded_at.is_(None))
        .order_by(HITLDetail.created_at)
    )
    if dag_ids is not None:
        query = query.where(TaskInstance.dag_id.in_(list(dag_ids)))
    out = []
    with create_session() as session:
        for ti, detail in session.execute(query).all():
            row = session.scalar(XComModel.get_many(run_id=ti.run_id, key="approval_request", dag_ids=ti.dag_id,
                                                    task_ids=ti.task_id, map_indexes=ti.map_index))
            ev = (XComModel.deserialize_value(row) if row is not None else None) or {}
            if model is not None and ev.get("model_name") != model:
                continue
            out.append({
                "model": ev.get("model_name"), "version": ev.get("challenger_version"),
                "champion_version": ev.get("champion_version"),
                "dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "map_index": ti.map_index,
                "waiting_since": _iso(detail.created_at), "timeout_at": _iso(ti.trigger_timeout),
                "subject": detail.subject, "body": detail.body, "evidence": ev,
            })
    return out


def respond(
    *, dag_id: str, run_id: str, approve: bool, user: Any, comment: str = "", task_id: str = APPROVAL_TASK_ID,
    map_index: int = -1, check_access: bool = True,
) -> dict[str, Any]:
    """Approve or reject a waiting promotion as `user` (an Airflow auth-manager user) with `comment`.

    Goes through Airflow's own HITL response route (the core API's PATCH .../hitlDetails): the
    answer and the user are written to the request and the waiting task resumes. With
    `check_access` the auth manager must allow the user to answer on `dag_id` (PUT on its HITL
    details, as the REST route requires). Returns {dag_id, run_id, task_id, chosen, by, at, comment}.
    Raises ApprovalNotFound (404), ApprovalAlreadyDecided (409), ApprovalForbidden (403), ApprovalError (400).
    """
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session
    from fastapi import HTTPException

    if check_access and not can_respond(user, dag_id):
        raise ApprovalForbidden(f"Airflow user {_user_name(user)!r} may not answer approval requests of DAG {dag_id!r} "
                                f"(needs PUT on its HITL details)")
    text = (comment or "").strip()
    if len(text) > COMMENT_LIMIT:
        raise ApprovalError(f"the comment is {len(text)} characters long; at most {COMMENT_LIMIT} are recorded")
    where = f"{dag_id} run {run_id} task {task_id}" + (f"[{map_index}]" if map_index != -1 else "")
    payload = UpdateHITLDetailPayload(chosen_options=[APPROVE if approve else REJECT], params_input={COMMENT: text})
    try:
        with create_session() as session:
            _require_approval_task(session, dag_id, run_id, task_id, map_index, where)
            result = update_hitl_detail(
                dag_id=dag_id, dag_run_id=run_id, task_id=task_id, update_hitl_detail_payload=payload, user=user,
                session=session, map_index=map_index,
            )
    except HTTPException as exc:
        kind = {404: ApprovalNotFound, 409: ApprovalAlreadyDecided, 403: ApprovalForbidden}.get(exc.status_code,
                                                                                              ApprovalError)
        raise kind(f"{where}: {exc.detail}") from None
    log.info("%s: %s by %s", where, payload.chosen_options[0], result.responded_by.name)
    return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "chosen": payload.chosen_options[0],
            "by": result.responded_by.name, "at": _iso(result.responded_at), "comment": text}


def can_respond(user: Any, dag_id: str) -> bool:
    """May `user` answer approval requests of `dag_id`? (Airflow's auth manager: PUT on the DAG's HITL details.)"""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    details = DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id))
    return bool(create_auth_manager().is_authorized_dag(
        method="PUT", access_entity=DagAccessEntity.HITL_DETAIL, details=details, user=user,
    ))


def _require_approval_task(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int, where: str) -> None:
    """Only approval requests are answered here (not any HITL task of any DAG)."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    operator = session.scalar(select(TaskInstance.operator).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id,
        TaskInstance.map_index == map_index,
    ))
    if operator is None:
        raise ApprovalNotFound(f"{where}: no such task instance")
    if operator != APPROVAL_OPERATOR:
        raise ApprovalNotFound(f"{where}: not a promotion approval request (task type {operator})")


def _user_name(user: Any) -> str:
    return str(user.get_name() or user.get_id())


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")
