"""
### Churn retraining

Every night: **snapshot** the last 28 days of customer data into an immutable Parquet file,
**validate** it with the Great Expectations suite (a failure stops the run before any
training), **train** every candidate model in the pipeline config side by side (one mapped
task each), and **register** the best one as a new version of `churn_classifier` with the
alias `challenger`. Every step logs to MLflow, experiment `churn`.

Config: `include/pipelines/churn.yaml`. Run it on another file or folder with the `source` param.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import Param, dag

from airflow_mlops.operators.data import DataSnapshotOperator
from airflow_mlops.operators.training import (
    PipelineCandidatesOperator,
    RegisterChallengerOperator,
    TrainModelOperator,
)
from airflow_mlops.operators.validation import DataValidationOperator

CONFIG = str(Path(__file__).resolve().parents[1] / "include" / "pipelines" / "churn.yaml")


@dag(
    dag_id="churn_retraining",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["mlops", "churn", "training"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "source": Param(None, type=["null", "string"], description="A file or folder to train on instead of the config's source"),
        "window_end": Param(None, type=["null", "string"], description="Last day of the training window (YYYY-MM-DD); default: the logical date"),
    },
)
def churn_retraining():
    snapshot = DataSnapshotOperator(
        task_id="snapshot",
        config_path=CONFIG,
        source="{{ params.source or '' }}",
        window_end="{{ params.window_end or '' }}",
    )
    validated = DataValidationOperator(task_id="validate", config_path=CONFIG, snapshot=snapshot.output)
    candidates = PipelineCandidatesOperator(task_id="candidates", config_path=CONFIG)
    trained = TrainModelOperator.partial(
        task_id="train", config_path=CONFIG, snapshot=snapshot.output, map_index_template="{{ task.candidate }}"
    ).expand(candidate=candidates.output)
    register = RegisterChallengerOperator(
        task_id="register_challenger", config_path=CONFIG, results=trained.output, snapshot=snapshot.output
    )
    validated >> candidates
    trained >> register


churn_retraining()
