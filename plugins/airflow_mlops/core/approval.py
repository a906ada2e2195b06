"""A person approves or rejects a promotion the gate found borderline (``evaluation.approval``).

The retrain DAG's `branch` task then waits in Airflow's awaiting-input state (Airflow's
HITLBranchOperator, see operators/approval.py) with the evidence in its request. This module holds
what is not Airflow's: the request's text, the record of the answer (version tags and the ledger),
and the small API the Models page calls:

- `pending_approvals()`: the promotions waiting for a person, with their evidence;
- `respond(...)`: approve or reject one as an Airflow user, through Airflow's own HITL response
  route (the waiting task resumes, exactly as from the Required Actions page).

Airflow is imported inside the functions that need it (the rest is plain Python).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import MlopsError

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from mlflow import MlflowClient

log = logging.getLogger(__name__)

APPROVE = "Approve"  # the request's options (the words of Airflow's ApprovalOperator)
REJECT = "Reject"
COMMENT = "comment"  # the request's one form field
#: The waiting task: the retrain DAG's branch, an approval-capable one (its task type).
APPROVAL_TASK_ID = "branch"
APPROVAL_OPERATOR = "PromotionApprovalOperator"
#: What the answer is recorded as (version tag `approval.decision`).
APPROVED, REJECTED, TIMED_OUT = "approved", "rejected", "timed_out"
COMMENT_LIMIT = 2000


class ApprovalError(MlopsError):
    """An answer that cannot be recorded; `status_code` is the HTTP status it maps to (400)."""

    status_code = 400


class ApprovalNotFound(ApprovalError):
    """No such waiting request (unknown run or task, or not an approval request)."""

    status_code = 404


class ApprovalAlreadyDecided(ApprovalError):
    """Someone answered first, or the request timed out: the first answer stands."""

    status_code = 409


class ApprovalForbidden(ApprovalError):
    """The Airflow user may not answer this request."""

    status_code = 403


# --------------------------------------------------------------------------- the request


def evidence(verdict: Mapping[str, Any], basis: Mapping[str, Any], *, timeout_hours: float) -> dict[str, Any]:
    """What a person needs to decide, small enough for XCom: the evaluate task's `verdict` dict and the
    evaluation's `basis` (EvaluationResult.to_dict())."""
    primary = basis.get("primary_metric")
    challenger, champion = basis.get("challenger") or {}, basis.get("champion") or {}
    boot = basis.get("bootstrap") or {}
    rails = []
    for metric, tolerance in (basis.get("guard_rails") or {}).items():
        a, b = challenger.get(metric), champion.get(metric)
        rails.append({"metric": metric, "challenger": a, "champion": b, "tolerance": tolerance})
    rows = basis.get("test_rows") or {}
    return {
        "model_name": verdict.get("model_name"),
        "challenger_version": verdict.get("challenger_version"),
        "champion_version": verdict.get("champion_version"),
        "decision": verdict.get("decision"),  # the gate's own
        "evaluation_run_id": verdict.get("evaluation_run_id"),
        "primary_metric": primary,
        "challenger": challenger.get(primary),
        "champion": champion.get(primary) if champion else None,
        "gain": boot.get("gain"),
        "ci_low": boot.get("low"),
        "ci_high": boot.get("high"),
        "confidence": boot.get("confidence"),
        "margin": basis.get("margin"),
        "guard_rails": rails,
        "test_rows": rows.get("test_rows", basis.get("n_rows")),
        "excluded_rows": rows.get("excluded_seen_by_champion"),
        "test_days": [rows.get("first_day"), rows.get("last_day")] if rows.get("first_day") else None,
        "why": list(verdict.get("approval_reasons") or []),
        "failed": [r.removeprefix("FAIL: ") for r in verdict.get("reasons") or [] if r.startswith("FAIL: ")],
        "timeout_hours": timeout_hours,
    }


def _num(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{value:.4f}"


def request_text(ev: Mapping[str, Any], links: Mapping[str, str]) -> tuple[str, str]:
    """The request's subject and Markdown body: the numbers both models were judged on, and where to look."""
    name, version, champion = ev.get("model_name"), ev.get("challenger_version"), ev.get("champion_version")
    subject = f"Promote {name} v{version} to champion? (now {'v' + str(champion) if champion else 'none'})"
    primary = ev.get("primary_metric")
    lines = [f"The gate said **{ev.get('decision')}**; a person decides because:", ""]
    lines += [f"- {w}" for w in ev.get("why") or []]
    lines += ["", f"| | challenger v{version} | champion {'v' + str(champion) if champion else '-'} |", "|---|---|---|",
              f"| {primary} (primary) | {_num(ev.get('challenger'))} | {_num(ev.get('champion'))} |"]
    for rail in ev.get("guard_rails") or []:
        lines.append(f"| {rail['metric']} (guard rail, tolerance {rail['tolerance']:g}) | {_num(rail['challenger'])} | "
                     f"{_num(rail['champion'])} |")
    lines.append("")
    if ev.get("gain") is not None:
        lines.append(f"- {primary} gain {_num(ev.get('gain'))}, {ev.get('confidence', 0):.0%} interval "
                     f"{_num(ev.get('ci_low'))} .. {_num(ev.get('ci_high'))} (paired bootstrap), margin {ev.get('margin', 0):g}")
    if ev.get("test_rows") is not None:
        days = ev.get("test_days")
        lines.append(f"- judged on {ev['test_rows']} test rows" + (f" ({days[0]} .. {days[1]})" if days else "")
                     + (f", {ev['excluded_rows']} excluded as the champion's" if ev.get("excluded_rows") else ""))
    lines += [f"- failed: {f}" for f in ev.get("failed") or []]
    lines += ["", f"**Approve** promotes v{version} (then the smoke test); **Reject** keeps the champion. "
                  f"No answer within {ev.get('timeout_hours'):g} h rejects. Your comment is recorded on the version "
                  f"and in the ledger.", ""]
    lines += [f"[{label}]({url})" for label, url in links.items()]
    return subject, "\n".join(lines)


# --------------------------------------------------------------------------- the answer


def outcome(
    ev: Mapping[str, Any], *, chosen: str | None, user: Mapping[str, Any] | None, at: dt.datetime | str | None,
    comment: str | None, timed_out: bool = False,
) -> dict[str, Any]:
    """The record of an answer (XCom `approval` of the branch, then version tags and ledger)."""
    when = at.isoformat(timespec="seconds") if isinstance(at, dt.datetime) else str(at or _now())
    version = ev.get("challenger_version")
    text = (comment or "").strip()[:COMMENT_LIMIT]
    if timed_out or chosen is None:
        hours = ev.get("timeout_hours")
        return {"decision": TIMED_OUT, "approved": False, "by": None, "by_id": None, "at": when, "comment": "",
                "reason": f"no approval within {hours:g} h: v{version} rejected, the champion stays"}
    approved = chosen == APPROVE
    by = str((user or {}).get("name") or (user or {}).get("id") or "unknown")
    verb = "approved" if approved else "rejected"
    return {
        "decision": APPROVED if approved else REJECTED, "approved": approved, "by": by,
        "by_id": str((user or {}).get("id") or ""), "at": when, "comment": text,
        "reason": f"v{version} {verb} by {by}" + (f": {text}" if text else " (no comment)"),
    }


def version_tags(record: Mapping[str, Any], gate_decision: str) -> dict[str, str]:
    """Tags for the challenger version: the answer, who, when, the comment; `decision` becomes the final one."""
    tags = {
        "approval.decision": str(record["decision"]),
        "approval.at": str(record["at"]),
        "approval.reason": str(record["reason"]),
        "decision.gate": gate_decision,
        "decision": ("PROMOTE" if gate_decision == "REJECT" else gate_decision) if record["approved"] else "REJECT",
    }
    if record.get("by"):
        tags["approval.by"] = str(record["by"])
        tags["approval.by_id"] = str(record.get("by_id") or "")
        tags["approval.comment"] = str(record.get("comment") or "")
    return tags


def actor(record: Mapping[str, Any], task_tags: Mapping[str, str]) -> dict[str, str]:
    """The ledger's actor: the Airflow user who answered (or the timeout), with the task that acted on it."""
    if record.get("by"):
        who = f"airflow-user:{record['by']}"
    else:
        who = "approval-timeout" if record["decision"] == TIMED_OUT else "airflow-mlops:no-approval-step"
    out = {**task_tags, "actor": who, "approval.decision": str(record["decision"]), "approval.at": str(record["at"])}
    if record.get("by"):
        out |= {"approval.by": str(record["by"]), "approval.by_id": str(record.get("by_id") or ""),
                "approval.comment": str(record.get("comment") or "")}
    return out


def tag_version(client: MlflowClient, name: str, version: str, record: Mapping[str, Any], gate_decision: str) -> None:
    for key, value in version_tags(record, gate_decision).items():
        client.set_model_version_tag(name, str(version), key, value[:5000])


def record_rejection(
    client: MlflowClient, name: str, version: str, record: Mapping[str, Any], *, gate_decision: str,
    task_tags: Mapping[str, str],
) -> dict:
    """A rejection by a person or by the timeout: on the version's tags and in the ledger. Returns the ledger entry."""
    from airflow_mlops.core import registry

    tag_version(client, name, version, record, gate_decision)
    return registry.record_decision(
        client, name, version, action="reject", actor=actor(record, task_tags), reason=str(record["reason"])
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- Airflow: pending requests, answers


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
