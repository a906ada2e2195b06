"""Notifiers for pipeline events. The default writes to the log; swap in any Airflow notifier
(Slack, SMTP, ...) through the DAG's `on_failure_callback` / the deploy task's callbacks."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

log = logging.getLogger("airflow_mlops.notifications")


class LogNotifier(BaseNotifier):
    """Write a templated message to the `airflow_mlops.notifications` logger.

    :param message: Jinja-templated text, e.g. "{{ dag.dag_id }} failed at {{ ti.task_id }}"
    :param level: logging level name
    """

    template_fields: Sequence[str] = ("message",)

    def __init__(self, message: str, level: str = "INFO") -> None:
        super().__init__()
        self.message = message
        self.level = level

    def notify(self, context: Context) -> None:
        log.log(logging.getLevelName(self.level.upper()), "[airflow-mlops] %s", self.message)
