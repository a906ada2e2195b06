"""
### Churn retraining: validate, train, judge, deploy

Nightly at 02:00 UTC, or when `churn_drift_monitor` emits `mlops://churn/retrain-request`
(the run records which: tags `mlops.trigger` and the drift summary on every MLflow run and in
the ledger), for the customer-churn model `churn_classifier`:

1. **snapshot** the 28 days up to `as_of` into an immutable Parquet file (its digest is the data version);
2. **validate** it with the Great Expectations suite: bad data stops the run here, before any training;
3. **train** every candidate model of the config side by side (one mapped task each) on the
   window's train rows and **register** the best on the validation rows (the 3 days before the
   newest 3) as a new version with the alias `challenger`;
4. **evaluate** challenger against `champion` on the test rows (the newest 3 days) minus every row
   the champion was trained or selected on: promote only with a significant gain (paired
   bootstrap), no guard-rail regression and every floor held;
5. **deploy** (compare-and-swap of `champion`, smoke test, automatic undo on failure) or
   **record the rejection**. The champion is never touched by a failed or rejected run.

Evidence for every step is in MLflow (experiment `churn`); `airflow-mlops status` / `history`
show the aliases and the ledger of every move. Alerts (a failed run, a new champion, a rejection,
a rollback) go where the config's `alerts:` section routes them, and always to the task log.

Params: `source` trains on another file or folder; `as_of` replays a day (YYYY-MM-DD); `config`
names a variant of the pipeline config in `include/pipelines/` (e.g. `churn_fast`: one candidate).
Config: `include/pipelines/churn.yaml`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag

from airflow_mlops.alerting import PipelineNotifier
from airflow_mlops.dag_defaults import default_args, failure_callback
from airflow_mlops.operators.data import DataSnapshotOperator
from airflow_mlops.operators.deploy import DeployModelOperator
from airflow_mlops.operators.evaluation import (
    ChampionChallengerOperator,
    PromotionBranchOperator,
    RecordRejectionOperator,
)
from airflow_mlops.operators.training import (
    PipelineCandidatesOperator,
    RegisterChallengerOperator,
    TrainModelOperator,
)
from airflow_mlops.operators.validation import DataValidationOperator

PIPELINES = Path(__file__).resolve().parents[1] / "include" / "pipelines"
# A config variant is named, never a path: a run cannot point the pipeline at a YAML file of its own.
CONFIG = "{{ '" + str(PIPELINES) + "/' ~ (params.config or 'churn') ~ '.yaml' }}"
CHAMPION = Asset("mlops://churn/champion")
RETRAIN_REQUEST = Asset("mlops://churn/retrain-request")  # emitted by churn_drift_monitor


@dag(
    dag_id="churn_retrain",
    # Nightly, or as soon as the drift monitor asks for a retrain.
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 2 * * *", timezone="UTC"), assets=[RETRAIN_REQUEST]),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["mlops", "churn", "training"],
    default_args=default_args(CONFIG),  # a task that fails for good sends the run_failed alert
    on_failure_callback=failure_callback(CONFIG),
    params={
        "source": Param(None, type=["null", "string"], description="Train on this file or folder instead of the config's source"),
        "as_of": Param(None, type=["null", "string"], description="The day to train as of (YYYY-MM-DD); default: the logical date"),
        "config": Param(
            None, type=["null", "string"], pattern="^[a-z0-9_]+$",
            description="A config variant by name: include/pipelines/<name>.yaml (default churn)",
        ),
    },
)
def churn_retrain():
    snapshot = DataSnapshotOperator(
        task_id="snapshot",
        config_path=CONFIG,
        source="{{ params.source or '' }}",
        window_end="{{ params.as_of or '' }}",
    )
    validated = DataValidationOperator(task_id="validate", config_path=CONFIG, snapshot=snapshot.output)
    candidates = PipelineCandidatesOperator(task_id="candidates", config_path=CONFIG)
    trained = TrainModelOperator.partial(
        task_id="train", config_path=CONFIG, snapshot=snapshot.output, map_index_template="{{ task.candidate }}"
    ).expand(candidate=candidates.output)
    challenger = RegisterChallengerOperator(
        task_id="register_challenger", config_path=CONFIG, results=trained.output, snapshot=snapshot.output
    )
    verdict = ChampionChallengerOperator(
        task_id="evaluate", config_path=CONFIG, snapshot=snapshot.output, challenger=challenger.output
    )

    branch = PromotionBranchOperator(task_id="branch", verdict=verdict.output)
    rejected = RecordRejectionOperator(
        task_id="record_rejection", verdict=verdict.output, on_success_callback=PipelineNotifier("rejected", CONFIG)
    )
    deploy = DeployModelOperator(
        task_id="deploy",
        config_path=CONFIG,
        verdict=verdict.output,
        snapshot=snapshot.output,
        outlets=[CHAMPION],
        on_success_callback=PipelineNotifier("promoted", CONFIG),
    )

    validated >> candidates
    branch >> [deploy, rejected]


churn_retrain()
