"""A drift check's evidence in MLflow: its metrics per feature and one FINISHED run with the HTML report."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import tracking
from airflow_mlops.core.monitoring import (
    CHECKED_AT_TAG,
    REASON_TAG,
    REFERENCE_DIGEST_TAG,
    REFERENCE_VERSION_TAG,
    REQUESTED_TAG,
    STEP,
    STEP_TAG,
    VERDICT_TAG,
    aware_utc,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from airflow_mlops.core.drift import DriftReport
    from airflow_mlops.core.payloads import SnapshotSummary

_MAX_TAG_VALUE = 5000
_METRIC_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-./ ]")


def drift_metrics(report: DriftReport) -> dict[str, float]:
    """Metrics of a report: per feature ``psi|js.<f>``, ``ks|chi2.<f>``, ``p.<f>``, ``p_adj.<f>``, ``drifted.<f>``.

    Prediction and target drift (when computed) as ``prediction.<metric>`` and ``target.<metric>``.
    """
    metrics: dict[str, float] = {
        "drift": float(bool(report.drift)),
        "drift_share": float(report.drift_share),
        "n_drifted": float(len(report.drifted)),
        "n_features": float(len(report.features)),
    }
    for f in report.features:
        name = _metric_name(f.name)
        effect_name = _metric_name(str(f.effect_name or "effect"))
        stat_name = _metric_name(str(getattr(f, "statistic_name", None) or "stat"))
        _put_finite(
            metrics,
            {
                f"{effect_name}.{name}": f.effect,
                f"{stat_name}.{name}": f.statistic,
                f"p.{name}": f.p_value,
                f"p_adj.{name}": f.p_adjusted,
                f"drifted.{name}": float(bool(f.drifted)),
            },
        )
    for label in ("prediction", "target"):
        extra = getattr(report, label, None)
        if extra is None:
            continue
        stat_name = _metric_name(str(getattr(extra, "statistic_name", None) or "stat"))
        _put_finite(
            metrics,
            {
                f"{label}.{_metric_name(str(extra.effect_name))}": extra.effect,
                f"{label}.{stat_name}": extra.statistic,
                f"{label}.p": extra.p_value,
                f"{label}.drifted": float(bool(extra.drifted)),
            },
        )
    return metrics


def log_drift_check(
    client: MlflowClient,
    report: DriftReport,
    *,
    experiment: str,
    run_name: str,
    tags: dict[str, str],
    reference: dict,
    current: SnapshotSummary,
    requested: bool,
    reason: str,
    params: dict[str, Any] | None = None,
    checked_at: dt.datetime | None = None,
) -> str:
    """Log one drift check as a FINISHED MLflow run; return its id.

    Metrics per feature (see ``drift_metrics``), tags (``mlops.step=drift``, ``drift.verdict``,
    ``retrain.requested``, reference/current digests), artifacts: ``drift/drift_report.html`` with
    its PNGs, ``drift/report.json``, ``drift/summary.txt``.
    """
    from airflow_mlops.core.drift import drift_report_html

    checked_at = aware_utc(checked_at or dt.datetime.now(dt.UTC))
    run_tags = {
        **{k: str(v) for k, v in tags.items()},
        STEP_TAG: STEP,
        VERDICT_TAG: "drift" if report.drift else "no_drift",
        REQUESTED_TAG: "true" if requested else "false",
        REASON_TAG: reason[:_MAX_TAG_VALUE],
        CHECKED_AT_TAG: checked_at.isoformat(),
        REFERENCE_VERSION_TAG: str(reference.get("version", "")),
        REFERENCE_DIGEST_TAG: str(reference.get("digest", "")),
        "reference.run_id": str(reference.get("run_id", "")),
        "reference.uri": str(reference.get("uri", ""))[:_MAX_TAG_VALUE],
        "current.digest": str(current.get("digest", "")),
        "current.uri": str(current.get("uri", ""))[:_MAX_TAG_VALUE],
        "drift.drifted": ", ".join(report.drifted)[:_MAX_TAG_VALUE],
        "drift.summary": str(report.summary())[:_MAX_TAG_VALUE],
    }
    experiment_id = tracking.ensure_experiment(client, experiment)
    tracking.fail_abandoned_runs(client, experiment_id, run_tags)  # an earlier try killed mid-check
    run = client.create_run(experiment_id, run_name=run_name, tags=run_tags)
    run_id = run.info.run_id
    try:
        for key, value in (params or {}).items():
            client.log_param(run_id, key, str(value)[:6000])
        tracking.log_metrics(client, run_id, drift_metrics(report))
        client.log_text(run_id, json.dumps(report.to_dict(), indent=2, default=str), "drift/report.json")
        client.log_text(
            run_id,
            f"{report.summary()}\n\n{report.table()}\n\nretrain requested: {'yes' if requested else 'no'} ({reason})\n",
            "drift/summary.txt",
        )
        with tempfile.TemporaryDirectory(prefix="drift-report-") as tmp:
            drift_report_html(report, Path(tmp))  # drift_report.html and its PNGs
            client.log_artifacts(run_id, tmp, "drift")
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def _put_finite(metrics: dict[str, float], values: dict[str, Any]) -> None:
    """Add the values that are finite numbers (MLflow metrics cannot hold None or NaN)."""
    for key, value in values.items():
        if value is not None and math.isfinite(float(value)):
            metrics[key] = float(value)


def _metric_name(name: str) -> str:
    return _METRIC_KEY_BAD.sub("_", name)[:200] or "_"
