"""End-to-end: churn_retrain run by the real Airflow task runner (dag.test()) on real MLflow and GX."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import ROOT, churn_stream, task_states

LOGICAL = dt.datetime(2026, 1, 28, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    return bag.get_dag("churn_retrain")


def test_first_run_trains_registers_and_promotes(dag, mlops_home, mlflow_client, churn_dir):
    dag_run = dag.test(logical_date=LOGICAL, run_conf={"source": str(churn_dir)})

    expected = {t: "success" for t in dag.task_ids} | {"record_rejection": "skipped"}
    assert task_states(dag_run) == expected
    version = mlflow_client.get_model_version_by_alias("churn_classifier", "challenger")
    assert version.status == "READY"
    assert version.tags["airflow.dag_id"] == "churn_retrain"
    assert version.tags["airflow.run_id"] == dag_run.run_id
    assert version.tags["data.digest"].startswith("sha256:")
    assert version.tags["decision"] == "NO_BASELINE_PROMOTE"
    assert version.tags["mlops.trigger"] == "manual"
    champion = mlflow_client.get_model_version_by_alias("churn_classifier", "champion")
    assert champion.version == version.version
    # Every candidate was trained and logged to MLflow, each from the same snapshot.
    exp = mlflow_client.get_experiment_by_name("churn")
    runs = mlflow_client.search_runs([exp.experiment_id], filter_string="tags.`mlops.step` = 'train'")
    assert len(runs) == 3
    assert {r.data.tags["data.digest"] for r in runs} == {version.tags["data.digest"]}
    best = max(runs, key=lambda r: r.data.metrics["roc_auc"])
    assert version.run_id == best.info.run_id
    # The validation and the evaluation runs kept their evidence.
    val_runs = mlflow_client.search_runs([exp.experiment_id], filter_string="tags.`mlops.step` = 'validate'")
    assert len(val_runs) == 1
    artifacts = {a.path for a in mlflow_client.list_artifacts(val_runs[0].info.run_id, "validation")}
    assert "validation/result.json" in artifacts
    eval_runs = mlflow_client.search_runs([exp.experiment_id], filter_string="tags.`mlops.step` = 'evaluate'")
    assert len(eval_runs) == 1 and eval_runs[0].info.run_id == version.tags["evaluation.run_id"]


def test_bad_batch_stops_before_training(dag, mlops_home, mlflow_client, tmp_path):
    source = tmp_path / "bad"
    churn_stream.write_stream(source, dt.date(2026, 1, 1), 28, rows=150, bad_days=(dt.date(2026, 1, 20),))

    dag_run = dag.test(logical_date=LOGICAL, run_conf={"source": str(source)})

    s = task_states(dag_run)
    assert s["snapshot"] == "success"
    assert s["validate"] == "failed"
    assert s["train"] != "success" and s["register_challenger"] != "success" and s["deploy"] != "success"
    assert mlflow_client.search_registered_models() == []
    # The bad batch is kept for inspection.
    assert list((mlops_home / "snapshots" / "churn").glob("*.parquet"))


def test_missing_source_fails_at_snapshot_and_registers_nothing(dag, mlops_home, mlflow_client, tmp_path):
    dag_run = dag.test(logical_date=LOGICAL, run_conf={"source": str(tmp_path / "nowhere")})

    assert task_states(dag_run)["snapshot"] == "failed"
    assert mlflow_client.search_registered_models() == []
