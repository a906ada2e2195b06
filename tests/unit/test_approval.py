"""evaluation.approval: the config, the borderline rule on both sides of each boundary, the verdict it gives,
the request's text and the record of an answer (plain Python; the DAG run is tests/dags/test_approval_run.py)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import yaml
from conftest import CHURN_CONFIG

from airflow_mlops.core import approval
from airflow_mlops.core.config import ApprovalConfig, load_config
from airflow_mlops.core.errors import ConfigError
from airflow_mlops.core.evaluation import PROMOTE, REJECT, BootstrapResult, decide
from airflow_mlops.core.evaluation.borderline import GateNumbers, approval_reasons

# churn.yaml: margin 0.005, guard rails accuracy 0.02 / log_loss 0.03, floors roc_auc 0.65 / log_loss 0.70
CHAMPION = {"roc_auc": 0.82, "accuracy": 0.79, "f1": 0.58, "log_loss": 0.47}
BETTER = {"roc_auc": 0.85, "accuracy": 0.80, "f1": 0.60, "log_loss": 0.45}


def boot(diff, low, high):
    return BootstrapResult(diff, low, high, np.linspace(low, high, 101), metric="roc_auc", confidence=0.95)


def rails(challenger, champion, spread=0.005):
    """Intervals of the guard rails' gains (churn.yaml: accuracy, log_loss) around the point gains."""
    out = {}
    for m in ("accuracy", "log_loss"):
        gain = champion[m] - challenger[m] if m == "log_loss" else challenger[m] - champion[m]
        out[m] = BootstrapResult(
            gain,
            gain - spread,
            gain + spread,
            np.linspace(gain - spread, gain + spread, 101),
            metric=m,
            confidence=0.95,
        )
    return out


def with_approval(config, mode="borderline", band=0.005, timeout_hours=24.0):
    ap = ApprovalConfig(mode=mode, band=band, timeout_hours=timeout_hours)
    return config._replace(evaluation=config.evaluation._replace(approval=ap))


# --------------------------------------------------------------------------- config


@pytest.fixture
def raw():
    return yaml.safe_load(CHURN_CONFIG.read_text())


def load(tmp_path, raw):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_approval_defaults_to_never_and_takes_a_mode_or_a_mapping(churn_config, tmp_path, raw):
    assert churn_config.evaluation.approval == ApprovalConfig(mode="never", band=0.005, timeout_hours=24.0)
    raw["evaluation"]["approval"] = "borderline"
    assert load(tmp_path, raw).evaluation.approval == ApprovalConfig(mode="borderline")
    raw["evaluation"]["approval"] = {"mode": "always", "band": 0.01, "timeout_hours": 4}
    assert load(tmp_path, raw).evaluation.approval == ApprovalConfig(mode="always", band=0.01, timeout_hours=4.0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sometimes", r"evaluation\.approval: 'sometimes' is not one of never, borderline, always"),
        (True, r"evaluation\.approval: expected str or dict, got bool"),
        ({"mode": "maybe"}, r"evaluation\.approval\.mode: 'maybe' is not one of never, borderline, always"),
        ({"mode": "borderline", "band": -0.1}, r"evaluation\.approval\.band: must be >= 0"),
        ({"mode": "borderline", "timeout_hours": 0}, r"evaluation\.approval\.timeout_hours: must be > 0"),
        (
            {"mode": "borderline", "timeout": 3},
            r"evaluation\.approval: unknown key\(s\) 'timeout'; allowed: band, mode, "
            r"timeout_hours",
        ),
        ({"band": "wide"}, r"evaluation\.approval\.band: expected float, got str"),
    ],
)
def test_a_wrong_approval_names_the_file_and_the_key(tmp_path, raw, value, message):
    raw["evaluation"]["approval"] = value
    with pytest.raises(ConfigError, match=r"pipeline\.yaml: " + message):
        load(tmp_path, raw)


# --------------------------------------------------------------------------- the rule, both sides of each boundary


def numbers(*, low, gain=0.01, promote=None, rails=None, only_interval_failed=None, has_champion=True):
    promote = low > 0 if promote is None else promote
    only = (not promote) if only_interval_failed is None else only_interval_failed
    return GateNumbers(
        has_champion=has_champion,
        promote=promote,
        gain=gain,
        low=low,
        confidence=0.95,
        margin=0.005,
        rails=rails or {},
        only_interval_failed=only,
    )


BORDERLINE = ApprovalConfig(mode="borderline", band=0.005)


@pytest.mark.parametrize(
    ("low", "waits"),
    [
        (0.0051, False),  # clearly above the band: the gate promotes alone
        (0.005, True),  # on the band's edge: borderline
        (0.0001, True),
        (0.0, True),  # not above zero: the gate rejects, a person may approve
        (-0.005, True),  # at the band's edge below zero
        (-0.0051, False),  # clearly below: REJECT, nobody asked
    ],
)
def test_the_interval_is_borderline_within_the_band_either_side_of_zero(low, waits):
    why = approval_reasons(BORDERLINE, numbers(low=low), "roc_auc")
    assert bool(why) is waits
    if waits:
        assert f"{low:.4f}" in why[0] and "evaluation.approval.band 0.005" in why[0]


def test_below_zero_waits_only_when_the_margin_holds_and_nothing_else_failed():
    assert approval_reasons(BORDERLINE, numbers(low=-0.001, gain=0.0049), "roc_auc") == []  # point estimate < margin
    assert approval_reasons(BORDERLINE, numbers(low=-0.001, gain=0.005), "roc_auc")  # == margin passes it
    assert approval_reasons(BORDERLINE, numbers(low=-0.001, only_interval_failed=False), "roc_auc") == []


@pytest.mark.parametrize(("regression", "waits"), [(0.0159, False), (0.016, True), (0.02, True)])
def test_a_guard_rail_in_the_last_20_percent_of_its_tolerance_is_borderline(regression, waits):
    why = approval_reasons(BORDERLINE, numbers(low=0.02, rails={"accuracy": (regression, 0.02)}), "roc_auc")
    assert bool(why) is waits
    if waits:
        assert why == [
            f"guard rail accuracy may have regressed by up to {regression:.4f} (the upper bound of its "
            f"interval), {regression / 0.02:.0%} of its tolerance 0.02 (the last 20% is borderline)"
        ]


def test_never_asks_nobody_and_always_asks_for_every_promotion():
    never = ApprovalConfig(mode="never")
    always = ApprovalConfig(mode="always")
    for n in (numbers(low=0.001), numbers(low=-0.001), numbers(low=0.02, rails={"accuracy": (0.02, 0.02)})):
        assert approval_reasons(never, n, "roc_auc") == []
    assert approval_reasons(always, numbers(low=0.05), "roc_auc") == [
        "evaluation.approval is always: every promotion waits for a person"
    ]
    assert approval_reasons(always, GateNumbers(has_champion=False, promote=True), "roc_auc")  # a first model too
    assert approval_reasons(always, numbers(low=-0.001), "roc_auc")  # what borderline asks, always asks
    assert approval_reasons(always, numbers(low=-0.05), "roc_auc") == []  # a clear REJECT asks nobody
    assert approval_reasons(BORDERLINE, GateNumbers(has_champion=False, promote=True), "roc_auc") == []


# --------------------------------------------------------------------------- decide() carries it


def test_decide_marks_a_promotion_with_a_low_bound_within_the_band(churn_config):
    config = with_approval(churn_config)
    v = decide(config, BETTER, CHAMPION, boot(0.03, 0.004, 0.05), intervals=rails(BETTER, CHAMPION))
    assert v.decision == PROMOTE and v.promote and v.needs_approval
    assert v.approval_reasons == [
        "the lower bound of the 95% interval of the roc_auc gain, 0.0040, is within "
        "evaluation.approval.band 0.005 of zero"
    ]
    assert v.reasons[-1] == "APPROVAL: " + v.approval_reasons[0]
    clear = decide(config, BETTER, CHAMPION, boot(0.03, 0.006, 0.05), intervals=rails(BETTER, CHAMPION))
    assert clear.decision == PROMOTE and not clear.needs_approval and clear.approval_reasons == []


def test_decide_lets_a_person_approve_an_interval_just_below_zero_but_not_other_failures(churn_config):
    config = with_approval(churn_config)
    v = decide(config, BETTER, CHAMPION, boot(0.03, -0.002, 0.05), intervals=rails(BETTER, CHAMPION))
    assert v.decision == REJECT and not v.promote and v.needs_approval
    assert "the gate's REJECT waits for a person" in v.approval_reasons[0]
    floor_broken = {**BETTER, "log_loss": 0.71}  # also fails its floor (and its guard rail): no person can help
    assert not decide(
        config, floor_broken, CHAMPION, boot(0.03, -0.002, 0.05), intervals=rails(floor_broken, CHAMPION)
    ).needs_approval
    assert not decide(
        config, BETTER, CHAMPION, boot(0.03, -0.006, 0.05), intervals=rails(BETTER, CHAMPION)
    ).needs_approval


def test_decide_with_approval_never_is_the_gate_alone(churn_config):
    v = decide(churn_config, BETTER, CHAMPION, boot(0.03, 0.001, 0.05), intervals=rails(BETTER, CHAMPION))
    assert v.decision == PROMOTE and not v.needs_approval and not any(r.startswith("APPROVAL") for r in v.reasons)


def test_decide_marks_a_guard_rail_near_its_tolerance(churn_config):
    near = {**BETTER, "accuracy": CHAMPION["accuracy"] - 0.012}
    # the point regression is 0.012, the interval's upper bound 0.017: 85% of accuracy's 0.02 (the bound decides)
    v = decide(with_approval(churn_config), near, CHAMPION, boot(0.03, 0.02, 0.05), intervals=rails(near, CHAMPION))
    assert v.decision == PROMOTE and v.needs_approval
    assert "guard rail accuracy may have regressed by up to 0.0170" in v.approval_reasons[0]


# --------------------------------------------------------------------------- the request and the answer


EVIDENCE = {
    "model_name": "churn_classifier",
    "challenger_version": "7",
    "champion_version": "5",
    "decision": "PROMOTE",
    "evaluation_run_id": "abc123",
    "primary_metric": "roc_auc",
    "challenger": 0.85,
    "champion": 0.82,
    "gain": 0.03,
    "ci_low": 0.004,
    "ci_high": 0.05,
    "confidence": 0.95,
    "margin": 0.005,
    "guard_rails": [{"metric": "accuracy", "challenger": 0.80, "champion": 0.79, "tolerance": 0.02}],
    "test_rows": 600,
    "excluded_rows": 0,
    "test_days": ["2026-01-26", "2026-01-28"],
    "why": ["the lower bound ... within evaluation.approval.band 0.005 of zero"],
    "failed": [],
    "timeout_hours": 24.0,
}


def test_the_request_shows_the_evidence_and_where_to_look():
    subject, body = approval.request_text(EVIDENCE, {"MLflow evaluation run": "http://mlflow/#/runs/abc123"})
    assert subject == "Promote churn_classifier v7 to champion? (now v5)"
    assert "| roc_auc (primary) | 0.8500 | 0.8200 |" in body
    assert "| accuracy (guard rail, tolerance 0.02) | 0.8000 | 0.7900 |" in body
    assert "95% interval 0.0040 .. 0.0500" in body and "600 test rows (2026-01-26 .. 2026-01-28)" in body
    assert "No answer within 24 h rejects" in body and "[MLflow evaluation run](http://mlflow/#/runs/abc123)" in body


def test_an_answer_is_recorded_with_who_when_and_why():
    at = dt.datetime(2026, 2, 1, 9, 30, tzinfo=dt.UTC)
    yes = approval.outcome(EVIDENCE, chosen="Approve", user={"id": "7", "name": "alice"}, at=at, comment=" ok ")
    assert yes == {
        "decision": "approved",
        "approved": True,
        "by": "alice",
        "by_id": "7",
        "at": "2026-02-01T09:30:00+00:00",
        "comment": "ok",
        "reason": "v7 approved by alice: ok",
    }
    tags = approval.version_tags(yes, "PROMOTE")
    assert tags["approval.by"] == "alice" and tags["decision"] == "PROMOTE" and tags["decision.gate"] == "PROMOTE"
    assert approval.version_tags(yes, "REJECT")["decision"] == "PROMOTE"  # a person overrode the gate's REJECT
    actor = approval.actor(
        yes, {"airflow.dag_id": "churn_retrain", "airflow.run_id": "r1", "airflow.task_id": "deploy"}
    )
    assert actor["actor"] == "airflow-user:alice" and actor["airflow.run_id"] == "r1"
    no = approval.outcome(EVIDENCE, chosen="Reject", user={"id": "8", "name": "bob"}, at=at, comment=None)
    assert (
        no["reason"] == "v7 rejected by bob (no comment)"
        and approval.version_tags(no, "PROMOTE")["decision"] == "REJECT"
    )
    late = approval.outcome(EVIDENCE, chosen="Reject", user=None, at=at, comment=None, timed_out=True)
    assert late["decision"] == "timed_out" and late["by"] is None
    assert late["reason"] == "no approval within 24 h: v7 rejected, the champion stays"
    assert "approval.by" not in approval.version_tags(late, "PROMOTE")
    assert approval.actor(late, {})["actor"] == "approval-timeout"
