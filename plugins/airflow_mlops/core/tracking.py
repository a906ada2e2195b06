"""MLflow tracking helpers shared by validation, training and evaluation."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow

from airflow_mlops import settings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlflow import MlflowClient


def configure(client: MlflowClient) -> None:
    """Point MLflow's fluent API (log_model, start_run) at the same stores as `client`."""
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client._registry_uri or client.tracking_uri)


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created if missing.

    On a local SQLite store its artifacts go to the project-local folder, not ./mlruns.
    """
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = settings.default_artifact_root() + f"/{name}" if client.tracking_uri.startswith("sqlite") else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        # Another task created it at the same moment.
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


@contextlib.contextmanager
def active_run(
    client: MlflowClient, experiment: str, run_name: str, tags: dict[str, str] | None = None
) -> Iterator[str]:
    """Start an MLflow run, make it the fluent active run, and close it FINISHED or FAILED."""
    configure(client)
    experiment_id = ensure_experiment(client, experiment)
    run = client.create_run(experiment_id, run_name=run_name, tags=tags or {})
    run_id = run.info.run_id
    try:
        with mlflow.start_run(run_id=run_id):
            yield run_id
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise


def code_version() -> str:
    """The git commit of the project (plus '-dirty'), or the package version outside git."""
    from airflow_mlops import __version__

    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"airflow-mlops=={__version__}"
