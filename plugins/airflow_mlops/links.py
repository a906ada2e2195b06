"""Extra links from a task to its MLflow run and to the model version it registered.

Airflow 3 computes a link in the worker when the task finishes (and stores it in XCom), from
the XComs the operator pushed: `mlflow_run_id` / `mlflow_experiment_id` and `model_name` /
`model_version`. The MLflow UI address comes from `[mlops] mlflow_ui_url`
(env AIRFLOW__MLOPS__MLFLOW_UI_URL), default http://localhost:5000: no connection lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

from airflow_mlops.airflow_internals import xcom_value

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

DEFAULT_MLFLOW_UI_URL = "http://localhost:5000"


def mlflow_ui_url() -> str:
    """The MLflow UI base URL users can open in a browser (not necessarily the tracking URI)."""
    from airflow.sdk import conf

    return (conf.get("mlops", "mlflow_ui_url", fallback=DEFAULT_MLFLOW_UI_URL) or DEFAULT_MLFLOW_UI_URL).rstrip("/")


def _xcom(ti_key: TaskInstanceKey, key: str) -> str | None:
    value = xcom_value(ti_key, key)
    return None if value in (None, "") else str(value)


def run_url(run_id: str, experiment_id: str | None = None) -> str:
    if experiment_id:
        return f"{mlflow_ui_url()}/#/experiments/{quote(experiment_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{mlflow_ui_url()}/#/runs/{quote(run_id, safe='')}"


def model_url(name: str) -> str:
    return f"{mlflow_ui_url()}/#/models/{quote(name, safe='')}"


def model_version_url(name: str, version: str) -> str:
    return f"{mlflow_ui_url()}/#/models/{quote(name, safe='')}/versions/{quote(version, safe='')}"


class MlflowRunLink(BaseOperatorLink):
    """'MLflow run': the run the task logged to (XCom `mlflow_run_id`, `mlflow_experiment_id`)."""

    name = "MLflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        run_id = _xcom(ti_key, "mlflow_run_id")
        if run_id is None:
            return ""
        return run_url(run_id, _xcom(ti_key, "mlflow_experiment_id"))


class MlflowModelVersionLink(BaseOperatorLink):
    """'Model version': the registered model version (XCom `model_name`, `model_version`)."""

    name = "Model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        name = _xcom(ti_key, "model_name")
        version = _xcom(ti_key, "model_version")
        if name is None or version is None:
            return ""
        return model_version_url(name, version)
