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
            config_path=config_path, mlflow_conn_id=mlflow_conn_id, poke_interval=poke_interval, timeout=timeout,
            **kwargs,
        )
        self.source = source
        self.as_of = as_of
        self.deferrable = deferrable
        self.allowed_roots = allowed_roots
        self.prediction_drift = prediction_drift

    # ------------------------------------------------------------------ waiting

    def execute(self, context: Context) -> dict:
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
        self.log.info("No data for %s yet (%s): deferring, looking every %g s for up to %g s",
                      as_of, pattern, self.poke_interval, self.timeout)
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
        self.log.info("Data for %s (%s): %s", as_of, window_pattern(config, as_of, source=self.source or None),
                      "present" if found else "not yet")
        return found

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict:
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

    def _check(self, context: Context) -> dict:
        from airflow_mlops.core import monitoring
        from airflow_mlops.core.drift import compute_drift

        config, as_of = self._config(), self._as_of_day(context)
        client = self.client
        with fail_on_bad_input():
            reference = monitoring.champion_reference(client, config.model_name)
        if reference is None:
            raise AirflowSkipException(
                f"{config.model_name} has no champion yet: there is no training data to compare the window "
                f"ending {as_of} with, so no drift check was made. Train one first (churn_retrain)"
            )
        self.log.info("Reference: %s v%s, trained on %s (%s)", config.model_name, reference["version"],
                      reference["uri"], reference["digest"])
        current, frame = self._snapshot_and_validate(context, config, as_of)

        scores = self._champion_scores(config, reference, frame)
        with fail_on_bad_input():
            report = compute_drift(
                _local(reference["uri"]), frame, config, features=config.feature_names,
                reference_scores=scores[0] if scores else None, current_scores=scores[1] if scores else None,
            )
        self.log.info("%s", report.summary())
        self.log.info("\n%s", report.table())

        mon = config.monitoring
        now = dt.datetime.now(dt.UTC)
        experiment = monitoring.monitoring_experiment(config)
        ti = context["ti"]
        past = monitoring.check_history(
            client, experiment, config.model_name, max(mon.of_last_checks, 50), reference_version=reference["version"]
        )
        past = [h for h in past if h.get("airflow_run_id") != ti.run_id]  # a retried check replaces its earlier try
        requested, reason = monitoring.should_request_retrain(
            [*past, {"at": now, "drift": bool(report.drift), "requested": False}],
            now=now, confirm_checks=mon.confirm_checks, of_last_checks=mon.of_last_checks,
            cooldown_hours=mon.cooldown_hours,
        )
        run_id = monitoring.log_drift_check(
            client, report,
            experiment=experiment,
            run_name=f"drift-{as_of.isoformat()}",
            tags=self.run_tags(context, mlops__model=config.model_name, drift__as_of=as_of.isoformat()),
            reference=reference, current=current, requested=requested, reason=reason,
            params={"window_days": mon.window_days, "window_start": current.get("window_start"),
                    "window_end": current.get("window_end"), "alpha": mon.alpha,
                    "psi_threshold": mon.psi_threshold, "js_threshold": mon.js_threshold,
                    "drift_share_threshold": mon.drift_share, "rows.current": current.get("rows")},
            checked_at=now,
        )
        self.push_run(context, run_id)
        self.log.info("Verdict: %s; retrain %s: %s (MLflow run %s)", "DRIFT" if report.drift else "no drift",
                      "REQUESTED" if requested else "not requested", reason, run_id)
        return {
            "drift": bool(report.drift),
            "drift_share": float(report.drift_share),
            "drifted": list(report.drifted),
            "summary": str(report.summary()),
            "requested": requested,
            "reason": reason,
            "run_id": run_id,
            "model_name": config.model_name,
            "reference_version": reference["version"],
            "reference_digest": reference["digest"],
            "current_digest": current["digest"],
            "as_of": as_of.isoformat(),
            "source": self.source or "",
        }

    def _snapshot_and_validate(self, context: Context, config: PipelineConfig, as_of: dt.date) -> tuple[dict, Any]:
        """Snapshot the monitoring window and gate it with the GX suite: broken data is reported as broken."""
        import tempfile
        from pathlib import Path

        from airflow_mlops.core import monitoring, validation
        from airflow_mlops.core.data import read_snapshot
        from airflow_mlops.operators.validation import DataValidationFailed

        suite = str(config.resolve(config.expectation_suite))
        with fail_on_bad_input():
            current = monitoring.snapshot_window(
                config, as_of, source=self.source or None, allowed_roots=self._roots()
            )
            frame = read_snapshot(current["uri"])
            self.log.info("Window %s..%s: %d rows from %d file(s) -> %s (%s); validating with %s",
                          current["window_start"], current["window_end"], current["rows"], current["files"],
                          current["uri"], current["digest"], suite)
            report = validation.validate_frame(frame, suite, data_name=f"{config.name} window ending {as_of}")
        if report.success:
            self.log.info("All %d expectations passed", report.evaluated)
            return current, frame
        with tempfile.TemporaryDirectory(prefix="gx-docs-") as tmp:
            docs = validation.write_data_docs(report, Path(tmp))
            run_id = validation.log_validation_to_mlflow(
                report, docs.parent, client=self.client, experiment=monitoring.monitoring_experiment(config),
                run_name=f"validate-window-{as_of.isoformat()}",
                tags=self.run_tags(context, data__digest=current["digest"], mlops__step="validate",
                                   mlops__model=config.model_name),
            )
        self.push_run(context, run_id)
        failures = [f.as_dict() for f in report.failed]
        context["ti"].xcom_push(key="validation_failures", value=failures)
        raise DataValidationFailed(
            f"The monitoring window ending {as_of} is broken, so no drift verdict was made (broken data is "
            f"not drift; snapshot kept at {current['uri']}):\n" + validation.describe_failures(report)
            + f"\nValidation result and Data Docs: MLflow run {run_id}.",
            failures,
        )

    def _champion_scores(self, config: PipelineConfig, reference: dict, frame: Any) -> list[Any] | None:
        """The champion's scores on both windows (prediction drift); None, with a warning, if it cannot score."""
        if not self.prediction_drift:
            return None
        from airflow_mlops.core import monitoring
        from airflow_mlops.core.data import read_snapshot

        with fail_on_bad_input():
            reference_frame = read_snapshot(_local(reference["uri"]))
        try:
            return monitoring.champion_scores(self.client, config, reference, [reference_frame, frame])
        except Exception as exc:  # the feature verdict does not need it
            self.log.warning("No prediction drift: the champion v%s cannot score the windows (%s: %s)",
                             reference["version"], type(exc).__name__, exc)
            return None

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


def _local(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri
