"""The evaluation's evidence: verdict.json, metric table, plots, HTML, test_rows.parquet, one MLflow run."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import reports, rows, tracking
from airflow_mlops.core.evaluation import power
from airflow_mlops.core.evaluation.page import evaluation_html
from airflow_mlops.core.evaluation.panels import plot_panels

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlflow import MlflowClient

    from airflow_mlops.core.evaluation.gate import EvaluationResult

log = logging.getLogger(__name__)

#: `decision.reasons` is cut to this many characters: well inside MLflow's tag limits on every backend.
REASONS_TAG_LIMIT = 5000
#: A panel's one-line summary as a version tag (`evaluation.slices`, ...) is cut to this many characters.
PANEL_TAG_LIMIT = 250
#: What an MLflow metric name cannot hold (a class label becomes part of one).
_METRIC_UNSAFE = re.compile(r"[^\w.\- /]")


def write_artifacts(result: EvaluationResult, folder: str | Path) -> list[Path]:
    """verdict.json, metrics.json, the PNG plots, report.html and test_rows.parquet, written into `folder`.

    test_rows.parquet holds the hash (and date) of every test row and whether it was scored or
    excluded as the champion's: with the champion's training_rows.parquet, the verdict can be
    re-checked from MLflow alone (``airflow-mlops audit``).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    config = result.config
    written = []
    if result.n_rows == 0:
        pass  # too few test rows to score (thin evidence): nothing to plot
    elif config.is_classification:
        scores = {"challenger": result.challenger_scores}
        if result.champion_scores is not None:
            scores["champion"] = result.champion_scores
        written.append(
            reports.roc_plot(
                result.y_true, scores, result.labels or [], out / "roc.png", positive=result.positive_class
            )
        )
    else:
        preds = {"challenger": result.challenger_scores}
        if result.champion_scores is not None:
            preds["champion"] = result.champion_scores
        written.append(reports.residual_plot(result.y_true, preds, out / "residuals.png", seed=config.seed))
    boot = result.bootstrap
    if boot is not None:
        written.append(
            reports.bootstrap_plot(
                boot.samples,
                out / "bootstrap.png",
                metric=boot.metric,
                diff=boot.diff,
                low=boot.low,
                high=boot.high,
                confidence=boot.confidence,
                margin=config.evaluation.margin,
            )
        )
    written.extend(plot_panels(result.panels, out))
    images = [p.name for p in written]
    for panel in result.panels:  # slices.json, fairness.json, robustness.json, importance.json
        (out / f"{panel.name}.json").write_text(
            json.dumps(reports.json_safe(panel.to_dict()), indent=2), encoding="utf-8"
        )
    (out / "verdict.json").write_text(json.dumps(reports.json_safe(result.to_dict()), indent=2), encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(reports.json_safe(result.metric_table()), indent=2), encoding="utf-8")
    (out / "report.html").write_text(evaluation_html(result, images), encoding="utf-8")
    files = [*written, *(out / f"{panel.name}.json" for panel in result.panels)]
    files += [out / "verdict.json", out / "metrics.json", out / "report.html"]
    if result.test_rows is not None:
        files.append(rows.write_record(result.test_rows.record(), out / rows.TEST_ROWS_ARTIFACT))
    return files


def log_evaluation(
    client: MlflowClient,
    result: EvaluationResult,
    *,
    experiment: str,
    run_name: str,
    tags: dict[str, str],
    model_name: str,
    challenger_version: str,
    champion_version: str | None,
) -> str:
    """Log the evaluation as one MLflow run (metrics, table, plots, verdict), then tag the challenger version.

    Version tags: decision, decision.reasons (JSON list), decision.at (ISO UTC), evaluation.run_id,
    evaluation.champion_version ("none" without a champion); approval.required and approval.reasons
    when a person must decide. Returns the run id.
    """
    import mlflow
    import pandas as pd

    verdict = result.verdict
    champion_tag = "none" if champion_version is None else str(champion_version)
    run_tags = {
        **{k: str(v) for k, v in tags.items()},
        "mlops.step": "evaluate",
        "mlops.model_name": model_name,
        "mlops.challenger_version": str(challenger_version),
        "mlops.champion_version": champion_tag,
        "decision": verdict.decision,
    }
    ev = result.config.evaluation
    with tracking.active_run(client, experiment, run_name=run_name, tags=run_tags) as run_id:
        mlflow.log_params(
            {
                "challenger_uri": result.challenger_uri,
                "champion_uri": result.champion_uri or "none",
                "primary_metric": result.config.metrics.primary,
                **({} if result.positive_class is None else {"positive_class": str(result.positive_class)}),
                "margin": ev.margin,
                "require": ev.require,
                "confidence": ev.confidence,
                "bootstrap_samples": ev.bootstrap_samples,
                "bootstrap.stratified": result.config.is_classification,
                **({"min_test_events": ev.min_test_events} if result.config.is_classification else {}),
                "baseline_guard": ev.baseline_guard,
                **(
                    {}
                    if result.baseline is None or result.baseline.version is None
                    else {"baseline.version": result.baseline.version}
                ),
                "seed": result.config.seed,
                "n_rows.test": result.n_rows,
                **_test_rows_params(result),
            }
        )
        mlflow.log_metrics(_run_metrics(result))
        with tempfile.TemporaryDirectory(prefix="mlops-evaluation-") as tmp:
            write_artifacts(result, tmp)
            mlflow.log_artifacts(tmp, "evaluation")
        mlflow.log_table(pd.DataFrame(result.metric_table()), artifact_file="evaluation/metrics_table.json")

    version_tags = {
        "decision": verdict.decision,
        "decision.reasons": reasons_tag(verdict.reasons),
        "decision.at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "evaluation.run_id": run_id,
        "evaluation.champion_version": champion_tag,
    }
    if result.test_rows is not None:
        version_tags["evaluation.test_rows"] = str(result.test_rows.n_rows)
        version_tags["evaluation.excluded_rows"] = str(result.test_rows.excluded)
    for panel in result.panels:  # short form: the worst slice, the flip rate, the ranking's nDCG
        if panel.summary:
            version_tags[f"evaluation.{panel.name}"] = panel.summary[:PANEL_TAG_LIMIT]
    if verdict.needs_approval:  # the answer adds approval.decision / .by / .at / .comment (core.approval)
        version_tags["approval.required"] = "true"
        version_tags["approval.reasons"] = reasons_tag(verdict.approval_reasons)
    for key, value in version_tags.items():
        client.set_model_version_tag(model_name, str(challenger_version), key, value)
    log.info("%s version %s: %s (evaluation run %s)", model_name, challenger_version, verdict.decision, run_id)
    return run_id


def _test_rows_params(result: EvaluationResult) -> dict[str, Any]:
    """How the test rows were chosen: split, the champion's rows excluded (count and method), their days."""
    if result.test_rows is None:
        return {}
    summary = result.test_rows.summary()
    return {
        "split.strategy": summary["split"],
        "test_rows.candidates": summary["candidate_rows"],
        "test_rows.excluded": summary["excluded_seen_by_champion"],
        "test_rows.exclusion": summary["exclusion"][:500],
        "test_rows.first_day": summary["first_day"] or "n/a",
        "test_rows.last_day": summary["last_day"] or "n/a",
    }


def _run_metrics(result: EvaluationResult) -> dict[str, float]:
    metrics: dict[str, float] = {"decision.promote": float(result.verdict.promote)}
    if result.test_rows is not None:
        metrics["test_rows"] = result.test_rows.n_rows
        metrics["test_rows.excluded"] = result.test_rows.excluded
    for row in result.metric_table():
        name = row["metric"]
        metrics[f"challenger.{name}"] = row["challenger"]
        if row["champion"] is not None:
            metrics[f"champion.{name}"] = row["champion"]
            metrics[f"diff.{name}"] = row["difference"]
        if row["ci_low"] is not None:  # the interval of the gain (positive: better), every metric on the same resamples
            metrics[f"gain_low.{name}"] = row["ci_low"]
            metrics[f"gain_high.{name}"] = row["ci_high"]
    if result.bootstrap is not None:
        metrics["bootstrap.gain"] = result.bootstrap.diff
        metrics["bootstrap.low"] = result.bootstrap.low
        metrics["bootstrap.high"] = result.bootstrap.high
        metrics["bootstrap.unusable"] = result.bootstrap.unusable
        ev = result.config.evaluation
        at_twice_margin = power.power_at_twice_margin(result.bootstrap, ev.margin, ev.require)
        if at_twice_margin is not None:
            metrics["power.at_2x_margin"] = at_twice_margin
    if result.class_counts is not None:
        for label, count in result.class_counts.counts.items():
            metrics["test_rows.class." + _METRIC_UNSAFE.sub("_", str(label))] = count
    for panel in result.panels:
        metrics.update({f"{panel.name}.{_METRIC_UNSAFE.sub('_', key)}": value for key, value in panel.metrics.items()})
    baseline = result.baseline
    if baseline is not None and baseline.why is None and not baseline.is_champion:
        for name, value in baseline.metrics.items():
            metrics[f"first_champion.{name}"] = value
        for name, b in baseline.intervals.items():
            metrics[f"first_champion.gain_low.{name}"] = b.low
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}


def reasons_tag(reasons: Sequence[str], limit: int = REASONS_TAG_LIMIT) -> str:
    """The reasons as a JSON list of at most `limit` characters; what does not fit is counted, not lost silently."""
    kept = [r if len(r) <= 1000 else r[:997] + "..." for r in reasons]
    text = json.dumps(kept)
    while len(text) > limit and kept:
        kept.pop()
        dropped = len(reasons) - len(kept)
        text = json.dumps([*kept, f"... {dropped} more reason(s): see the evaluation run's verdict.json"])
    return text
