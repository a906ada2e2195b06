"""Where airflow-mlops keeps its local state (light: no heavy imports)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "AIRFLOW_MLOPS_HOME"


def mlops_home() -> Path:
    """The project-local state folder: $AIRFLOW_MLOPS_HOME, else ./.mlops."""
    return Path(os.environ.get(HOME_ENV) or Path.cwd() / ".mlops").resolve()


def default_tracking_uri() -> str:
    """The embedded SQLite MLflow store used when no `mlflow_default` connection exists."""
    return f"sqlite:///{mlops_home() / 'mlflow.db'}"


def default_artifact_root() -> str:
    return (mlops_home() / "mlartifacts").as_uri()


def snapshot_root() -> Path:
    return mlops_home() / "snapshots"
