"""DriftSensor: wait (deferred) for the current window's data, then judge drift against the champion's data."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException

from airflow_mlops.links import MlflowRunLink
from airflow_mlops.operators.base import DEFAULT_MLFLOW_CONN_ID, MlopsBaseOperator, fail_on_bad_input

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from airflow.sdk import Context

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.payloads import DriftCheckResult

#: Extra time Airflow gives the trigger beyond its own deadline, so the trigger's clear timeout event wins.
DEFER_GRACE_S = 120.0


class DriftSensor(BaseSensorOperator, MlopsBaseOperator):
    """Wait for the window ending `as_of` to land, then compare it with the champion's training data.

    Pokes once (is the `as_of` day's file there and non-empty?). If not, defers to a
    `DataWindowTrigger` (deferrable, the default) or reschedules itself (``deferrable=False``);
    the statistics always run on a worker, never in the triggerer. Then: reference = the champion's
    own training snapshot (no champion: skipped), current = the monitoring window snapshotted and
    validated with the pipeline's GX suite (broken data fails the task: it is not drift), drift per
    feature (plus target drift, and prediction drift of the champion's scores), debounce (N of the last M checks, cool-down), evidence logged to MLflow
    (``<pipeline>-monitoring``). Returns {drift, drift_share, drifted, summary, requested, reason,
    run_id, reference_version, ...}.

    :param config_path: pipeline config YAML (templated)
    :param source: overrides the config's source: a folder of daily files or one file (templated)
    :param as_of: last day of the window, YYYY-MM-DD (templated); default: the day a triggering
        Asset event names in its extra (``as_of``), else the day before the run's date (the last complete day)
    :param deferrable: defer to the triggerer while waiting (default); else ``mode='reschedule'``
    :param allowed_roots: folders the source must live in; default: the config's (``source.allowed_roots``,
        ``$AIRFLOW_MLOPS_DATA_ROOTS``; never the state folder ``$AIRFLOW_MLOPS_HOME``)
    :param prediction_drift: also compare the champion's scores on both windows (loads the model)
    """

    template_fields: Sequence[str] = ("config_path", "source", "as_of")
    operator_extra_links = (MlflowRunLink(),)
    ui_color = "#fbe3e8"

    def __init__(
        self,
        *,
        config_path: str,
        source: str | None = None,
        as_of: str | None = None,
        mlflow_conn_id: str = DEFAULT_MLFLOW_CONN_ID,
        deferrable: bool = True,
        allowed_roots: list[str] | None = None,
        prediction_drift: bool = True,
        poke_interval: float = 300,
        timeout: float = 12 * 3600,
        **kwargs: Any,
    ) -> None:
        if not deferrable:
            kwargs.setdefault("mode", "reschedule")
        super().__init__(
            config_path=config_path,
            mlflow_conn_id=mlflow_conn_id,
            poke_interval=poke_interval,
            timeout=timeout,
            **kwargs,
        )
        self.source = source
        self.as_of = as_of
        self.deferrable = deferrable
        self.allowed_roots = allowed_roots
        self.prediction_drift = prediction_drift

    # ------------------------------------------------------------------ waiting

    def execute(self, context: Context) -> DriftCheckResult:
        if not self.deferrable:
            try:
                super().execute(context)  # pokes; in reschedule mode frees the worker between pokes
            except AirflowSensorTimeout:
                raise AirflowSensorTimeout(self._no_data_message(context, self.timeout)) from None
            return self._check(context)
        if self.poke(context):
            return self._check(context)
        config, as_of = self._config(), self._as_of_day(context)
        from airflow_mlops.core.monitoring import window_pattern

        pattern = window_pattern(config, as_of, source=self.source or None)
        now = time.time()
        self.log.info(
            "No data for %s yet (%s): deferring, looking every %g s for up to %g s",
            as_of,
            pattern,
            self.poke_interval,
            self.timeout,
        )
        from airflow_mlops.triggers.data_window import DataWindowTrigger  # triggerer code: not at parse time

        self.defer(
            trigger=DataWindowTrigger(
                pattern=pattern, poke_interval=self.poke_interval, deadline=now + self.timeout, started_at=now
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=self.timeout + max(DEFER_GRACE_S, 2 * self.poke_interval)),
        )

    def poke(self, context: Context) -> bool:
        """Is the window's last day there (a non-empty file)? Cheap: nothing is read."""
        from airflow_mlops.core.monitoring import window_available, window_pattern

        config, as_of = self._config(), self._as_of_day(context)
        with fail_on_bad_input():  # a source outside the allowed folders: refused, never waited for
            found = window_available(config, as_of, source=self.source or None, allowed_roots=self._roots())
        self.log.info(
            "Data for %s (%s): %s",
            as_of,
            window_pattern(config, as_of, source=self.source or None),
            "present" if found else "not yet",
        )
        return found

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> DriftCheckResult:
        """Resume after the trigger: a timeout or an error fails the task (never a verdict); data -> check."""
        status = (event or {}).get("status")
        if status == "success":
            self.log.info("Data landed: %s (waited %s s)", event.get("path"), event.get("waited_s"))  # type: ignore[union-attr]
            return self._check(context)
        if status == "timeout":
            raise AirflowSensorTimeout(self._no_data_message(context, (event or {}).get("waited_s", self.timeout)))
        message = (event or {}).get("message") or f"unexpected trigger event {event!r}"
        raise AirflowException(f"Waiting for the window's data failed: {message}. No drift verdict was made")

    def _no_data_message(self, context: Context, waited_s: Any) -> str:
        from airflow_mlops.core.monitoring import window_pattern

        config, as_of = self._config(), self._as_of_day(context)
        path = config.resolve(self.source or config.source.path)
        return (
            f"no data for {as_of.isoformat()} in {path} after {float(waited_s):.0f} s "
            f"(looked for a non-empty {window_pattern(config, as_of, source=self.source or None)}). "
            f"No drift verdict was made: check that the upstream export ran, or pass as_of"
        )

    # ------------------------------------------------------------------ checking

    def _check(self, context: Context) -> DriftCheckResult:
        """The drift check itself (core.drift.check): a skip without a champion, a failure on broken data."""
        from airflow_mlops.core.drift.check import WindowValidationFailed, check_window
        from airflow_mlops.core.errors import NothingToCheck
        from airflow_mlops.operators.validation import DataValidationFailed

        config, as_of = self._config(), self._as_of_day(context)
        with fail_on_bad_input():
            try:
                check = check_window(
                    self.client,
                    config,
                    as_of,
                    source=self.source or None,
                    allowed_roots=self._roots(),
                    tags=self.run_tags(context),
                    airflow_run_id=context["ti"].run_id,
                    prediction_drift=self.prediction_drift,
                )
            except NothingToCheck as exc:
                raise AirflowSkipException(str(exc)) from None
            except WindowValidationFailed as exc:
                self.push_run(context, exc.run_id)
                context["ti"].xcom_push(key="validation_failures", value=exc.failures)
                raise DataValidationFailed(str(exc), exc.failures) from None
        self.push_run(context, check.run_id)
        return check.to_dict()

    # ------------------------------------------------------------------ helpers

    def _config(self) -> PipelineConfig:
        """The pipeline config (estimators are not imported: the sensor trains nothing)."""
        cached = getattr(self, "_pipeline_config", None)
        if cached is None:
            from airflow_mlops.core.config import load_config

            with fail_on_bad_input():
                cached = load_config(self.config_path, check_estimators=False)
            self._pipeline_config = cached
        return cached

    def _roots(self) -> list[Path] | None:
        """The folders the source must live in: this sensor's `allowed_roots`, else the config's (None)."""
        from pathlib import Path

        return [Path(r) for r in self.allowed_roots] if self.allowed_roots else None

    def _as_of_day(self, context: Context) -> dt.date:
        if self.as_of:
            try:
                return dt.date.fromisoformat(str(self.as_of).strip()[:10])
            except ValueError:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(f"as_of={self.as_of!r} is not a date: use YYYY-MM-DD") from None
        return default_as_of(context)


def default_as_of(context: Context) -> dt.date:
    """The day a triggering Asset event names (extra ``as_of``), else the day before the run's date."""
    day = event_as_of(context)
    if day is not None:
        return day
    when = context.get("logical_date") or context["dag_run"].run_after
    return when.date() - dt.timedelta(days=1)


def event_as_of(context: Context) -> dt.date | None:
    """The latest day the triggering Asset events name in their extra (``as_of``: a new-batch event), else None."""
    events = context.get("triggering_asset_events") or {}
    days = []
    for asset in events:
        for event in events[asset]:
            value = (getattr(event, "extra", None) or {}).get("as_of")
            if value:
                try:
                    days.append(dt.date.fromisoformat(str(value)[:10]))
                except ValueError:
                    continue
    return max(days) if days else None
