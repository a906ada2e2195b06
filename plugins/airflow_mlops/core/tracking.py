"""MLflow tracking helpers shared by validation, training and evaluation."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow

from airflow_mlops import settings
from airflow_mlops.core.filters import quote_filter_value

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlflow import MlflowClient

log = logging.getLogger(__name__)

#: Run tag on a run that a later try of the same Airflow task found RUNNING and closed as FAILED.
ABANDONED_TAG = "mlops.abandoned"
#: The run tags naming one Airflow task instance (with `airflow.map_index` for a mapped one).
TASK_TAGS = ("airflow.dag_id", "airflow.run_id", "airflow.task_id")


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
    fail_abandoned_runs(client, experiment_id, tags or {})
    run = client.create_run(experiment_id, run_name=run_name, tags=tags or {})
    run_id = run.info.run_id
    try:
        with mlflow.start_run(run_id=run_id):
            yield run_id
    except BaseException:
        try:
            client.set_terminated(run_id, status="FAILED")
        except Exception as exc:  # MLflow unreachable: the next try of the task closes the run
            log.warning(
                "Could not mark MLflow run %s FAILED (%s: %s); the task's retry will", run_id, type(exc).__name__, exc
            )
        raise


def fail_abandoned_runs(client: MlflowClient, experiment_id: str, tags: dict[str, str]) -> list[str]:
    """Close as FAILED the runs that other tries of this Airflow task left RUNNING (killed, or MLflow was down).

    Airflow runs one try of a task instance at a time, so when a try starts, a RUNNING run tagged
    with the same DAG, DAG run, task and map index but another `airflow.try_number` is dangling.
    Each is tagged `mlops.abandoned` saying why. Returns their run ids.
    """
    if not all(tags.get(k) for k in TASK_TAGS):
        return []
    same_task = " and ".join(f"tags.`{k}` = {quote_filter_value(tags[k])}" for k in TASK_TAGS)
    runs = client.search_runs([experiment_id], filter_string=f"{same_task} and attributes.status = 'RUNNING'")
    try_number = tags.get("airflow.try_number")
    closed = []
    for run in runs:
        other = run.data.tags
        if (
            other.get("airflow.map_index") != tags.get("airflow.map_index")
            or other.get("airflow.try_number") == try_number
        ):
            continue
        why = (
            f"try {other.get('airflow.try_number', '?')} of this task ended without closing its run (killed, or "
            f"MLflow unreachable); marked FAILED by try {try_number or '?'}"
        )
        client.set_tag(run.info.run_id, ABANDONED_TAG, why)
        client.set_terminated(run.info.run_id, status="FAILED")
        log.warning("MLflow run %s: %s", run.info.run_id, why)
        closed.append(run.info.run_id)
    return closed


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
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"airflow-mlops=={__version__}"


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float]) -> None:
    """Log `metrics` in batches of at most 1,000 (MLflow's cap), one timestamp for all."""
    from mlflow.entities import Metric

    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    batch = [Metric(key=k, value=v, timestamp=now, step=0) for k, v in metrics.items()]
    for i in range(0, len(batch), 1000):  # MLflow caps a batch at 1000 metrics
        client.log_batch(run_id, metrics=batch[i : i + 1000])
