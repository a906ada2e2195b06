"""What every pipeline DAG shares: retries with backoff and a failure notification (light: no heavy imports)."""

from __future__ import annotations

from datetime import timedelta

from airflow_mlops.notifiers import LogNotifier

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
}


def failure_notifier() -> LogNotifier:
    """A fresh notifier per DAG (notifiers render their templates in place)."""
    return LogNotifier("{{ dag.dag_id }} run {{ run_id }} failed", level="ERROR")
