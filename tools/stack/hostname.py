"""Airflow's `hostname_callable` for native Celery workers: `worker1@host`, so the UI and the
stack test can tell which of the workers on one machine ran a task (containers have their own names)."""

from __future__ import annotations

import os
import socket

WORKER_NAME_ENV = "AIRFLOW_MLOPS_STACK_WORKER"


def worker_hostname() -> str:
    name = os.environ.get(WORKER_NAME_ENV)
    host = socket.getfqdn()
    return f"{name}@{host}" if name else host
