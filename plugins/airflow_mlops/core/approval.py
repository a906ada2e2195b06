"""A person approves or rejects a promotion the gate found borderline (``evaluation.approval``).

The retrain DAG's `branch` task (PromotionBranchOperator, operators/evaluation.py) then waits in Airflow's
human-in-the-loop awaiting-input state with the evidence in its request. This module holds
what is not Airflow's: the request's text and the record of the answer (version tags and the
ledger). Airflow's side (the waiting requests, answering one as an Airflow user) is
`airflow_mlops.approval_requests`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import MlopsError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlflow import MlflowClient

log = logging.getLogger(__name__)

APPROVE = "Approve"  # the request's options (the words of Airflow's ApprovalOperator)
REJECT = "Reject"
COMMENT = "comment"  # the request's one form field
#: The waiting task: the retrain DAG's branch (its task id and type).
APPROVAL_TASK_ID = "branch"
APPROVAL_OPERATOR = "PromotionBranchOperator"
#: What the answer is recorded as (version tag `approval.decision`); STALE: approved against a champion that has
#: since changed, so refused (nothing promoted).
APPROVED, REJECTED, TIMED_OUT, STALE = "approved", "rejected", "timed_out", "stale"
#: The ledger action of a refused stale approval.
STALE_ACTION = "stale_approval"
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


def number(value: Any) -> str:
    """A metric as the request shows it (4 decimals), or n/a."""
    return "n/a" if not isinstance(value, int | float) or isinstance(value, bool) else f"{value:.4f}"


def evidence_facts(ev: Mapping[str, Any]) -> list[str]:
    """The gain with its interval, and the rows it was judged on: the same words in the request and on the page."""
    primary = ev.get("primary_metric") or "primary metric"
    facts = []
    if ev.get("gain") is not None:
        confidence = ev.get("confidence")
        level = f"{confidence:.0%} " if isinstance(confidence, int | float) else ""
        facts.append(
            f"{primary} gain {number(ev.get('gain'))}, {level}interval {number(ev.get('ci_low'))} .. "
            f"{number(ev.get('ci_high'))} (paired bootstrap), margin {ev.get('margin', 0):g}"
        )
    if ev.get("test_rows") is not None:
        days = ev.get("test_days")
        facts.append(
            f"judged on {ev['test_rows']} test rows"
            + (f" ({days[0]} .. {days[1]})" if days else "")
            + (f", {ev['excluded_rows']} excluded as the champion's" if ev.get("excluded_rows") else "")
        )
    return facts


def request_text(ev: Mapping[str, Any], links: Mapping[str, str]) -> tuple[str, str]:
    """The request's subject and Markdown body: the numbers both models were judged on, and where to look."""
    name, version, champion = ev.get("model_name"), ev.get("challenger_version"), ev.get("champion_version")
    subject = f"Promote {name} v{version} to champion? (now {'v' + str(champion) if champion else 'none'})"
    primary = ev.get("primary_metric")
    lines = [f"The gate said **{ev.get('decision')}**; a person decides because:", ""]
    lines += [f"- {w}" for w in ev.get("why") or []]
    lines += [
        "",
        f"| | challenger v{version} | champion {'v' + str(champion) if champion else '-'} |",
        "|---|---|---|",
        f"| {primary} (primary) | {number(ev.get('challenger'))} | {number(ev.get('champion'))} |",
    ]
    for rail in ev.get("guard_rails") or []:
        lines.append(
            f"| {rail['metric']} (guard rail, tolerance {rail['tolerance']:g}) | {number(rail['challenger'])} | "
            f"{number(rail['champion'])} |"
        )
    lines.append("")
    lines += [f"- {fact}" for fact in evidence_facts(ev)]
    lines += [f"- failed: {f}" for f in ev.get("failed") or []]
    lines += [
        "",
        f"**Approve** promotes v{version} (then the smoke test); **Reject** keeps the champion. "
        f"No answer within {ev.get('timeout_hours'):g} h rejects. Your comment is recorded on the version "
        f"and in the ledger.",
        "",
    ]
    lines += [f"[{label}]({url})" for label, url in links.items()]
    return subject, "\n".join(lines)


# --------------------------------------------------------------------------- the answer


def outcome(
    ev: Mapping[str, Any],
    *,
    chosen: str | None,
    user: Mapping[str, Any] | None,
    at: dt.datetime | str | None,
    comment: str | None,
    timed_out: bool = False,
) -> dict[str, Any]:
    """The record of an answer (XCom `approval` of the branch, then version tags and ledger)."""
    when = at.isoformat(timespec="seconds") if isinstance(at, dt.datetime) else str(at or _now())
    version = ev.get("challenger_version")
    text = (comment or "").strip()[:COMMENT_LIMIT]
    if timed_out or chosen is None:
        hours = ev.get("timeout_hours")
        return {
            "decision": TIMED_OUT,
            "approved": False,
            "by": None,
            "by_id": None,
            "at": when,
            "comment": "",
            "reason": f"no approval within {hours:g} h: v{version} rejected, the champion stays",
        }
    approved = chosen == APPROVE
    by = str((user or {}).get("name") or (user or {}).get("id") or "unknown")
    verb = "approved" if approved else "rejected"
    return {
        "decision": APPROVED if approved else REJECTED,
        "approved": approved,
        "by": by,
        "by_id": str((user or {}).get("id") or ""),
        "at": when,
        "comment": text,
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
        out |= {
            "approval.by": str(record["by"]),
            "approval.by_id": str(record.get("by_id") or ""),
            "approval.comment": str(record.get("comment") or ""),
            "user.id": str(record.get("by_id") or ""),
            "user.name": str(record["by"]),
        }
    return out


def tag_version(client: MlflowClient, name: str, version: str, record: Mapping[str, Any], gate_decision: str) -> None:
    for key, value in version_tags(record, gate_decision).items():
        client.set_model_version_tag(name, str(version), key, value[:5000])


def stale(record: Mapping[str, Any], version: str, *, expected: str | None, found: str | None) -> dict[str, Any]:
    """The record of an approval refused because the champion is no longer the one the evaluation was judged
    against: `decision` STALE, not approved, and why."""

    def text(v: str | None) -> str:
        return f"v{v}" if v else "no champion"

    reason = (
        f"v{version} approved by {record.get('by') or 'unknown'} against champion {text(expected)}, but the "
        f"champion is now {text(found)}: stale approval, nothing promoted. Evaluate v{version} against the "
        f"current champion again (a new retrain run)"
    )
    comment = str(record.get("comment") or "")
    return {
        **record,
        "decision": STALE,
        "approved": False,
        "expected_champion": expected,
        "found_champion": found,
        "reason": reason + (f". Their comment: {comment}" if comment else ""),
    }


def record_stale(
    client: MlflowClient,
    name: str,
    version: str,
    record: Mapping[str, Any],
    *,
    gate_decision: str,
    task_tags: Mapping[str, str],
) -> dict:
    """A stale approval (`stale()`'s record): the version's tags say `approval.decision=stale` (and `decision`
    REJECT, never PROMOTE), and the ledger has an entry with who, when, the champion expected and found."""
    from airflow_mlops.core import registry

    expected, found = record.get("expected_champion"), record.get("found_champion")
    tags = version_tags(record, gate_decision) | {
        "approval.expected_champion": str(expected or ""),
        "approval.found_champion": str(found or ""),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value[:5000])
    return registry.record_decision(
        client,
        name,
        version,
        action=STALE_ACTION,
        actor=actor(record, task_tags),
        reason=str(record["reason"]),
        details={"expected_champion": expected, "found_champion": found},
    )


def refuse_if_stale(
    client: MlflowClient,
    name: str,
    ev: Mapping[str, Any],
    *,
    user: Mapping[str, Any],
    comment: str | None,
    task_tags: Mapping[str, str],
) -> dict | None:
    """Before a person's approval is passed on: when `name`'s champion is no longer the one the request `ev` was
    judged against, record the stale approval (`record_stale`) and return its record; None when it is current.

    Not a lock: the deploy's compare-and-swap still refuses a champion that moves after this check.
    """
    from airflow_mlops.core import registry

    version = str(ev.get("challenger_version"))
    champion = ev.get("champion_version")
    expected = None if champion is None or str(champion).strip() in ("", "None") else str(champion).strip()
    found = registry.read_aliases(client, name)[registry.CHAMPION]
    if found == expected:
        return None
    record = stale(
        outcome(ev, chosen=APPROVE, user=user, at=None, comment=comment), version, expected=expected, found=found
    )
    record_stale(client, name, version, record, gate_decision=str(ev.get("decision")), task_tags=task_tags)
    return record


def record_rejection(
    client: MlflowClient,
    name: str,
    version: str,
    record: Mapping[str, Any],
    *,
    gate_decision: str,
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
