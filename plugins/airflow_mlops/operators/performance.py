"""PerformanceCheckOperator: judge the champion on one day's delayed labels (the logic is core.performance)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_mlops.links import MlflowRunLink
from airflow_mlops.operators.base import MlopsBaseOperator, fail_on_bad_input

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_mlops.core.config import PipelineConfig


class PerformanceCheckOperator(MlopsBaseOperator):
    """Join the predictions of a day with its labels, compute the realized metrics, judge decay, debounce.

    Skips (with the reason) when there is no champion or the day's labels have not arrived; fails for bad
    input (labels for a future day or for a day never scored, unknown classes, missing columns) and for a
    join under ``monitoring.performance.min_join_rate`` (the message has every count). Returns a small dict
    for ``RequestRetrainOperator``: {requested, reason, summary, trigger: "performance", day, realized, ...}.

    :param config_path: pipeline config YAML (templated)
    :param as_of: the day whose labels to check, YYYY-MM-DD (templated); default: the run's day minus
        ``scoring.label_delay_days``
    :param source: the labels file (or folder) to read instead of the config's ``scoring.labels`` (templated)
    :param allowed_roots: folders the labels may live in; default: the config's (``source.allowed_roots``,
        ``$AIRFLOW_MLOPS_DATA_ROOTS``; never the state folder ``$AIRFLOW_MLOPS_HOME``)
    """

    template_fields: Sequence[str] = ("config_path", "as_of", "source")
    operator_extra_links = (MlflowRunLink(),)
    ui_color = "#e3f0e0"

    def __init__(
        self,
        *,
        config_path: str,
        as_of: str | None = None,
        source: str | None = None,
        allowed_roots: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_path=config_path, **kwargs)
        self.as_of = as_of
        self.source = source
        self.allowed_roots = allowed_roots

    def execute(self, context: Context) -> dict:
        from pathlib import Path

        from airflow_mlops.core import performance
        from airflow_mlops.core.config import load_config
        from airflow_mlops.core.errors import NothingToCheck, PerformanceError

        with fail_on_bad_input():
            config = self._pipeline_config = load_config(self.config_path, check_estimators=False)
        day = self._day(context, config)
        roots = [Path(r) for r in self.allowed_roots] if self.allowed_roots else None
        self.log.info(
            "Checking the labels of %s (%s) against its predictions (%s)",
            day,
            self.source or config.scoring.labels,
            performance.predictions_path(config, day),
        )
        try:
            check = performance.check_day(
                self.client,
                config,
                day,
                labels_source=self.source or None,
                allowed_roots=roots,
                tags=self.run_tags(context, mlops__model=config.model_name),
            )
        except NothingToCheck as exc:
            raise AirflowSkipException(f"No performance check for {day}: {exc}") from None
        except PerformanceError as exc:
            run_id = getattr(exc, "run_id", None)
            if run_id:
                self.push_run(context, run_id)
            raise AirflowFailException(str(exc)) from exc
        self.push_run(context, check.run_id)
        self.log.info("%s", check.summary())
        self.log.info("Join: %s", check.join.describe())
        self.log.info(
            "Retrain %s: %s (MLflow run %s)",
            "REQUESTED" if check.requested else "not requested",
            check.reason,
            check.run_id,
        )
        row = check.table_row()
        return {
            "requested": check.requested,
            "reason": check.reason,
            "summary": check.summary(),
            "trigger": "performance",
            "run_id": check.run_id,
            "model_name": config.model_name,
            "reference_version": check.champion_version,
            "day": row["day"],
            "as_of": row["day"],  # a retrain trains on the data up to the newest labelled day ...
            "source": "",  # ... from the config's training source
            "metric": row["metric"],
            "realized": row["realized"],
            "ci_low": row["low"],
            "ci_high": row["high"],
            "promised": row["promised"],
            "threshold": row["threshold"],
            "decay": row["decay"],
            "join": check.join.counts(),
        }

    def _day(self, context: Context, config: PipelineConfig) -> dt.date:
        import datetime as dt

        from airflow_mlops.core.performance import default_day

        if self.as_of:
            try:
                return dt.date.fromisoformat(str(self.as_of).strip()[:10])
            except ValueError:
                raise AirflowFailException(f"as_of={self.as_of!r} is not a date: use YYYY-MM-DD") from None
        when = context.get("logical_date") or context["dag_run"].run_after
        return default_day(config, when.date())
