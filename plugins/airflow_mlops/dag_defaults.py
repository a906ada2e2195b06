"""What every pipeline DAG shares: retries with backoff and the pipeline's alert callbacks.

Imported by every DAG parse, so light: the callbacks import the alert delivery (`airflow_mlops.alerting`) only
when they fire.

`PipelineNotifier(event, config_path)` is the task callback (run_failed on every task, promoted on deploy, rejected
on record_rejection, drift_confirmed / performance_decay on the monitors' request_retrain) and approval_waiting's
notifier when the retrain's branch starts waiting for a person; `RunFailureCallback` is the DAG-level one (it needs
no template environment, so it also works under `airflow dags test`, where Airflow 3.3 hands DAG callbacks a
SerializedDAG).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Context

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger("airflow_mlops.alerts")

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


# --------------------------------------------------------------------------- callbacks


def _render(value: str, context: Context | Mapping[str, Any]) -> str:
    """Render a config-path template with a plain Jinja environment (works with any DAG object)."""
    if "{{" not in value:
        return value
    import jinja2

    return jinja2.Environment(autoescape=False).from_string(value).render(**context)


def _load_config(config_path: str, context: Context | Mapping[str, Any]) -> PipelineConfig:
    from airflow_mlops.core.config import load_config

    return load_config(_render(config_path, context), check_estimators=False)


class PipelineNotifier(BaseNotifier):
    """Task callback: send the `event` alert of the pipeline whose config is `config_path` (templated)."""

    def __init__(self, event: str, config_path: str) -> None:
        super().__init__()
        self.event = event
        self.config_path = config_path

    def __call__(self, *args: Any) -> None:
        context = args[0] if args else {}
        try:
            self.notify(context)  # type: ignore[arg-type]
        except Exception:  # a notifier never fails the task or hides its error
            log.exception("airflow-mlops: the %s alert could not be prepared", self.event)

    def notify(self, context: Context) -> None:
        from airflow_mlops.alerting import alert_from_context, send_alert

        config = _load_config(self.config_path, context)
        send_alert(alert_from_context(self.event, context, config), config)


class RunFailureCallback:
    """DAG-level failure callback. A failed task has already sent its own run_failed alert (with its
    error); this one alerts only for runs that fail otherwise (a timeout, a deadlock)."""

    def __init__(self, config_path: str) -> None:
        self.config_path = config_path

    def __call__(self, context: Context) -> None:
        reason = str(context.get("reason") or "unknown")
        dag_run = context.get("dag_run")
        run_id = str(context.get("run_id") or getattr(dag_run, "run_id", "?"))
        try:
            if reason == "task_failure":
                log.info("run %s failed (task failure): the failed task sent the alert", run_id)
                return
            from airflow_mlops.alerting import airflow_run_url, send_alert
            from airflow_mlops.core.alerts import Alert

            config = _load_config(self.config_path, context)
            dag = context.get("dag")
            dag_id = str(getattr(dag, "dag_id", "?"))
            send_alert(
                Alert(
                    event="run_failed",
                    pipeline=config.name,
                    summary=f"{dag_id} run {run_id} failed: {reason}.",
                    meaning="The serving champion was not changed by this run. Look at the run in Airflow.",
                    links={"Airflow run": airflow_run_url(dag_id, run_id)},
                ),
                config,
            )
        except Exception:  # a callback never raises: log why instead
            log.exception("airflow-mlops: the run-failure alert of %s could not be sent", run_id)
