"""Where airflow-mlops keeps its local state and which folders data may come from (light: no heavy imports)."""

from __future__ import annotations

import os
import re
from pathlib import Path

HOME_ENV = "AIRFLOW_MLOPS_HOME"
DATA_ROOTS_ENV = "AIRFLOW_MLOPS_DATA_ROOTS"  # extra folders sources may live in, os.pathsep-separated
PICKLE_ENV = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"

# MLflow's own loaders unpickle model files unless told otherwise; task processes that do not
# say otherwise refuse (airflow-mlops itself loads models with training.load_model only).
os.environ.setdefault(PICKLE_ENV, "false")


def mlops_home() -> Path:
    """The project-local state folder: $AIRFLOW_MLOPS_HOME, else ./.mlops."""
    return Path(os.environ.get(HOME_ENV) or Path.cwd() / ".mlops").resolve()


def project_root() -> Path:
    """The checkout holding dags/, plugins/ and include/: $AIRFLOW_MLOPS_PROJECT_ROOT, else this package's grandparent."""
    return Path(os.environ.get("AIRFLOW_MLOPS_PROJECT_ROOT") or Path(__file__).resolve().parents[2])


def pipelines_folder() -> Path:
    """The folder of pipeline YAMLs every reader uses (DAGs, CLI, alerts, Models page, stack): `[mlops]
    pipelines_folder` (env AIRFLOW__MLOPS__PIPELINES_FOLDER), else the project root's include/pipelines."""
    from airflow.sdk import conf

    value = conf.get("mlops", "pipelines_folder", fallback="") or ""
    return Path(value).expanduser() if value.strip() else default_pipelines_folder()


def default_pipelines_folder() -> Path:
    """`[mlops] pipelines_folder`'s default: the project root's include/pipelines."""
    return project_root() / "include" / "pipelines"


def data_roots_from_env() -> list[Path]:
    """The folders listed in $AIRFLOW_MLOPS_DATA_ROOTS (os.pathsep-separated; empty entries and URIs ignored)."""
    return [Path(p) for p in data_root_entries() if "://" not in p]


def data_root_entries() -> list[str]:
    """Every entry of $AIRFLOW_MLOPS_DATA_ROOTS: folders, and URI prefixes (``s3://CONN_ID@bucket/prefix``,
    ``file:///srv/data``) kept whole although their ``:`` is also the separator on POSIX."""
    entries: list[str] = []
    for piece in os.environ.get(DATA_ROOTS_ENV, "").split(os.pathsep):
        if piece.startswith("//") and entries and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", entries[-1]):
            entries[-1] = f"{entries[-1]}{os.pathsep}{piece}"  # "s3" + "//conn@bucket/prefix": one URI
        else:
            entries.append(piece)
    return [e for e in entries if e.strip()]


def default_tracking_uri() -> str:
    """The embedded SQLite MLflow store used when no `mlflow_default` connection exists."""
    return f"sqlite:///{mlops_home() / 'mlflow.db'}"


def default_artifact_root() -> str:
    return (mlops_home() / "mlartifacts").as_uri()


def snapshot_root() -> Path:
    return mlops_home() / "snapshots"
