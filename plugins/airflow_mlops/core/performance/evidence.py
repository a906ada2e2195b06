"""A performance check's evidence in MLflow, and the per-day table read back from it.

Each check is one run in ``<pipeline>-monitoring`` tagged ``mlops.step=performance``, the day, the
champion version judged and the verdict, with the join counts and the realized metrics as metrics and,
as artifacts: ``performance/days.csv`` and ``days.json`` (the per-day table up to this day),
``performance/check.json`` (every count, every version's metrics, the promise), ``performance/summary.txt``
and ``performance/realized_<metric>.png`` (the realized metric over the days, its intervals, the promise).
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import monitoring, reports, tracking
from airflow_mlops.core.filters import quote_filter_value
from airflow_mlops.core.performance.tags import (
    CHECKED_AT_TAG,
    DAY_TAG,
    JUDGED_TAG,
    METRIC_TAG,
    STEP,
    VERDICT_TAG,
    VERSION_TAG,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.performance.check import DayCheck

#: The per-day table's columns, in order (CSV, the CLI).
TABLE_COLUMNS = (
    "day",
    "version",
    "main_version",
    "rows",
    "predictions",
    "join_rate",
    "metric",
    "realized",
    "low",
    "high",
    "promised",
    "threshold",
    "decay",
    "verdict",
    "requested",
    "checked_at",
    "run_id",
)
#: How many days the table in a check's artifacts (and its plot) goes back.
TABLE_DAYS = 60
_MAX_TAG = 5000


def log_check(client: MlflowClient, check: DayCheck, *, tags: dict[str, str], status: str = "FINISHED") -> str:
    """Log `check` as one MLflow run (FINISHED, or FAILED for a join under min_join_rate); return its id."""
    config = check.config
    experiment_id = tracking.ensure_experiment(client, monitoring.monitoring_experiment(config))
    run_tags = {
        **{k: str(v) for k, v in tags.items()},
        monitoring.STEP_TAG: STEP,
        monitoring.MODEL_TAG: config.model_name,
        DAY_TAG: check.day.isoformat(),
        VERSION_TAG: check.champion_version,
        "performance.main_version": check.join.main_version,
        VERDICT_TAG: "join_failed" if status == "FAILED" else check.judgement.verdict,
        JUDGED_TAG: "true" if check.judgement.judged and status == "FINISHED" else "false",
        METRIC_TAG: check.metric,
        CHECKED_AT_TAG: check.checked_at.isoformat(),
        monitoring.REQUESTED_TAG: "true" if check.requested else "false",
        monitoring.REASON_TAG: check.reason[:_MAX_TAG],
        "performance.summary": (check.reason if status == "FAILED" else check.summary())[:_MAX_TAG],
        "predictions.path": check.predictions_path[:_MAX_TAG],
        "labels.path": check.labels_path[:_MAX_TAG],
        "promise.run_id": check.promise.run_id if check.promise else "",
    }
    tracking.fail_abandoned_runs(client, experiment_id, run_tags)
    run = client.create_run(experiment_id, run_name=f"performance-{check.day.isoformat()}", tags=run_tags)
    run_id = run.info.run_id
    check.run_id = run_id
    try:
        client.log_param(run_id, "tolerance", config.monitoring.performance.tolerance)
        client.log_param(run_id, "min_join_rate", config.monitoring.performance.min_join_rate)
        client.log_param(run_id, "bootstrap_samples", config.monitoring.performance.bootstrap_samples)
        client.log_param(run_id, "positive_class", str(check.positive_class))
        tracking.log_metrics(client, run_id, check_metrics(check))
        table = [
            *[r for r in performance_table(client, config, days=TABLE_DAYS) if r["day"] != check.day.isoformat()],
            check.table_row(),
        ]
        table.sort(key=lambda r: r["day"])
        with tempfile.TemporaryDirectory(prefix="performance-") as tmp:
            folder = Path(tmp)
            write_table(table, folder / "days.csv")
            (folder / "days.json").write_text(json.dumps(table, indent=2, default=str), encoding="utf-8")
            (folder / "check.json").write_text(
                json.dumps(reports.json_safe(check.to_dict()), indent=2, default=str), encoding="utf-8"
            )
            (folder / "summary.txt").write_text(
                f"{check.summary() if status == 'FINISHED' else 'JOIN FAILED'}\n\n{check.join.describe()}\n\n"
                f"judgement: {check.judgement.reason}\nretrain requested: {'yes' if check.requested else 'no'} "
                f"({check.reason})\nclasses from: {check.classes_from or 'n/a'}\n\n{format_table(table)}\n",
                encoding="utf-8",
            )
            if status == "FINISHED":
                reports.performance_plot(
                    table,
                    folder / f"realized_{check.metric}.png",
                    metric=check.metric,
                    tolerance=config.monitoring.performance.tolerance,
                )
            client.log_artifacts(run_id, tmp, "performance")
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status=status)
    return run_id


def check_metrics(check: DayCheck) -> dict[str, float]:
    """The run's metrics: join counts, the judged version's realized metrics and interval, the promise, the verdict;
    every other version's realized metrics as ``v<version>.<metric>``."""
    counts = check.join.counts()
    out: dict[str, Any] = {f"join.{k}": v for k, v in counts.items() if isinstance(v, int | float)}
    out["join_rate"] = check.join.join_rate
    out["predictions"] = check.join.predictions
    judged = check.judged_metrics
    shown = judged or check.realized.get(check.join.main_version)
    if shown is not None:
        out["rows"] = shown.rows
        out["realized"] = shown.value
        out["realized.low"] = shown.low
        out["realized.high"] = shown.high
        out.update({f"realized.{k}": v for k, v in shown.metrics.items()})
    out["promised"] = check.judgement.promised
    out["threshold"] = check.judgement.threshold
    out["decay"] = float(check.judgement.judged and check.judgement.decay)
    for version, realized in check.realized.items():
        if realized is not shown:
            out[f"v{version}.rows"] = realized.rows
            out.update({f"v{version}.{k}": v for k, v in realized.metrics.items()})
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


# --------------------------------------------------------------------------- reading back


def performance_table(
    client: MlflowClient,
    config: PipelineConfig,
    *,
    days: int | None = None,
    version: str | None = None,
    experiment_id: str | None = None,
) -> list[dict[str, Any]]:
    """The per-day table from the finished checks, oldest day first: the latest check of each day.

    `days`: only the last N days checked; `version`: only days judged for that champion version;
    `experiment_id`: the monitoring experiment's, when the caller has looked it up already.
    """
    if experiment_id is None:
        exp = client.get_experiment_by_name(monitoring.monitoring_experiment(config))
        if exp is None:
            return []
        experiment_id = exp.experiment_id
    filters = [
        f"tags.`{monitoring.STEP_TAG}` = '{STEP}'",
        f"tags.`{monitoring.MODEL_TAG}` = {quote_filter_value(config.model_name)}",
        "attributes.status = 'FINISHED'",
    ]
    if version is not None:
        filters.append(f"tags.`{VERSION_TAG}` = {quote_filter_value(str(version))}")
    limit = (days or 1000) * 3 + 10
    runs = client.search_runs(
        [experiment_id],
        filter_string=" and ".join(filters),
        order_by=["attributes.start_time DESC"],
        max_results=min(limit, 5000),
    )
    latest: dict[str, dict[str, Any]] = {}
    for run in runs:
        day = run.data.tags.get(DAY_TAG)
        if day and day not in latest:
            latest[day] = _row(run)
    rows = sorted(latest.values(), key=lambda r: r["day"])
    return rows[-days:] if days else rows


def _row(run: Any) -> dict[str, Any]:
    tags, metrics = run.data.tags, run.data.metrics
    verdict = tags.get(VERDICT_TAG, "")

    def metric(key: str) -> float | None:
        return metrics.get(key)

    rows = metric("rows")
    return {
        "day": tags.get(DAY_TAG),
        "version": tags.get(VERSION_TAG),
        "main_version": tags.get("performance.main_version"),
        "rows": int(rows) if rows is not None else None,
        "predictions": int(metrics["predictions"]) if "predictions" in metrics else None,
        "join_rate": metric("join_rate"),
        "metric": tags.get(METRIC_TAG),
        "realized": metric("realized"),
        "low": metric("realized.low"),
        "high": metric("realized.high"),
        "promised": metric("promised"),
        "threshold": metric("threshold"),
        "decay": {"decay": "yes", "no_decay": "no"}.get(verdict, "-"),
        "verdict": verdict,
        "requested": tags.get(monitoring.REQUESTED_TAG) == "true",
        "checked_at": tags.get(CHECKED_AT_TAG),
        "run_id": run.info.run_id,
    }


def realized_summary(
    client: MlflowClient, config: PipelineConfig, version: str, *, days: int = 7, experiment_id: str | None = None
) -> dict | None:
    """The champion's realized primary metric over its last `days` labelled days, beside its promise; None
    when it has no performance check yet. For ``airflow-mlops status``: one MLflow search."""
    rows = [
        r
        for r in performance_table(client, config, days=days, version=version, experiment_id=experiment_id)
        if r.get("realized") is not None
    ]
    if not rows:
        return None
    last = rows[-1]
    values = [float(r["realized"]) for r in rows]
    return {
        "version": str(version),
        "metric": last.get("metric") or config.metrics.primary,
        "days": len(rows),
        "first_day": rows[0]["day"],
        "last_day": last["day"],
        "mean": sum(values) / len(values),
        "latest": last["realized"],
        "latest_low": last.get("low"),
        "latest_high": last.get("high"),
        "promised": next((r["promised"] for r in reversed(rows) if r.get("promised") is not None), None),
        "decay_days": sum(1 for r in rows if r.get("decay") == "yes"),
        "judged_days": sum(1 for r in rows if r.get("decay") in ("yes", "no")),
    }


def describe_summary(summary: dict) -> str:
    """E.g. "realized roc_auc 0.6512 [0.5980, 0.7031] on 2026-03-03 (mean 0.6800 over 3 labelled days ...)"."""
    interval = (
        f" [{summary['latest_low']:.4f}, {summary['latest_high']:.4f}]"
        if summary.get("latest_low") is not None and summary.get("latest_high") is not None
        else ""
    )
    promised = f"{summary['promised']:.4f}" if summary.get("promised") is not None else "unknown"
    return (
        f"realized {summary['metric']} {summary['latest']:.4f}{interval} on {summary['last_day']} (mean "
        f"{summary['mean']:.4f} over {summary['days']} labelled day(s) {summary['first_day']}..{summary['last_day']}"
        f"; decay on {summary['decay_days']} of {summary['judged_days']} judged); promised {promised}"
    )


# --------------------------------------------------------------------------- formats


def write_table(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(TABLE_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def format_table(rows: list[dict[str, Any]]) -> str:
    """The per-day table as text: day, version, rows, join rate, realized with interval, promised, decay."""
    head = ["DAY", "VERSION", "ROWS", "JOIN RATE", "REALIZED", "PROMISED", "DECAY", "RETRAIN"]
    cells = []
    for r in rows:
        realized = "-" if r.get("realized") is None else f"{r['realized']:.4f}"
        if r.get("low") is not None and r.get("high") is not None:
            realized += f" [{r['low']:.4f}, {r['high']:.4f}]"
        metric = f"{r.get('metric') or ''} "
        cells.append(
            [
                str(r.get("day")),
                f"v{r.get('version')}"
                + (
                    f" (scored by v{r['main_version']})"
                    if r.get("main_version") not in (None, r.get("version"))
                    else ""
                ),
                "-" if r.get("rows") is None else f"{r['rows']:,}",
                "-" if r.get("join_rate") is None else f"{r['join_rate']:.1%}",
                metric + realized,
                "-" if r.get("promised") is None else f"{r['promised']:.4f}",
                str(r.get("decay") or "-"),
                "requested" if r.get("requested") else "-",
            ]
        )
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)
