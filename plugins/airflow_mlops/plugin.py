"""The Airflow plugin of airflow-mlops: the MLflow extra links and the Models page. Light: no MLflow, no
pandas, no FastAPI at import (the page's app is built on its first request).

Registered exactly once:
- pip-installed: by the `airflow.plugins` entry point (`airflow_mlops.plugin:AirflowMlopsPlugin`);
- deployed as a plugins folder: by `plugins/airflow_mlops_plugin.py`, which exposes the class
  only when that entry point is absent. `plugins/.airflowignore` keeps Airflow from importing
  the package's own modules as top-level plugin modules.
"""

from __future__ import annotations

from airflow.sdk.plugins_manager import AirflowPlugin

from airflow_mlops.links import MlflowModelVersionLink, MlflowRunLink
from airflow_mlops.ui import MOUNT, LazyApp

PLUGIN_NAME = "airflow_mlops"
ENTRY_POINT_GROUP = "airflow.plugins"
ENTRY_POINT_VALUE = "airflow_mlops.plugin:AirflowMlopsPlugin"


class AirflowMlopsPlugin(AirflowPlugin):
    """Adds the 'MLflow run' and 'Model version' buttons to airflow-mlops tasks, the Models page (navigation) and a
    'Models' tab on every DAG run (the versions it registered)."""

    name = PLUGIN_NAME
    operator_extra_links = [MlflowRunLink(), MlflowModelVersionLink()]
    fastapi_apps = [{"app": LazyApp(), "url_prefix": MOUNT, "name": "airflow-mlops Models"}]
    external_views = [
        {"name": "Models", "href": f"{MOUNT}/models", "destination": "nav", "url_route": "models",
         "icon": f"{MOUNT}/static/icon.svg", "nav_top_level": True},
        {"name": "Models", "href": f"{MOUNT}/runs/{{DAG_ID}}/{{RUN_ID}}", "destination": "dag_run",
         "url_route": "mlops-run-models", "icon": f"{MOUNT}/static/icon.svg"},
    ]  # fmt: skip


def installed_as_entry_point() -> bool:
    """True when an installed distribution registers this plugin through the `airflow.plugins` entry point."""
    from importlib.metadata import entry_points

    return any(ep.value.replace(" ", "") == ENTRY_POINT_VALUE for ep in entry_points(group=ENTRY_POINT_GROUP))
