#!/bin/sh
# Entry point of the compose `mlflow` service. Writes MLflow's basic-auth config to
# $MLFLOW_AUTH_CONFIG_PATH with exactly what the native stack writes
# (tools.stack.components.mlflow_auth_ini: NO_PERMISSIONS by default, users and grants in
# the database $AIRFLOW_MLOPS_MLFLOW_AUTH_DATABASE_URI), then runs the command (`mlflow server ...`).
# The file holds the database password: mode 0600, and the variable is not passed on.
set -eu
: "${MLFLOW_AUTH_CONFIG_PATH:?MLFLOW_AUTH_CONFIG_PATH is not set}"
: "${AIRFLOW_MLOPS_MLFLOW_AUTH_DATABASE_URI:?AIRFLOW_MLOPS_MLFLOW_AUTH_DATABASE_URI is not set}"
# tools/ is not in the wheel: the image copies it to the project root ($AIRFLOW_MLOPS_PROJECT_ROOT).
PYTHONPATH="${AIRFLOW_MLOPS_PROJECT_ROOT:-/opt/airflow}" python - <<'PY'
import os
from pathlib import Path

from tools.stack.components import mlflow_auth_ini

path = Path(os.environ["MLFLOW_AUTH_CONFIG_PATH"])
path.parent.mkdir(parents=True, exist_ok=True)
with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
    out.write(mlflow_auth_ini(os.environ["AIRFLOW_MLOPS_MLFLOW_AUTH_DATABASE_URI"]))
path.chmod(0o600)
PY
unset AIRFLOW_MLOPS_MLFLOW_AUTH_DATABASE_URI
exec "$@"
