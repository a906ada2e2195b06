"""Every run records what started it: the schedule, a person, or a drift retrain request."""

from __future__ import annotations

from types import SimpleNamespace

from airflow.sdk import Asset

from airflow_mlops.operators.base import run_trigger


def test_scheduled_and_manual_runs():
    assert run_trigger({"dag_run": SimpleNamespace(run_type="scheduled")}) == {"mlops.trigger": "schedule"}
    assert run_trigger({"dag_run": SimpleNamespace(run_type="manual")}) == {"mlops.trigger": "manual"}


def test_drift_retrain_request_carries_its_summary():
    request = Asset("mlops://churn/retrain-request")
    event = SimpleNamespace(extra={"summary": "drift in 4/7 features: monthly_charges, support_calls, ..."})
    context = {"dag_run": SimpleNamespace(run_type="asset_triggered"), "triggering_asset_events": {request: [event]}}

    tags = run_trigger(context)

    assert tags["mlops.trigger"] == "drift"
    assert tags["mlops.trigger.assets"] == "mlops://churn/retrain-request"
    assert tags["mlops.trigger.summary"].startswith("drift in 4/7 features")


def test_other_asset_trigger():
    event = SimpleNamespace(extra={})
    context = {
        "dag_run": SimpleNamespace(run_type="asset_triggered"),
        "triggering_asset_events": {Asset("s3://bucket/new-batch"): [event]},
    }
    assert run_trigger(context) == {"mlops.trigger": "asset", "mlops.trigger.assets": "s3://bucket/new-batch"}


def test_a_performance_retrain_request_records_its_reason():
    request = Asset("mlops://churn/retrain-request")
    decay = SimpleNamespace(extra={"trigger": "performance", "summary": "DECAY: churn_classifier v3 on 2026-04-12"})
    drift = SimpleNamespace(extra={"summary": "DRIFT: 4 of 7 features"})  # a drift request names no trigger
    context = {"dag_run": SimpleNamespace(run_type="asset_triggered"), "triggering_asset_events": {request: [decay]}}
    assert run_trigger(context)["mlops.trigger"] == "performance"
    context["triggering_asset_events"] = {request: [drift, decay]}
    assert run_trigger(context)["mlops.trigger"] == "drift+performance"
    context["triggering_asset_events"] = {request: [SimpleNamespace(extra={"trigger": "x; DROP TABLE"})]}
    assert run_trigger(context)["mlops.trigger"] == "drift"  # not a monitor's name: recorded as the default
