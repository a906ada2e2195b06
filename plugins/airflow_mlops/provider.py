"""Provider metadata for Airflow's ProvidersManager (entry point `apache_airflow_provider`).

Airflow calls `get_provider_info()` while it initializes its configuration, so this module
imports nothing from Airflow or MLflow.

The connection form is declared here (`conn-fields`, `ui-field-behaviour`), the Airflow 3.2+
way: the UI then needs neither wtforms nor an import of the hook.

The plugin is deliberately not listed under "plugins": the `airflow.plugins` entry point
already registers it, and listing it here as well would register it a second time whenever
`[core] lazy_discover_providers = False`.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow_mlops import __version__

#: How the Airflow connection form shows an `mlflow` connection (also `MlflowHook.get_ui_field_behaviour()`).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port", "extra"],
    "relabeling": {
        "host": "Tracking URI",
        "login": "Username",
        "password": "Password (basic auth)",
    },
    "placeholders": {
        "host": "http://mlflow:5000  or  sqlite:////opt/airflow/mlflow.db",
        "login": "optional: MLflow basic-auth user",
        "password": "optional: MLflow basic-auth password",
        "registry_uri": "defaults to the tracking URI",
    },
}

#: Extra fields of an `mlflow` connection, stored in its `extra` JSON.
CONN_FIELDS: dict[str, Any] = {
    "registry_uri": {
        "label": "Registry URI",
        "description": "Model registry URI when it differs from the tracking URI.",
        "schema": {"type": ["string", "null"]},
    },
}

#: Every `[mlops]` option the package reads (tests/unit/test_provider_config.py greps the code for them): `airflow
#: config list` shows them with their descriptions, and `conf.get("mlops", ...)` falls back to these defaults.
CONFIG: dict[str, Any] = {
    "mlops": {
        "description": "airflow-mlops: where its pipelines are and where its links point.\n",
        "options": {
            "pipelines_folder": {
                "description": "The folder of pipeline YAMLs every reader uses (the DAGs, the CLI, alerts, the "
                "Models page). Empty: the project's include/pipelines.\n",
                "version_added": None,
                "type": "string",
                "example": "/opt/airflow/include/pipelines",
                "default": None,
            },
            "mlflow_ui_url": {
                "description": "The MLflow UI address the tasks' extra links (MLflow run, model version) point to.\n",
                "version_added": None,
                "type": "string",
                "example": "https://mlflow.example.com",
                "default": "http://localhost:5000",
            },
        },
    },
}


def get_provider_info() -> dict[str, Any]:
    behaviour = copy.deepcopy(UI_FIELD_BEHAVIOUR)
    return {
        "package-name": "airflow-mlops",
        "name": "Airflow MLOps",
        "description": "The ML lifecycle on Apache Airflow 3 with MLflow: validate, train, judge, deploy, "
        "watch for drift, retrain.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "mlflow",
                "hook-class-name": "airflow_mlops.hooks.mlflow.MlflowHook",
                "hook-name": "MLflow",
                "conn-fields": copy.deepcopy(CONN_FIELDS),
                "ui-field-behaviour": {
                    "hidden-fields": behaviour["hidden_fields"],
                    "relabeling": behaviour["relabeling"],
                    "placeholders": behaviour["placeholders"],
                },
            }
        ],
        "extra-links": [
            "airflow_mlops.links.MlflowRunLink",
            "airflow_mlops.links.MlflowModelVersionLink",
        ],
        "config": copy.deepcopy(CONFIG),
    }
