"""One performance check: the labels of one day against that day's predictions, judged, debounced, logged.

``check_day`` reads the day's predictions and labels (refusing bad input before anything is written),
joins them (``join_day``; under ``min_join_rate`` the check fails with the counts, logged as a FAILED run),
computes the realized metrics per model version, judges the champion's rows against its promise, and
decides whether to ask for a retrain with the drift monitor's own debounce and cool-down
(``monitoring.should_request_retrain`` over ``monitoring.check_history``): decay on ``confirm_days`` of the
last ``of_last_days`` judged days of this champion (a re-checked day counts once), and no request within
``cooldown_hours`` of the last one. Each check is one MLflow run in ``<pipeline>-monitoring``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import labels as class_labels
from airflow_mlops.core import monitoring
from airflow_mlops.core.errors import NothingToCheck, PerformanceError
from airflow_mlops.core.performance import decay as decay_rule
from airflow_mlops.core.performance import inputs
from airflow_mlops.core.performance.evidence import log_check
from airflow_mlops.core.performance.join import JoinResult, check_join_rate, join_day
from airflow_mlops.core.performance.metrics import RealizedMetrics, realized_metrics
from airflow_mlops.core.performance.tags import CHECKED_AT_TAG, DAY_TAG, JUDGED_TAG, STEP, VERDICT_TAG, VERSION_TAG

if TYPE_CHECKING:
    from pathlib import Path

    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)


@dataclass
class DayCheck:
    """Everything one check found and decided (small enough, as ``to_dict()``, for XCom)."""

    config: PipelineConfig = field(repr=False)
    day: dt.date
    champion_version: str
    join: JoinResult = field(repr=False)
    realized: dict[str, RealizedMetrics]  # per model version that scored labelled rows
    judgement: decay_rule.Judgement
    promise: decay_rule.Promise | None
    predictions_path: str
    labels_path: str
    classes_from: str = ""
    positive_class: Any = None
    requested: bool = False
    reason: str = ""
    checked_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    run_id: str = ""

    @property
    def metric(self) -> str:
        return self.config.metrics.primary

    @property
    def judged_metrics(self) -> RealizedMetrics | None:
        """The champion's realized metrics of the day (None when it scored none of the labelled rows)."""
        return self.realized.get(self.champion_version)

    def summary(self) -> str:
        j, m = self.judgement, self.judged_metrics
        realized = (
            f"realized {self.metric} {m.value:.4f}"
            + (f" [{m.low:.4f}, {m.high:.4f}]" if m.low is not None and m.high is not None else "")
            if m is not None
            else f"v{self.champion_version} scored no rows"
        )
        promised = f"promised {j.promised:.4f}" if j.promised is not None else "no promise"
        verdict = {"decay": "DECAY", "no_decay": "no decay", "not_judged": "not judged"}[j.verdict]
        return (
            f"{verdict}: {self.config.model_name} v{self.champion_version} on {self.day}: {realized}, {promised} "
            f"(join rate {self.join.join_rate:.1%}, {self.join.matched:,} labelled rows)"
        )

    def table_row(self) -> dict[str, Any]:
        """This day's row of the per-day table (the same shape ``evidence.performance_table`` reads back)."""
        m, j = self.judged_metrics, self.judgement
        main = self.realized.get(self.join.main_version)
        shown = m or main
        return {
            "day": self.day.isoformat(),
            "version": self.champion_version,
            "main_version": self.join.main_version,
            "rows": shown.rows if shown else 0,
            "predictions": self.join.predictions,
            "join_rate": round(self.join.join_rate, 6),
            "metric": self.metric,
            "realized": _num(shown.value) if shown else None,
            "low": _num(shown.low) if shown else None,
            "high": _num(shown.high) if shown else None,
            "promised": j.promised,
            "threshold": j.threshold,
            "decay": "yes" if j.judged and j.decay else "no" if j.judged else "-",
            "verdict": j.verdict,
            "requested": self.requested,
            "checked_at": self.checked_at.isoformat(timespec="seconds"),
            "run_id": self.run_id,
        }

    def to_dict(self) -> dict[str, Any]:
        m = self.judged_metrics
        return {
            **self.table_row(),
            "model_name": self.config.model_name,
            "summary": self.summary(),
            "reason": self.reason,
            "judgement": self.judgement.to_dict(),
            "join": self.join.counts(),
            "metrics": m.to_dict() if m else None,
            "versions": {v: r.to_dict() for v, r in self.realized.items()},
            "promise": None
            if self.promise is None
            else {
                "version": self.promise.version,
                "run_id": self.promise.run_id,
                "metrics": self.promise.metrics,
                "test_rows": self.promise.test_rows,
            },
            "positive_class": self.positive_class,
            "classes_from": self.classes_from,
            "predictions_path": self.predictions_path,
            "labels_path": self.labels_path,
        }


def default_day(config: PipelineConfig, run_day: dt.date) -> dt.date:
    """The day whose labels a run on `run_day` checks: run day - scoring.label_delay_days."""
    return run_day - dt.timedelta(days=config.scoring.label_delay_days)


def check_day(
    client: MlflowClient,
    config: PipelineConfig,
    day: dt.date,
    *,
    labels_source: str | None = None,
    allowed_roots: list[Path] | None = None,
    tags: dict[str, str] | None = None,
    now: dt.datetime | None = None,
    log_run: bool = True,
) -> DayCheck:
    """Check the labels of `day` against its predictions; log the check as an MLflow run (see the module doc).

    Raises NothingToCheck (no champion, or the labels have not arrived: a skip, with the reason) and
    PerformanceError for bad input (labels for a future day or without predictions, unknown classes,
    missing columns) and for a join under ``min_join_rate`` (its ``run_id`` names the FAILED run).
    """
    from airflow_mlops.core.registry import CHAMPION, get_alias_version

    perf = config.monitoring.performance
    now = monitoring.aware_utc(now or dt.datetime.now(dt.UTC))
    champion = get_alias_version(client, config.model_name, CHAMPION)
    if champion is None:
        raise NothingToCheck(f"{config.model_name} has no champion: no predictions to judge (train one first)")
    today = inputs.today(config)
    if day > today:
        inputs.read_labels(config, day, source=labels_source, today_is=today)  # raises, naming the day
    labels_file = inputs.find_labels(config, day, source=labels_source, allowed_roots=allowed_roots)
    predictions_file = inputs.predictions_path(config, day)
    if labels_file is None:
        where = inputs.labels_folder(config, labels_source)
        scored = "its predictions are waiting" if predictions_file.is_file() else "it was not scored either"
        raise NothingToCheck(
            f"the labels of {day} have not arrived (no <pipeline>_labels_{day}.csv in {where}); "
            f"{scored}. They are due by {day + dt.timedelta(days=config.scoring.label_delay_days)}"
        )
    if not predictions_file.is_file():
        raise PerformanceError(
            f"labels for {day} arrived ({labels_file}) but there are no predictions for that day: {predictions_file} "
            f"does not exist. Score the day ({config.name}_scoring with as_of={day}) before judging it"
        )
    predictions = inputs.read_predictions(config, day)
    versions = sorted({str(v) for v in predictions["model_version"].unique().tolist()})
    classes, classes_from = inputs.known_classes(client, config, versions, predictions)
    labels = inputs.read_labels(config, day, path=labels_file, classes=classes, today_is=today)
    positive = class_labels.positive_class(config, classes) if classes else None
    joined = join_day(
        predictions, labels, config.source.id_columns, config.target, day=day, id_dtypes=config.source.dtypes
    )
    log.info("%s: %s", day, joined.describe())
    champion_version = str(champion.version)
    base: dict[str, Any] = {
        "config": config,
        "day": day,
        "champion_version": champion_version,
        "join": joined,
        "predictions_path": str(predictions_file),
        "labels_path": str(labels_file),
        "classes_from": classes_from,
        "positive_class": positive,
        "checked_at": now,
    }
    try:
        check_join_rate(
            joined, perf.min_join_rate, predictions_path=str(predictions_file), labels_path=str(labels_file)
        )
    except PerformanceError as exc:
        failed = DayCheck(
            **base, realized={}, judgement=decay_rule.Judgement(False, False, str(exc)), promise=None, reason=str(exc)
        )
        if log_run:
            exc.run_id = log_check(client, failed, tags=tags or {}, status="FAILED")  # type: ignore[attr-defined]
        raise

    realized = {}
    for version in sorted(joined.matched_by_version, key=lambda v: (v != champion_version, v)):
        rows = (
            joined.joined[joined.joined["model_version"] == version]
            if len(joined.matched_by_version) > 1
            else joined.joined
        )
        realized[version] = realized_metrics(
            rows,
            config,
            positive=positive,
            classes=classes,
            n_boot=perf.bootstrap_samples,
            seed=[config.seed, day.toordinal(), _version_seed(version)],
            confidence=config.evaluation.confidence,
            version=version,
        )
    promise = decay_rule.promise(client, config.model_name, champion_version)
    promised = promise.value(config.metrics.primary) if promise else None
    judgement = decay_rule.judge(
        realized.get(champion_version),
        promised,
        tolerance=perf.tolerance,
        min_rows=perf.min_rows,
        version=champion_version,
    )
    check = DayCheck(**base, realized=realized, judgement=judgement, promise=promise)
    check.requested, check.reason = decide_request(client, config, check, now=now)
    log.info("%s; retrain %s: %s", check.summary(), "REQUESTED" if check.requested else "not requested", check.reason)
    if log_run:
        check.run_id = log_check(client, check, tags=tags or {})
    return check


def decide_request(
    client: MlflowClient, config: PipelineConfig, check: DayCheck, *, now: dt.datetime
) -> tuple[bool, str]:
    """Debounce and cool-down over the judged days of this champion (the drift monitor's own rules)."""
    perf = config.monitoring.performance
    if not check.judgement.judged:
        return False, check.judgement.reason
    past = monitoring.check_history(
        client,
        monitoring.monitoring_experiment(config),
        config.model_name,
        max(perf.of_last_days, 50),
        reference_version=check.champion_version,
        step=STEP,
        verdict_tag=VERDICT_TAG,
        hit_verdict="decay",
        reference_tag=VERSION_TAG,
        checked_at_tag=CHECKED_AT_TAG,
        once_per_tag=DAY_TAG,
        extra_filters=(f"tags.`{JUDGED_TAG}` = 'true'",),
    )
    day = check.day.isoformat()
    others = [h for h in past if h.get(DAY_TAG) != day]  # this check replaces earlier checks of the same day
    requests = [h["requested_at"] for h in past if h.get("requested_at") is not None]
    return monitoring.should_request_retrain(
        [*others, {"at": now, "drift": check.judgement.decay, "requested": False}],
        now=now,
        confirm_checks=perf.confirm_days,
        of_last_checks=perf.of_last_days,
        cooldown_hours=perf.cooldown_hours,
        last_requested_at=max(requests) if requests else None,
        what="decay",
        unit="labelled day",
    )


def _version_seed(version: str) -> int:
    return int(version) if version.isdigit() else sum(version.encode())


def _num(value: float | None) -> float | None:
    import math

    return None if value is None or not math.isfinite(value) else float(value)
