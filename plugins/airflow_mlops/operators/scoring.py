"""ScoreBatchOperator: a day's unlabeled records scored with the champion into one immutable Parquet partition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops.links import MlflowModelVersionLink, MlflowRunLink
from airflow_mlops.operators.base import MlopsBaseOperator, fail_on_bad_input, task_identity

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.scoring import BatchValidationFailed


class ScoreBatchOperator(MlopsBaseOperator):
    """Score one day's records with the champion (resolved to a version once) into
    ``<mlops_home>/predictions/<pipeline>/day=YYYY-MM-DD/predictions.parquet``, replaced atomically on a rerun.

    Bad input (a missing column, duplicated ids, a failed suite, a future day) fails the task without
    retries and writes nothing; no champion yet skips it, saying why. Its temp file is named after the task
    instance, so a retry removes the one a killed try left (and every run sweeps stale ones). On success the
    task's outlets (the predictions Asset) get an event whose extra names the day, rows, model version and path.
    Returns the summary of ``core.scoring.score_day``.

    :param config_path: pipeline config YAML (templated)
    :param day: the day to score, YYYY-MM-DD (templated); default: the day a triggering Asset event
        names (a new-batch event's ``as_of``), else the run's logical date (in the schedule's time zone)
    :param source: the batch file (or a folder of daily files) instead of the config's ``scoring.source`` (templated)
    """

    template_fields: Sequence[str] = ("config_path", "day", "source")
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#e6e0f8"

    def __init__(self, *, config_path: str, day: str | None = None, source: str | None = None, **kwargs: Any) -> None:
        super().__init__(config_path=config_path, **kwargs)
        self.day = day
        self.source = source

    def execute(self, context: Context) -> dict:
        from airflow_mlops.core.scoring import BatchValidationFailed, NoChampionError, parse_day, score_day

        config = self.load_config()
        tags = self.run_tags(context, mlops__model=config.model_name)
        with fail_on_bad_input():
            day = parse_day(self.day) if self.day else _scoring_day(context, config)
            self.log.info(
                "Scoring %s's batch of %s (%s)",
                config.name,
                day,
                "the day param" if self.day else "the new-batch event, else the logical date",
            )
            try:
                summary = score_day(
                    config,
                    day,
                    client=self.client,
                    source=self.source or None,
                    tags=tags,
                    writer=task_identity(context),
                )
            except NoChampionError as exc:
                raise AirflowSkipException(str(exc)) from None
            except BatchValidationFailed as exc:
                self._validation_failed(context, config, day, exc)
        self.push_run(context, summary["mlflow_run_id"])
        context["ti"].xcom_push(key="model_name", value=config.model_name)
        context["ti"].xcom_push(key="model_version", value=summary["model_version"])
        extra = {k: summary[k] for k in ("day", "rows", "model_name", "model_version", "path", "data_digest")}
        extra["as_of"] = summary["day"]  # the day convention of the project's Asset events
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        return summary

    def _validation_failed(
        self, context: Context, config: PipelineConfig, day: dt.date, exc: BatchValidationFailed
    ) -> None:
        """Keep the evidence (result JSON, Data Docs) in MLflow, push the failures, fail without retries."""
        import tempfile
        from pathlib import Path

        from airflow_mlops.core import validation
        from airflow_mlops.core.scoring import scoring_experiment
        from airflow_mlops.operators.validation import DataValidationFailed

        report = exc.report
        with tempfile.TemporaryDirectory(prefix="gx-docs-") as tmp:
            docs = validation.write_data_docs(report, Path(tmp)).parent if report.result.get("results") else None
            run_id = validation.log_validation_to_mlflow(
                report,
                docs,
                client=self.client,
                experiment=scoring_experiment(config),
                run_name=f"validate-batch-{day.isoformat()}",
                tags=self.run_tags(context, mlops__step="validate", mlops__model=config.model_name),
            )
        self.push_run(context, run_id)
        failures = [f.as_dict() for f in report.failed]
        context["ti"].xcom_push(key="validation_failures", value=failures)
        raise DataValidationFailed(f"{exc}\nValidation result and Data Docs: MLflow run {run_id}.", failures) from exc


def _scoring_day(context: Context, config: PipelineConfig) -> dt.date:
    """The new-batch event's ``as_of`` (the drift monitor's rule), else the date of the run's logical date in the
    schedule's time zone (a 05:00 run scores that day's batch)."""
    import zoneinfo

    from airflow_mlops.sensors.drift import event_as_of

    day = event_as_of(context)
    if day is not None:
        return day
    when = context.get("logical_date") or context["dag_run"].run_after
    return when.astimezone(zoneinfo.ZoneInfo(config.schedule.timezone)).date()
