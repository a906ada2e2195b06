"""What every pipeline operator shares."""

from __future__ import annotations


def test_a_task_points_mlflow_process_wide_uris_at_its_connection(mlops_home, tmp_path):
    """A task in a fresh process (LocalExecutor, Celery) must not fall back to MLflow's ./mlflow.db:
    the registry itself resolves `models:/<model_id>` sources through the process-wide URI."""
    import mlflow

    from airflow_mlops import settings
    from airflow_mlops.operators.data import DataSnapshotOperator

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/elsewhere.db")  # what a fresh process would use
    mlflow.set_registry_uri(f"sqlite:///{tmp_path}/elsewhere.db")
    client = DataSnapshotOperator(task_id="snapshot", config_path="unused.yaml").client
    assert client.tracking_uri == settings.default_tracking_uri()
    assert mlflow.get_tracking_uri() == settings.default_tracking_uri()
    assert mlflow.get_registry_uri() == settings.default_tracking_uri()
