"""One drift check: the window ending ``as_of`` against the champion's own training data, judged, debounced, logged.

``check_window`` finds the reference (the champion's training snapshot; no champion: ``NothingToCheck``),
snapshots the monitoring window and gates it with the pipeline's GX suite (broken data is not drift:
``WindowValidationFailed``, with the validation run logged), computes the drift per feature (plus target drift,
and prediction drift of the champion's scores when it can score), debounces it (``monitoring.should_request_retrain``
over ``monitoring.check_history``: N of the last M checks, then a cool-down) and logs the check as one MLflow run
in ``<pipeline>-monitoring``. The sensor only waits for the data and calls it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import monitoring
from airflow_mlops.core.drift.compute import compute_drift
from airflow_mlops.core.drift.evidence import log_drift_check
from airflow_mlops.core.errors import MlopsError, NothingToCheck

if TYPE_CHECKING:
    from pathlib import Path

    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.drift.report import DriftReport
    from airflow_mlops.core.payloads import DriftCheckResult, SnapshotSummary

log = logging.getLogger(__name__)


class WindowValidationFailed(MlopsError):
    """The monitoring window failed its expectation suite: no drift verdict. Carries the failures and the run."""

    def __init__(self, message: str, failures: list[dict], run_id: str) -> None:
        super().__init__(message)
        self.failures = failures
        self.run_id = run_id


@dataclass
class DriftCheck:
    """What one check found and decided (``to_dict()`` is small enough for XCom)."""

    config: PipelineConfig
    as_of: dt.date
    report: DriftReport
    reference: dict
    current: SnapshotSummary
    requested: bool
    reason: str
    run_id: str
    source: str = ""

    def to_dict(self) -> DriftCheckResult:
        report = self.report
        return {
            "drift": bool(report.drift),
            "drift_share": float(report.drift_share),
            "drifted": list(report.drifted),
            "summary": str(report.summary()),
            "requested": self.requested,
            "reason": self.reason,
            "run_id": self.run_id,
            "model_name": self.config.model_name,
            "reference_version": self.reference["version"],
            "reference_digest": self.reference["digest"],
            "current_digest": self.current["digest"],
            "as_of": self.as_of.isoformat(),
            "source": self.source,
        }


def check_window(
    client: MlflowClient,
    config: PipelineConfig,
    as_of: dt.date,
    *,
    source: str | None = None,
    allowed_roots: list[Path] | None = None,
    tags: dict[str, str] | None = None,
    airflow_run_id: str | None = None,
    prediction_drift: bool = True,
) -> DriftCheck:
    """Check the window ending `as_of` for drift against the champion's training data (see the module doc).

    ``tags`` go on every MLflow run the check logs; a check of ``airflow_run_id`` replaces that run's earlier
    try in the debounce. Raises NothingToCheck (no champion), WindowValidationFailed (broken data) and
    MlopsError for bad input.
    """
    reference = monitoring.champion_reference(client, config.model_name)
    if reference is None:
        raise NothingToCheck(
            f"{config.model_name} has no champion yet: there is no training data to compare the window "
            f"ending {as_of} with, so no drift check was made. Train one first ({config.name}_retrain)"
        )
    log.info(
        "Reference: %s v%s, trained on %s (%s)",
        config.model_name,
        reference["version"],
        reference["uri"],
        reference["digest"],
    )
    current, frame = snapshot_and_validate(
        client, config, as_of, source=source, allowed_roots=allowed_roots, tags=tags or {}
    )

    scores = champion_scores(client, config, reference, frame) if prediction_drift else None
    report = compute_drift(
        _local(reference["uri"]),
        frame,
        config,
        features=config.feature_names,
        reference_scores=scores[0] if scores else None,
        current_scores=scores[1] if scores else None,
    )
    log.info("%s", report.summary())
    log.info("\n%s", report.table())

    mon = config.monitoring
    now = dt.datetime.now(dt.UTC)
    experiment = monitoring.monitoring_experiment(config)
    past = monitoring.check_history(
        client, experiment, config.model_name, max(mon.of_last_checks, 50), reference_version=reference["version"]
    )
    past = [h for h in past if h.get("airflow_run_id") != airflow_run_id]  # a retried check replaces its earlier try
    requested, reason = monitoring.should_request_retrain(
        [*past, {"at": now, "drift": bool(report.drift), "requested": False}],
        now=now,
        confirm_checks=mon.confirm_checks,
        of_last_checks=mon.of_last_checks,
        cooldown_hours=mon.cooldown_hours,
    )
    run_id = log_drift_check(
        client,
        report,
        experiment=experiment,
        run_name=f"drift-{as_of.isoformat()}",
        tags={**(tags or {}), "mlops.model": config.model_name, "drift.as_of": as_of.isoformat()},
        reference=reference,
        current=current,
        requested=requested,
        reason=reason,
        params={
            "window_days": mon.window_days,
            "window_start": current.get("window_start"),
            "window_end": current.get("window_end"),
            "alpha": mon.alpha,
            "psi_threshold": mon.psi_threshold,
            "js_threshold": mon.js_threshold,
            "drift_share_threshold": mon.drift_share,
            "rows.current": current.get("rows"),
        },
        checked_at=now,
    )
    log.info(
        "Verdict: %s; retrain %s: %s (MLflow run %s)",
        "DRIFT" if report.drift else "no drift",
        "REQUESTED" if requested else "not requested",
        reason,
        run_id,
    )
    return DriftCheck(
        config=config,
        as_of=as_of,
        report=report,
        reference=reference,
        current=current,
        requested=requested,
        reason=reason,
        run_id=run_id,
        source=source or "",
    )


def snapshot_and_validate(
    client: MlflowClient,
    config: PipelineConfig,
    as_of: dt.date,
    *,
    source: str | None = None,
    allowed_roots: list[Path] | None = None,
    tags: dict[str, str],
) -> tuple[SnapshotSummary, Any]:
    """Snapshot the monitoring window and gate it with the GX suite: broken data is reported as broken."""
    import tempfile
    from pathlib import Path

    from airflow_mlops.core import validation
    from airflow_mlops.core.data import read_snapshot

    suite = str(config.resolve(config.expectation_suite))
    current = monitoring.snapshot_window(config, as_of, source=source, allowed_roots=allowed_roots)
    frame = read_snapshot(current["uri"])
    log.info(
        "Window %s..%s: %d rows from %d file(s) -> %s (%s); validating with %s",
        current["window_start"],
        current["window_end"],
        current["rows"],
        current["files"],
        current["uri"],
        current["digest"],
        suite,
    )
    report = validation.validate_frame(frame, suite, data_name=f"{config.name} window ending {as_of}")
    if report.success:
        log.info("All %d expectations passed", report.evaluated)
        return current, frame
    with tempfile.TemporaryDirectory(prefix="gx-docs-") as tmp:
        docs = validation.write_data_docs(report, Path(tmp))
        run_id = validation.log_validation_to_mlflow(
            report,
            docs.parent,
            client=client,
            experiment=monitoring.monitoring_experiment(config),
            run_name=f"validate-window-{as_of.isoformat()}",
            tags={**tags, "data.digest": current["digest"], "mlops.step": "validate", "mlops.model": config.model_name},
        )
    failures = [f.as_dict() for f in report.failed]
    raise WindowValidationFailed(
        f"The monitoring window ending {as_of} is broken, so no drift verdict was made (broken data is "
        f"not drift; snapshot kept at {current['uri']}):\n"
        + validation.describe_failures(report)
        + f"\nValidation result and Data Docs: MLflow run {run_id}.",
        failures,
        run_id,
    )


def champion_scores(client: MlflowClient, config: PipelineConfig, reference: dict, frame: Any) -> list[Any] | None:
    """The champion's scores on both windows (prediction drift); None, with a warning, if it cannot score."""
    from airflow_mlops.core.data import read_snapshot

    reference_frame = read_snapshot(_local(reference["uri"]))
    try:
        return monitoring.champion_scores(client, config, reference, [reference_frame, frame])
    except Exception as exc:  # the feature verdict does not need it
        log.warning(
            "No prediction drift: the champion v%s cannot score the windows (%s: %s)",
            reference["version"],
            type(exc).__name__,
            exc,
        )
        return None


def _local(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri
