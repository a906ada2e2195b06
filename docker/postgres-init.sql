-- The databases of the stack, created by the postgres image's entrypoint on the first start of an
-- empty data volume (/docker-entrypoint-initdb.d). The names are StackSettings.database(...) in
-- tools/stack/components.py: Airflow's metadata (and Celery results), MLflow's
-- tracking store, MLflow's users and permissions.
-- Idempotent (psql's \gexec), so it can be re-run on an existing server:
--   docker compose exec postgres psql -U airflow_mlops -d postgres -f /docker-entrypoint-initdb.d/10-airflow-mlops.sql
SELECT 'CREATE DATABASE airflow_mlops_airflow'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'airflow_mlops_airflow')\gexec
SELECT 'CREATE DATABASE airflow_mlops_mlflow'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'airflow_mlops_mlflow')\gexec
SELECT 'CREATE DATABASE airflow_mlops_mlflow_auth'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'airflow_mlops_mlflow_auth')\gexec
