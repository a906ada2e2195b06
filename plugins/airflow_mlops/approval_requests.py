"""The promotions waiting for a person in Airflow (human-in-the-loop requests of the retrain DAG's `branch`).

What the Models page calls:

- `pending_approvals()`: the promotions waiting for a person, with their evidence;
- `respond(...)`: approve or reject one as an Airflow user, through Airflow's own HITL response
  route (the waiting task resumes, exactly as from the Required Actions page);
- `can_respond(user, dag_id)`: whether Airflow's auth manager lets the user answer.

The request's text and the record of the answer are plain Python, in `core.approval`; every Airflow
internal used here is wrapped in `airflow_internals` (which imports Airflow inside its functions).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_mlops import airflow_internals
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
    out = []
    for request in airflow_internals.pending_hitl_requests(APPROVAL_OPERATOR, dag_ids, "approval_request"):
        ev = request["xcom"] or {}
        if model is not None and ev.get("model_name") != model:
            continue
        out.append(
            {
                "model": ev.get("model_name"),
                "version": ev.get("challenger_version"),
                "champion_version": ev.get("champion_version"),
                "dag_id": request["dag_id"],
                "run_id": request["run_id"],
                "task_id": request["task_id"],
                "map_index": request["map_index"],
                "waiting_since": _iso(request["created_at"]),
                "timeout_at": _iso(request["timeout_at"]),
                "subject": request["subject"],
                "body": request["body"],
                "evidence": ev,
            }
        )
    return out


def respond(
    *,
    dag_id: str,
    run_id: str,
    approve: bool,
    user: Any,
    comment: str = "",
    task_id: str = APPROVAL_TASK_ID,
    map_index: int = -1,
    check_access: bool = True,
) -> dict[str, Any]:
    """Approve or reject a waiting promotion as `user` (an Airflow auth-manager user) with `comment`.

    Goes through Airflow's own HITL response route (the core API's PATCH .../hitlDetails): the
    answer and the user are written to the request and the waiting task resumes. With
    `check_access` the auth manager must allow the user to answer on `dag_id` (PUT on its HITL
    details, as the REST route requires). Returns {dag_id, run_id, task_id, chosen, by, at, comment}.
    Raises ApprovalNotFound (404), ApprovalAlreadyDecided (409), ApprovalForbidden (403), ApprovalError (400).
    """
    if check_access and not can_respond(user, dag_id):
        raise ApprovalForbidden(
            f"Airflow user {_user_name(user)!r} may not answer approval requests of DAG {dag_id!r} "
            f"(needs PUT on its HITL details)"
        )
    text = (comment or "").strip()
    if len(text) > COMMENT_LIMIT:
        raise ApprovalError(f"the comment is {len(text)} characters long; at most {COMMENT_LIMIT} are recorded")
    where = f"{dag_id} run {run_id} task {task_id}" + (f"[{map_index}]" if map_index != -1 else "")
    chosen = APPROVE if approve else REJECT
    _require_approval_task(dag_id, run_id, task_id, map_index, where)
    try:
        by, at = airflow_internals.answer_hitl(
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            chosen=[chosen],
            params_input={COMMENT: text},
            user=user,
        )
    except airflow_internals.HITLResponseRefused as exc:
        kind = {404: ApprovalNotFound, 409: ApprovalAlreadyDecided, 403: ApprovalForbidden}.get(
            exc.status_code, ApprovalError
        )
        raise kind(f"{where}: {exc.detail}") from None
    log.info("%s: %s by %s", where, chosen, by)
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "chosen": chosen,
        "by": by,
        "at": _iso(at),
        "comment": text,
    }


def can_respond(user: Any, dag_id: str) -> bool:
    """May `user` answer approval requests of `dag_id`? (Airflow's auth manager: PUT on the DAG's HITL details.)"""
    return airflow_internals.dag_authorized(user, "PUT", [dag_id], hitl=True)[0]


def _require_approval_task(dag_id: str, run_id: str, task_id: str, map_index: int, where: str) -> None:
    """Only approval requests are answered here (not any HITL task of any DAG)."""
    operator = airflow_internals.task_operator(dag_id, run_id, task_id, map_index)
    if operator is None:
        raise ApprovalNotFound(f"{where}: no such task instance")
    if operator != APPROVAL_OPERATOR:
        raise ApprovalNotFound(f"{where}: not a promotion approval request (task type {operator})")


def _user_name(user: Any) -> str:
    return str(user.get_name() or user.get_id())


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")
