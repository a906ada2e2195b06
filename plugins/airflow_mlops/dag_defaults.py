"""What every pipeline DAG shares: retries with backoff and the pipeline's alerts (light: no heavy imports)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow_mlops.alerting import PipelineNotifier, RunFailureCallback

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
}


def default_args(config_path: str) -> dict[str, Any]:
    """DEFAULT_ARGS plus a run_failed alert from any task that fails for good (routes: the config's `alerts`)."""
    return {**DEFAULT_ARGS, "on_failure_callback": PipelineNotifier("run_failed", config_path)}


def failure_callback(config_path: str) -> RunFailureCallback:
    """The DAG-level failure callback: alerts for runs that fail without a failed task (timeouts)."""
    return RunFailureCallback(config_path)
