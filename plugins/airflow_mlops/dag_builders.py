"""A pipeline YAML in, its DAGs out: one builder per DAG kind.

`pipeline_dags()` reads the pipeline catalog (core/catalog.py: every `*.yaml` of `[mlops] pipelines_folder`,
default include/pipelines/) and builds, for each pipeline that is not a variant (`variant_of:`), the DAGs
of the kinds in `BUILDERS`:

    <pipeline>_retrain        validate, train, judge, deploy (nightly, or on mlops://<pipeline>/retrain-request)
    <pipeline>_drift_monitor  is today's data still the champion's? (daily, or on mlops://<pipeline>/new-batch;
                              only for sources with a date column: drift is measured over days)
    <pipeline>_scoring        the day's records scored with the pinned champion (with `scoring.source`)
    <pipeline>_performance_monitor  realized performance once labels arrive (with `scoring.labels`)

Ids, tags, Assets, schedules and docs all come from the YAML. A YAML that does not load gets no DAGs;
`raise_pipeline_errors()` (dags/pipeline_errors.py) turns it into an Airflow import error naming the
file and key, while the other pipelines load. Light on purpose: no heavy imports at parse time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param

from airflow_mlops.dag_defaults import PipelineNotifier, default_args, failure_callback

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_mlops.core.catalog import Pipelines
    from airflow_mlops.core.config import PipelineConfig

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
#: How often the drift sensor's trigger looks for the window's last day (seconds).
POKE_INTERVAL_S = int(os.environ.get("AIRFLOW_MLOPS_DRIFT_POKE_INTERVAL", "300"))


def champion_asset(pipeline: str) -> Asset:
    """Updated by every promotion."""
    return Asset(f"mlops://{pipeline}/champion")


def retrain_request_asset(pipeline: str) -> Asset:
    """Emitted by a monitor that wants a retrain; schedules <pipeline>_retrain."""
    return Asset(f"mlops://{pipeline}/retrain-request")


def new_batch_asset(pipeline: str) -> Asset:
    """Emitted by the upstream export when a day's batch lands (extra: {"as_of": "YYYY-MM-DD"})."""
    return Asset(f"mlops://{pipeline}/new-batch")


def predictions_asset(pipeline: str) -> Asset:
    """Emitted by <pipeline>_scoring when a day's predictions are written (extra: as_of, rows, model_version, path)."""
    return Asset(f"mlops://{pipeline}/predictions")


# --------------------------------------------------------------------------- the pipelines in a folder


def pipelines_folder() -> Path:
    """`[mlops] pipelines_folder` (settings.pipelines_folder)."""
    from airflow_mlops import settings

    return settings.pipelines_folder()


def read_pipelines(folder: str | Path | None = None) -> Pipelines:
    """The catalog of `folder` (default `[mlops] pipelines_folder`): the pipelines, variants and refused files."""
    from airflow_mlops.core.catalog import read_catalog

    return read_catalog(folder or pipelines_folder())


def pipeline_dags(folder: str | Path | None = None) -> dict[str, DAG]:
    """{dag_id: DAG} for every pipeline in `folder` that loads (see `raise_pipeline_errors` for the others)."""
    found = read_pipelines(folder)
    dags: dict[str, DAG] = {}
    for config in found.configs:
        for build in BUILDERS.values():
            dag = build(config, found.variants.get(config.name, []))
            if dag is not None:
                dags[dag.dag_id] = dag
    return dags


def raise_pipeline_errors(folder: str | Path | None = None) -> None:
    """Raise one error listing every pipeline YAML that does not load (file, key, what to do)."""
    from airflow_mlops.core.errors import ConfigError

    errors = read_pipelines(folder).errors
    if errors:
        raise ConfigError(
            f"{len(errors)} pipeline config(s) did not load, so they have no DAGs (the others are unaffected):\n"
            + "\n".join(f"- {message}" for message in errors.values())
        )


# --------------------------------------------------------------------------- builders


def _schedule(cron: str | None, timezone: str, asset: Asset) -> AssetOrTimeSchedule | Asset:
    if cron is None:
        return asset
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone=timezone), assets=[asset])


def _when(cron: str | None, timezone: str, asset: Asset) -> str:
    time = f"on the cron `{cron}` ({timezone}), or" if cron else "only"
    return f"{time} when `{asset.uri}` is emitted"


def _config_path(config: PipelineConfig) -> str:
    return str(Path(config.path).resolve())


def _pipeline_dag(config: PipelineConfig, config_path: str, kind: str, *, tags: list[str], **kwargs: Any) -> DAG:
    """The DAG `<pipeline>_<kind>` with what every pipeline DAG shares: no catch-up, one run at a time,
    tags `mlops` and the pipeline's name, retries, and the run_failed alert from any task or the run."""
    return DAG(
        dag_id=f"{config.name}_{kind}",
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["mlops", config.name, *tags],
        default_args=default_args(config_path),  # a task that fails for good sends the run_failed alert
        on_failure_callback=failure_callback(config_path),
        **kwargs,
    )


def retrain_dag(config: PipelineConfig, variants: list[str]) -> DAG:
    """<pipeline>_retrain: snapshot, validate, train the candidates, register, judge, deploy or record the rejection.

    The branch waits for a person when the run's config (the pipeline's or a variant's) sets `evaluation.approval`
    and the verdict calls for one (PromotionBranchOperator).
    """
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

    name, folder = config.name, Path(config.path).resolve().parent
    # A variant is named, never a path: a run cannot point the pipeline at a YAML file of its own.
    config_path = "{{ '" + str(folder) + "/' ~ (params.config or '" + name + "') ~ '.yaml' }}"
    request = retrain_request_asset(name)
    with _pipeline_dag(
        config,
        config_path,
        "retrain",
        schedule=_schedule(config.schedule.retrain, config.schedule.timezone, request),
        description=config.description or None,
        doc_md=_retrain_doc(config, variants),
        tags=["training"],
        params={
            "source": Param(
                None, type=["null", "string"], description="Train on this file or folder instead of the config's source"
            ),
            "as_of": Param(
                None,
                type=["null", "string"],
                description="The day to train as of (YYYY-MM-DD); default: the logical date",
            ),
            "config": Param(
                None,
                type=["null", "string"],
                enum=[None, name, *variants],
                description=f"A variant of the pipeline by name (include/pipelines/<name>.yaml); default {name}",
            ),
        },
    ) as dag:
        snapshot = DataSnapshotOperator(
            task_id="snapshot", config_path=config_path,
            source="{{ params.source or '' }}", window_end="{{ params.as_of or '' }}",
        )  # fmt: skip
        validated = DataValidationOperator(task_id="validate", config_path=config_path, snapshot=snapshot.output)
        candidates = PipelineCandidatesOperator(task_id="candidates", config_path=config_path)
        trained = TrainModelOperator.partial(
            task_id="train",
            config_path=config_path,
            snapshot=snapshot.output,
            map_index_template="{{ task.candidate }}",
        ).expand(candidate=candidates.output)
        challenger = RegisterChallengerOperator(
            task_id="register_challenger", config_path=config_path, results=trained.output, snapshot=snapshot.output
        )
        verdict = ChampionChallengerOperator(
            task_id="evaluate", config_path=config_path, snapshot=snapshot.output, challenger=challenger.output
        )
        branch = PromotionBranchOperator(task_id="branch", verdict=verdict.output)
        rejected = RecordRejectionOperator(
            task_id="record_rejection", verdict=verdict.output, approval_from="branch",
            on_success_callback=PipelineNotifier("rejected", config_path),
        )  # fmt: skip
        deploy = DeployModelOperator(
            task_id="deploy", config_path=config_path, verdict=verdict.output, snapshot=snapshot.output,
            approval_from="branch", outlets=[champion_asset(name)],
            on_success_callback=PipelineNotifier("promoted", config_path),
        )  # fmt: skip
        validated >> candidates
        branch >> [deploy, rejected]
    return dag


def drift_monitor_dag(config: PipelineConfig, variants: list[str]) -> DAG | None:
    """<pipeline>_drift_monitor: the last days against the champion's training data; asks for a retrain on confirmed drift.

    None for a source without a date column (drift is measured over a window of days).
    """
    if not config.source.date_column:
        return None
    from airflow_mlops.operators.monitoring import RequestRetrainOperator
    from airflow_mlops.sensors.drift import DriftSensor

    name, config_path = config.name, _config_path(config)
    with _pipeline_dag(
        config,
        config_path,
        "drift_monitor",
        schedule=_schedule(config.schedule.drift_monitor, config.schedule.timezone, new_batch_asset(name)),
        description=f"Drift of {name}'s data against its champion's training data",
        doc_md=_drift_doc(config),
        tags=["monitoring", "drift"],
        params={
            "source": Param(
                None, type=["null", "string"], description="Check this file or folder instead of the config's source"
            ),
            "as_of": Param(
                None,
                type=["null", "string"],
                description="The window's last day (YYYY-MM-DD); default: the new-batch day, else yesterday",
            ),
        },
    ) as dag:
        check = DriftSensor(
            task_id="check_drift", config_path=config_path,
            source="{{ params.source or '' }}", as_of="{{ params.as_of or '' }}",
            poke_interval=POKE_INTERVAL_S, timeout=int(timedelta(hours=12).total_seconds()),
        )  # fmt: skip
        RequestRetrainOperator(
            task_id="request_retrain", check=check.output, outlets=[retrain_request_asset(name)],
            on_success_callback=PipelineNotifier("drift_confirmed", config_path),
        )  # fmt: skip
    return dag


def scoring_dag(config: PipelineConfig, variants: list[str]) -> DAG | None:
    """<pipeline>_scoring: a day's records scored with the champion into one Parquet partition of predictions.

    None when the config has no `scoring.source` (no records to score).
    """
    if not config.scoring.source:
        return None
    from airflow_mlops.operators.scoring import ScoreBatchOperator

    name, config_path = config.name, _config_path(config)
    with _pipeline_dag(
        config,
        config_path,
        "scoring",
        schedule=_schedule(config.schedule.scoring, config.schedule.timezone, new_batch_asset(name)),
        description=f"{name}'s daily records scored with the champion of {config.model_name}",
        doc_md=_scoring_doc(config),
        tags=["scoring"],
        params={
            "source": Param(
                None, type=["null", "string"], description="Score this file instead of the day's file in scoring.source"
            ),
            "as_of": Param(
                None,
                type=["null", "string"],
                description="The day to score (YYYY-MM-DD); default: the new-batch day, else the logical date",
            ),
        },
    ) as dag:
        ScoreBatchOperator(
            task_id="score", config_path=config_path, day="{{ params.as_of or '' }}",
            source="{{ params.source or '' }}", outlets=[predictions_asset(name)],
        )  # fmt: skip
    return dag


def performance_monitor_dag(config: PipelineConfig, variants: list[str]) -> DAG | None:
    """<pipeline>_performance_monitor: the champion's predictions against their delayed labels; asks for a
    retrain on confirmed decay. None when the config has no `scoring.labels` (no outcomes ever arrive)."""
    if not config.scoring.labels:
        return None
    from airflow_mlops.operators.monitoring import RequestRetrainOperator
    from airflow_mlops.operators.performance import PerformanceCheckOperator

    name, config_path, s = config.name, _config_path(config), config.schedule
    p, delay = config.monitoring.performance, config.scoring.label_delay_days
    with _pipeline_dag(
        config,
        config_path,
        "performance_monitor",
        schedule=CronTriggerTimetable(s.performance_monitor, timezone=s.timezone) if s.performance_monitor else None,
        description=f"Realized performance of {name}'s champion on its delayed labels",
        doc_md=f"""
### {name}: are the champion's predictions coming true?

Runs {f"on the cron `{s.performance_monitor}` ({s.timezone})" if s.performance_monitor else "when triggered"}, for
the model `{config.model_name}`; a run on day X checks the labels of day X - {delay} (`scoring.label_delay_days`):

1. **check_performance** joins that day's predictions (written by `{name}_scoring`) with its labels
   (`{config.scoring.labels}/{name}_labels_YYYY-MM-DD.csv`) on `{", ".join(config.source.id_columns) or "?"}`,
   counting every row (matched, predictions without labels, labels without predictions, duplicate labels, other
   model versions); under a join rate of {p.min_join_rate:.0%} it fails with those counts. Then the realized
   `{config.metrics.primary}` with a bootstrap interval, the guard-rail metrics, calibration error and positive
   rates, per model version, beside the champion's own test-set figure at promotion. Decay: the interval lies
   beyond that figure -/+ {p.tolerance:g}. Labels not arrived yet, or no champion: skipped. Evidence (per-day table,
   plot) in MLflow, experiment `{name}-monitoring`.
2. **request_retrain** emits `mlops://{name}/retrain-request` (reason `performance`; `{name}_retrain` records it as
   its trigger) only when decay holds on {p.confirm_days} of the last {p.of_last_days} labelled days, and not
   again within {p.cooldown_hours:g} h; it alerts `performance_decay`. Otherwise skipped, with the reason.

Params: `as_of` the day whose labels to check (YYYY-MM-DD); `source` another labels file or folder.
Config: `{config.path}`, sections `scoring` and `monitoring.performance` (built by
`airflow_mlops.dag_builders.performance_monitor_dag`). Also: `airflow-mlops performance {name}`.
""",
        tags=["monitoring", "performance"],
        params={
            "as_of": Param(
                None,
                type=["null", "string"],
                description=f"The day whose labels to check (YYYY-MM-DD); default: the run's day - {delay}",
            ),
            "source": Param(
                None, type=["null", "string"], description="Read this labels file or folder instead of scoring.labels"
            ),
        },
    ) as dag:
        check = PerformanceCheckOperator(
            task_id="check_performance", config_path=config_path,
            as_of="{{ params.as_of or '' }}", source="{{ params.source or '' }}",
        )  # fmt: skip
        RequestRetrainOperator(
            task_id="request_retrain", check=check.output, outlets=[retrain_request_asset(name)],
            on_success_callback=PipelineNotifier("performance_decay", config_path),
        )  # fmt: skip
    return dag


#: Every DAG kind a pipeline gets (later kinds, such as batch scoring, add their builder here).
BUILDERS: dict[str, Callable[[PipelineConfig, list[str]], DAG | None]] = {
    "retrain": retrain_dag,
    "drift_monitor": drift_monitor_dag,
    "scoring": scoring_dag,
    "performance_monitor": performance_monitor_dag,
}


# --------------------------------------------------------------------------- docs (the DAG's page in the UI)


def _retrain_doc(config: PipelineConfig, variants: list[str]) -> str:
    name, s = config.name, config.schedule
    a = config.evaluation.approval
    waits = (
        f"\n   When the run's config sets `evaluation.approval` (this file: `{a.mode}`, {a.timeout_hours:g} h), a verdict "
        "that needs a person first waits in **branch** (Required Actions, or the Models page): Approve deploys, "
        "Reject or no answer in time records the rejection; who, when and why go onto the version's tags and into "
        "the ledger."
    )
    if config.split_strategy == "time":
        roles = (
            "the newest `split.test_days` days are the **test** rows, the days before them **validation**, the "
            "rest **train**"
        )
    else:
        roles = "a seeded random three-way split into **train**, **validation** and **test** rows"
    return f"""
### {name}: validate, train, judge, deploy

{config.description}

Runs {_when(s.retrain, s.timezone, retrain_request_asset(name))} (the run records which: tag `mlops.trigger`),
for the registered model `{config.model_name}`:

1. **snapshot** the source (`{config.source.path or f"SQL connection {config.source.conn_id}"}`) into an immutable Parquet file (its digest is the data version);
2. **validate** it with the Great Expectations suite `{config.expectation_suite}`: bad data stops the run here;
3. **train** every candidate ({", ".join(c.name for c in config.candidates)}) side by side, one mapped task each
   ({roles}), and **register** the best on the validation rows as a new version with the alias `challenger`;
4. **evaluate** the challenger against `champion` on the test rows minus every row the champion saw: promote only
   with a significant gain in `{config.metrics.primary}` (paired bootstrap), no guard-rail regression, every floor held;
5. **deploy** (compare-and-swap of `champion`, smoke test, undo on failure; emits `mlops://{name}/champion`) or
   **record the rejection**. The champion is never touched by a failed or rejected run.{waits}

Evidence is in MLflow (experiment `{name}`); `airflow-mlops status` / `history` show the aliases and every move.
Alerts go where the config's `alerts:` section routes them, and always to the task log.

Params: `source` trains on another file or folder; `as_of` replays a day (YYYY-MM-DD); `config` runs a variant
of this pipeline ({", ".join(f"`{v}`" for v in variants) or "none defined"}).
Config: `{config.path}` (built by `airflow_mlops.dag_builders.retrain_dag`).
"""


def _drift_doc(config: PipelineConfig) -> str:
    name, s, m = config.name, config.schedule, config.monitoring
    return f"""
### {name}: is today's data still the data the champion learned from?

Runs {_when(s.drift_monitor, s.timezone, new_batch_asset(name))}, for the model `{config.model_name}`:

1. **check_drift** waits for the window's last day (deferred to the triggerer), snapshots the last {m.window_days}
   days, validates them with the suite (broken data fails here, never reported as drift) and compares them feature
   by feature with the champion's own training snapshot. No champion yet: skipped. Statistics, the per-feature
   table and an HTML/PNG report go to MLflow (experiment `{name}-monitoring`).
2. **request_retrain** emits `mlops://{name}/retrain-request` (which schedules `{name}_retrain`) only when drift
   is confirmed in {m.confirm_checks} of the last {m.of_last_checks} checks, and not again within
   {m.cooldown_hours:g} h. Otherwise it is skipped, with the reason.

Params: `source` checks another file or folder; `as_of` the window's last day (YYYY-MM-DD).
Config: `{config.path}`, section `monitoring` (built by `airflow_mlops.dag_builders.drift_monitor_dag`).
"""


def _scoring_doc(config: PipelineConfig) -> str:
    name, s, sc = config.name, config.schedule, config.scoring
    return f"""
### {name}: the day's records scored with the champion

Runs {_when(s.scoring, s.timezone, new_batch_asset(name))}, for the model `{config.model_name}`:

**score** reads the day's records (`{sc.source}/{name}_YYYY-MM-DD.csv` or `.parquet`, no `{config.target}` column)
in chunks of {sc.chunk_rows:,} rows, checks them like a training source (columns, types, ids present and unique:
`{", ".join(config.source.id_columns) or "source.id_columns is empty: set it"}`) and validates them with
`{config.expectation_suite}` minus the rules on `{config.target}`. Bad input fails the task and writes nothing.
`@champion` is resolved to one version for the whole day; no champion yet: skipped. The predictions (ids, `score`,
`predicted`, `model_version`, `data_digest`, `scored_at`) replace the day's partition atomically:
`<AIRFLOW_MLOPS_HOME>/predictions/{name}/day=YYYY-MM-DD/predictions.parquet`. It emits `mlops://{name}/predictions`
and logs a run in the MLflow experiment `{name}-scoring`. It first removes the temp files that killed writes left
in `{name}`'s partitions: its own earlier tries' at any age, others' untouched for an hour (each logged with its size).

The day: the `as_of` param, else the `as_of` of the triggering `mlops://{name}/new-batch` event, else the logical
date (in {s.timezone}). Params: `source` scores another file; `as_of` the day (YYYY-MM-DD).
Config: `{config.path}`, section `scoring` (built by `airflow_mlops.dag_builders.scoring_dag`).
"""
