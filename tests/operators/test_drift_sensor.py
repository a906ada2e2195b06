"""DataWindowTrigger and DriftSensor: serializable trigger, deferral, resumption, debounce, evidence in MLflow."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import time
from types import SimpleNamespace

import pytest
from conftest import CHURN_CONFIG, churn_stream

from airflow_mlops.core.monitoring import should_request_retrain
from airflow_mlops.sensors.drift import DriftSensor
from airflow_mlops.triggers.data_window import DataWindowTrigger

NOW = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.UTC)
DEBOUNCE = {"confirm_checks": 2, "of_last_checks": 3, "cooldown_hours": 24.0}


# --------------------------------------------------------------------------- trigger


def test_trigger_serializes_to_its_class_path_and_primitives():
    trigger = DataWindowTrigger(
        pattern="/data/churn/*_2026-03-20.csv", poke_interval=30, deadline=123.5, started_at=100.0
    )

    classpath, kwargs = trigger.serialize()

    assert classpath == "airflow_mlops.triggers.data_window.DataWindowTrigger"
    assert kwargs == {
        "pattern": "/data/churn/*_2026-03-20.csv",
        "poke_interval": 30.0,
        "deadline": 123.5,
        "started_at": 100.0,
    }
    assert all(isinstance(v, str | int | float | type(None)) for v in kwargs.values())
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def _first_event(trigger: DataWindowTrigger, during=None):
    """The trigger's first event (as the triggerer sees it), optionally doing `during()` while it waits."""

    async def main():
        async def first():
            return await anext(trigger.run())

        task = asyncio.create_task(first())
        if during is not None:
            await asyncio.sleep(0.15)
            during()
        return await asyncio.wait_for(task, timeout=10)

    return asyncio.run(main()).payload


def test_trigger_fires_when_a_nonempty_file_appears(tmp_path):
    trigger = DataWindowTrigger(pattern=str(tmp_path / "*_2026-03-20.csv"), poke_interval=0.05)
    (tmp_path / "churn_2026-03-20.csv").touch()  # empty: not data yet

    payload = _first_event(trigger, during=lambda: (tmp_path / "churn_2026-03-20.csv").write_text("a,b\n1,2\n"))

    assert payload["status"] == "success"
    assert payload["path"] == str(tmp_path / "churn_2026-03-20.csv")
    assert payload["size"] == 8


def test_trigger_times_out_with_a_timeout_event(tmp_path):
    started = time.time()
    trigger = DataWindowTrigger(
        pattern=str(tmp_path / "*.csv"), poke_interval=0.05, deadline=started + 0.3, started_at=started
    )

    payload = _first_event(trigger)

    assert payload["status"] == "timeout"
    assert payload["pattern"] == str(tmp_path / "*.csv")
    assert 0.25 <= payload["waited_s"] < 5


def test_trigger_turns_an_exception_into_an_error_event(tmp_path, monkeypatch):
    from airflow_mlops.triggers import data_window

    def broken(pattern):
        raise PermissionError(13, "Permission denied", pattern)

    monkeypatch.setattr(data_window, "_first_nonempty", broken)

    payload = _first_event(DataWindowTrigger(pattern=str(tmp_path / "*.csv"), poke_interval=0.05))

    assert payload["status"] == "error"
    assert "PermissionError" in payload["message"] and "Permission denied" in payload["message"]


# --------------------------------------------------------------------------- debounce and cool-down


def _checks(*drifts: bool, requested_at: int | None = None, hours_apart: float = 1.0) -> list[dict]:
    """Checks `hours_apart` apart ending at NOW (the last one is the check being decided)."""
    n = len(drifts)
    return [
        {"at": NOW - dt.timedelta(hours=hours_apart * (n - 1 - i)), "drift": d, "requested": i == requested_at}
        for i, d in enumerate(drifts)
    ]


def test_no_drift_now_never_requests():
    assert should_request_retrain(_checks(True, True, False), now=NOW, **DEBOUNCE) == (False, "no drift in this check")


def test_a_single_drifting_check_is_not_enough():
    requested, reason = should_request_retrain(_checks(False, True), now=NOW, **DEBOUNCE)
    assert not requested
    assert "drift in 1 of the last 2" in reason and "2 of 3 are needed" in reason


def test_two_of_the_last_three_request_a_retrain():
    requested, reason = should_request_retrain(_checks(False, True, False, True), now=NOW, **DEBOUNCE)
    assert requested, reason
    assert "drift in 2 of the last 3 checks" in reason


def test_only_the_last_m_checks_count():
    # Drift long ago, then calm, then one drift: 1 of the last 3.
    assert not should_request_retrain(_checks(True, True, False, False, True), now=NOW, **DEBOUNCE)[0]


def test_cool_down_after_a_request():
    history = _checks(True, True, True, requested_at=1, hours_apart=2.0)  # requested 2 h ago
    requested, reason = should_request_retrain(history, now=NOW, **DEBOUNCE)
    assert not requested
    assert "already requested" in reason and "cool-down of 24 h" in reason


def test_cool_down_expires():
    history = _checks(True, True, True, requested_at=0, hours_apart=13.0)  # requested 26 h ago
    assert should_request_retrain(history, now=NOW, **DEBOUNCE)[0]


def test_naive_and_iso_timestamps_are_accepted():
    history = [
        {"at": "2026-03-20T10:00:00+00:00", "drift": True, "requested": True},
        {"at": dt.datetime(2026, 3, 20, 11, 0), "drift": True, "requested": False},
    ]
    assert not should_request_retrain(history, now=NOW.replace(tzinfo=None), **DEBOUNCE)[0]


def test_debounce_rejects_impossible_settings():
    with pytest.raises(ValueError, match="confirm_checks"):
        should_request_retrain(_checks(True), now=NOW, confirm_checks=3, of_last_checks=2, cooldown_hours=1)


# --------------------------------------------------------------------------- sensor


class _TI:
    def __init__(self, run_id: str = "manual__2026-03-20") -> None:
        self.dag_id, self.run_id, self.task_id, self.try_number, self.map_index = (
            "churn_drift_monitor",
            run_id,
            "check_drift",
            1,
            -1,
        )
        self.xcoms: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.xcoms[key] = value

    def get_first_reschedule_date(self, context):
        return None


def _context(run_id: str = "manual__2026-03-20") -> dict:
    run_after = dt.datetime(2026, 3, 21, 6, 0, tzinfo=dt.UTC)
    return {
        "ti": _TI(run_id),
        "dag_run": SimpleNamespace(run_type="manual", run_after=run_after),
        "logical_date": run_after,
        "triggering_asset_events": {},
    }


def _sensor(source, as_of="2026-03-20", **kwargs) -> DriftSensor:
    return DriftSensor(
        task_id="check_drift",
        config_path=str(CHURN_CONFIG),
        source=str(source),
        as_of=as_of,
        poke_interval=30,
        timeout=600,
        **kwargs,
    )


def test_sensor_defers_to_the_trigger_while_the_window_is_missing(tmp_path):
    from airflow.sdk.exceptions import TaskDeferred

    source = tmp_path / "churn"
    churn_stream.write_stream(source, dt.date(2026, 3, 13), 7, rows=20)  # .. 2026-03-19: the 20th is missing
    before = time.time()

    with pytest.raises(TaskDeferred) as deferred:
        _sensor(source).execute(_context())

    exc = deferred.value
    assert exc.method_name == "execute_complete"
    assert exc.timeout.total_seconds() >= 600
    classpath, kwargs = exc.trigger.serialize()
    assert classpath == "airflow_mlops.triggers.data_window.DataWindowTrigger"
    assert kwargs["pattern"] == str(source / "*_2026-03-20.csv")
    assert kwargs["poke_interval"] == 30.0
    assert before + 600 <= kwargs["deadline"] <= time.time() + 600


def test_sensor_reschedules_when_not_deferrable(tmp_path):
    from airflow.sdk.exceptions import AirflowRescheduleException

    source = tmp_path / "churn"
    source.mkdir()
    sensor = _sensor(source, deferrable=False)
    assert sensor.mode == "reschedule"

    with pytest.raises(AirflowRescheduleException):
        sensor.execute(_context())


def test_trigger_timeout_fails_clearly_without_a_verdict(tmp_path):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    with pytest.raises(AirflowSensorTimeout, match=r"no data for 2026-03-20 in .*churn after 600 s"):
        _sensor(tmp_path / "churn").execute_complete(_context(), {"status": "timeout", "waited_s": 600.2})


def test_trigger_error_fails_the_try(tmp_path):
    from airflow.sdk.exceptions import AirflowException

    with pytest.raises(AirflowException, match="PermissionError: denied.*No drift verdict"):
        _sensor(tmp_path / "churn").execute_complete(
            _context(), {"status": "error", "message": "PermissionError: denied"}
        )


def test_as_of_defaults_to_the_new_batch_day_else_yesterday():
    from airflow.sdk import Asset

    from airflow_mlops.sensors.drift import default_as_of

    assert default_as_of(_context()) == dt.date(2026, 3, 20)
    context = _context() | {
        "triggering_asset_events": {Asset("mlops://churn/new-batch"): [SimpleNamespace(extra={"as_of": "2026-03-18"})]}
    }
    assert default_as_of(context) == dt.date(2026, 3, 18)


def test_template_fields_render(tmp_path):
    sensor = DriftSensor(
        task_id="check_drift",
        config_path="{{ params.cfg }}",
        source="{{ params.source or '' }}",
        as_of="{{ params.as_of or '' }}",
    )
    assert set(sensor.template_fields) == {"config_path", "source", "as_of"}
    sensor.render_template_fields({"params": {"cfg": "c.yaml", "source": "/data/x", "as_of": "2026-03-20"}})
    assert (sensor.config_path, sensor.source, sensor.as_of) == ("c.yaml", "/data/x", "2026-03-20")


def test_no_champion_skips_with_a_clear_reason(mlops_home, mlflow_client, tmp_path):
    from airflow.sdk.exceptions import AirflowSkipException

    source = tmp_path / "churn"
    churn_stream.write_stream(source, dt.date(2026, 3, 14), 7, rows=20)

    with pytest.raises(AirflowSkipException, match="churn_classifier has no champion yet.*no drift check"):
        _sensor(source).execute(_context())


def test_no_champion_skip_names_this_pipelines_retrain_dag(mlops_home, mlflow_client, tmp_path):
    """A pipeline other than churn is told to run its own retrain DAG, never churn_retrain."""
    from airflow.sdk.exceptions import AirflowSkipException

    config = tmp_path / "include" / "pipelines" / "telco.yaml"
    config.parent.mkdir(parents=True)
    text = CHURN_CONFIG.read_text().replace("pipeline: churn\n", "pipeline: telco\n", 1)
    config.write_text(text.replace("name: churn_classifier", "name: telco_classifier", 1))
    source = tmp_path / "telco"
    churn_stream.write_stream(source, dt.date(2026, 3, 14), 7, rows=20)
    sensor = DriftSensor(task_id="check_drift", config_path=str(config), source=str(source), as_of="2026-03-20")

    with pytest.raises(AirflowSkipException, match="telco_classifier has no champion yet") as skipped:
        sensor.execute(_context())

    assert "Train one first (telco_retrain)" in str(skipped.value)
    assert "churn" not in str(skipped.value)


@pytest.fixture
def champion(mlops_home, mlflow_client, churn_config, tmp_path):
    """A champion trained (logistic regression) on 2026-01-14..2026-02-10, before any drift."""
    from airflow_mlops.core import registry, training
    from airflow_mlops.core.data import read_snapshot, take_snapshot
    from airflow_mlops.core.rows import split_roles

    source = tmp_path / "churn"
    churn_stream.write_stream(source, dt.date(2026, 1, 14), 66, rows=120, drift_from=dt.date(2026, 3, 1))
    snap = take_snapshot(churn_config, source=str(source), window_end=dt.date(2026, 2, 10))
    split = split_roles(read_snapshot(snap["uri"]), churn_config)
    result = training.train_candidate(
        split,
        churn_config,
        "logistic_regression",
        client=mlflow_client,
        experiment="churn",
        data_digest=snap["digest"],
        data_uri=snap["uri"],
        tags={"data.digest": snap["digest"]},
    )
    version = registry.register_challenger(
        mlflow_client,
        churn_config.model_name,
        result["model_uri"],
        result["run_id"],
        tags={"data.digest": snap["digest"]},
    )
    registry.set_alias(mlflow_client, churn_config.model_name, registry.CHAMPION, version["version"])
    return {"source": source, "snapshot": snap, "version": version["version"], "run_id": result["run_id"]}


def test_champion_reference_is_found_through_its_run(champion, mlflow_client):
    from airflow_mlops.core.monitoring import champion_reference

    ref = champion_reference(mlflow_client, "churn_classifier")

    assert ref == {
        "uri": champion["snapshot"]["uri"],
        "digest": champion["snapshot"]["digest"],
        "version": champion["version"],
        "run_id": champion["run_id"],
    }
    assert champion_reference(mlflow_client, "no_such_model") is None


def test_sensor_defers_then_resumes_and_checks_when_the_data_lands(champion, tmp_path):
    """execute -> TaskDeferred -> the real trigger (the day's file lands meanwhile) -> execute_complete -> verdict."""
    from airflow.sdk.exceptions import TaskDeferred

    day_file = champion["source"] / "churn_2026-02-17.csv"
    parked = tmp_path / day_file.name
    day_file.rename(parked)
    sensor = _sensor(champion["source"], as_of="2026-02-17")
    sensor.poke_interval = 0.05
    ctx = _context("run-deferred")

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(ctx)
    classpath, kwargs = deferred.value.trigger.serialize()
    module, _, name = classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**kwargs)  # as the triggerer rebuilds it
    event = _first_event(trigger, during=lambda: parked.rename(day_file))
    assert event["status"] == "success" and event["path"] == str(day_file)

    result = getattr(sensor, deferred.value.method_name)(ctx, event)

    assert result["drift"] is False and result["requested"] is False
    assert result["as_of"] == "2026-02-17"


def test_sensor_checks_at_once_when_the_window_is_there(champion, mlflow_client):
    """Pre-drift window: no drift; drifted window: drift, logged with per-feature evidence, debounced."""
    calm = _sensor(champion["source"], as_of="2026-02-17").execute(_context("run-calm"))

    assert calm["drift"] is False and calm["requested"] is False
    assert calm["reason"] == "no drift in this check"
    assert calm["reference_version"] == champion["version"]
    assert calm["reference_digest"] == champion["snapshot"]["digest"]

    ctx = _context("run-drift-1")
    first = _sensor(champion["source"], as_of="2026-03-20").execute(ctx)

    assert first["drift"] is True and first["drifted"], first
    assert first["requested"] is False and "drift in 1 of the last 2" in first["reason"]
    assert ctx["ti"].xcoms["mlflow_run_id"] == first["run_id"]
    run = mlflow_client.get_run(first["run_id"])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["mlops.step"] == "drift" and tags["drift.verdict"] == "drift"
    assert tags["retrain.requested"] == "false"
    assert tags["reference.version"] == champion["version"]
    assert tags["reference.digest"] == champion["snapshot"]["digest"]
    assert tags["airflow.dag_id"] == "churn_drift_monitor"
    metrics = run.data.metrics
    assert metrics["drift"] == 1.0 and 0 < metrics["drift_share"] <= 1
    for feature in first["drifted"]:
        assert metrics[f"drifted.{feature}"] == 1.0
        assert f"p.{feature}" in metrics
    artifacts = {a.path for a in mlflow_client.list_artifacts(first["run_id"], "drift")}
    assert {"drift/drift_report.html", "drift/report.json", "drift/summary.txt"} <= artifacts
    assert any(p.endswith(".png") for p in artifacts)
    assert "prediction.psi" in metrics and "prediction.drifted" in metrics  # the champion scored both windows
    assert "target.p" in metrics

    # A retried try of the same DAG run replaces its earlier check: still 1 of 2.
    retried = _sensor(champion["source"], as_of="2026-03-20").execute(_context("run-drift-1"))
    assert retried["requested"] is False

    second = _sensor(champion["source"], as_of="2026-03-20").execute(_context("run-drift-2"))
    assert second["requested"] is True, second["reason"]
    assert mlflow_client.get_run(second["run_id"]).data.tags["retrain.requested"] == "true"

    third = _sensor(champion["source"], as_of="2026-03-20").execute(_context("run-drift-3"))
    assert third["drift"] is True and third["requested"] is False
    assert "cool-down" in third["reason"]


def test_broken_window_fails_validation_and_makes_no_verdict(champion, mlflow_client, tmp_path):
    from airflow_mlops.operators.validation import DataValidationFailed

    broken = tmp_path / "broken"
    churn_stream.write_stream(broken, dt.date(2026, 2, 11), 7, rows=120, bad_days=(dt.date(2026, 2, 15),))
    ctx = _context("run-broken")

    with pytest.raises(DataValidationFailed, match="is broken, so no drift verdict was made") as failed:
        _sensor(broken, as_of="2026-02-17").execute(ctx)

    assert failed.value.failures
    exp = mlflow_client.get_experiment_by_name("churn-monitoring")
    assert mlflow_client.search_runs([exp.experiment_id], "tags.`mlops.step` = 'drift'") == []
    validation_run = mlflow_client.get_run(ctx["ti"].xcoms["mlflow_run_id"])
    assert validation_run.data.tags["mlops.step"] == "validate"
