"""The Airflow plugin of airflow-mlops: the MLflow extra links. Light: no MLflow, no pandas.

Registered exactly once:
- pip-installed: by the `airflow.plugins` entry point (`airflow_mlops.plugin:AirflowMlopsPlugin`);
- deployed as a plugins folder: by `plugins/airflow_mlops_plugin.py`, which exposes the class
  only when that entry point is absent. `plugins/.airflowignore` keeps Airflow from importing
  the package's own modules as top-level plugin modules.
"""

from __future__ import annotations

from airflow.sdk.plugins_manager import AirflowPlugin

from airflow_mlops.links import MlflowModelVersionLink, MlflowRunLink

PLUGIN_NAME = "airflow_mlops"
ENTRY_POINT_GROUP = "airflow.plugins"
ENTRY_POINT_VALUE = "airflow_mlops.plugin:AirflowMlopsPlugin"


class AirflowMlopsPlugin(AirflowPlugin):
    """Adds the 'MLflow run' and 'Model version' buttons to airflow-mlops tasks."""

    name = PLUGIN_NAME
    operator_extra_links = [MlflowRunLink(), MlflowModelVersionLink()]


def installed_as_entry_point() -> bool:
    """True when an installed distribution registers this plugin through the `airflow.plugins` entry point."""
    from importlib.metadata import entry_points

    return any(ep.value.replace(" ", "") == ENTRY_POINT_VALUE for ep in entry_points(group=ENTRY_POINT_GROUP))
