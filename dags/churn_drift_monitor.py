"""
### Churn drift monitor: is today's data still the data the champion learned from?

Daily at 06:00 UTC, or as soon as a new batch lands (`mlops://churn/new-batch`), for the model
`churn_classifier`:

1. **check_drift** waits for the window's last day (deferred to the triggerer: no worker slot is
   held while waiting), snapshots the last 7 days (`monitoring.window_days`) immutably, validates
   them with the Great Expectations suite (broken data fails here, reported as broken, never as
   drift), and compares them feature by feature with the champion's *own* training snapshot,
   found through its MLflow run. No champion yet: skipped. Statistics, the per-feature table and
   an HTML/PNG report go to MLflow (experiment `churn-monitoring`).
2. **request_retrain** emits `mlops://churn/retrain-request` (which schedules `churn_retrain`)
   only when drift is confirmed: in 2 of the last 3 checks, and not again within 24 h
   (`monitoring.confirm_checks`, `of_last_checks`, `cooldown_hours`). Otherwise it is skipped,
   with the reason.

Params: `source` checks another file or folder; `as_of` the window's last day (YYYY-MM-DD);
default: the day a `new-batch` event names (extra `as_of`), else yesterday.
Config: `include/pipelines/churn.yaml` (section `monitoring`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag

from airflow_mlops.alerting import PipelineNotifier
from airflow_mlops.dag_defaults import default_args, failure_callback
from airflow_mlops.operators.monitoring import RequestRetrainOperator
from airflow_mlops.sensors.drift import DriftSensor

CONFIG = str(Path(__file__).resolve().parents[1] / "include" / "pipelines" / "churn.yaml")
NEW_BATCH = Asset("mlops://churn/new-batch")  # emitted by the upstream export (extra: {"as_of": "YYYY-MM-DD"})
RETRAIN_REQUEST = Asset("mlops://churn/retrain-request")  # schedules churn_retrain
POKE_INTERVAL_S = int(os.environ.get("AIRFLOW_MLOPS_DRIFT_POKE_INTERVAL", "300"))  # how often the triggerer looks


@dag(
    dag_id="churn_drift_monitor",
    # Daily, or as soon as a new batch lands.
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"), assets=[NEW_BATCH]),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["mlops", "churn", "monitoring", "drift"],
    default_args=default_args(CONFIG),  # a task that fails for good sends the run_failed alert
    on_failure_callback=failure_callback(CONFIG),
    params={
        "source": Param(None, type=["null", "string"], description="Check this file or folder instead of the config's source"),
        "as_of": Param(None, type=["null", "string"], description="The window's last day (YYYY-MM-DD); default: the new-batch day, else yesterday"),
    },
)
def churn_drift_monitor():
    check = DriftSensor(
        task_id="check_drift",
        config_path=CONFIG,
        source="{{ params.source or '' }}",
        as_of="{{ params.as_of or '' }}",
        poke_interval=POKE_INTERVAL_S,
        timeout=int(timedelta(hours=12).total_seconds()),
    )

    RequestRetrainOperator(
        task_id="request_retrain", check=check.output, outlets=[RETRAIN_REQUEST],
        on_success_callback=PipelineNotifier("drift_confirmed", CONFIG),
    )



churn_drift_monitor()
