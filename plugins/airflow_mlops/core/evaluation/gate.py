"""Champion vs challenger on the test rows neither saw: scores, the paired bootstrap, the verdict."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import labels as class_labels
from airflow_mlops.core import rows as rows_mod
from airflow_mlops.core import training
from airflow_mlops.core.errors import EvaluationError
from airflow_mlops.core.evaluation.baseline import Baseline, baseline_evidence, find_baseline
from airflow_mlops.core.evaluation.bootstrap import BootstrapResult, paired_bootstraps
from airflow_mlops.core.evaluation.decision import (
    BaselineEvidence,
    ClassCounts,
    Verdict,
    decide,
    unscored_verdict,
)
from airflow_mlops.core.evaluation.leakage import implausibly_perfect, leakage_suspects
from airflow_mlops.core.evaluation.models import Loaded, align_classes, compare_signatures, load, score
from airflow_mlops.core.evaluation.panel_types import PanelInputs, PanelResult
from airflow_mlops.core.evaluation.panels import run_panels
from airflow_mlops.core.training import LOWER_IS_BETTER

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Everything the verdict was based on, including the arrays the plots need."""

    config: PipelineConfig
    verdict: Verdict
    challenger_uri: str
    champion_uri: str | None
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    bootstrap: BootstrapResult | None
    signature_diff: list[str]
    leakage: list[str]
    y_true: np.ndarray = field(repr=False)
    labels: list[Any] | None  # class labels in the column order of the score arrays (classification)
    challenger_scores: np.ndarray = field(repr=False)  # predict_proba (classification) or predictions
    champion_scores: np.ndarray | None = field(repr=False)
    test_rows: rows_mod.TestRows | None = field(default=None, repr=False)
    positive_class: Any = None  # binary: the class f1/precision/recall/ROC AUC treat as positive (core.labels)
    intervals: dict[str, BootstrapResult] = field(
        default_factory=dict, repr=False
    )  # every metric's gain, same resamples
    class_counts: ClassCounts | None = None  # classification: clean test rows per class
    baseline: BaselineEvidence | None = None  # evaluation.baseline_guard: against the first champion
    panels: list[PanelResult] = field(default_factory=list)  # slices, fairness, robustness, importance

    @property
    def n_rows(self) -> int:
        return len(self.y_true)

    def metric_table(self) -> list[dict[str, Any]]:
        """One row per metric: both values, the difference (challenger - champion), the gain and its interval
        (every metric's from the same resamples)."""
        primary = self.config.metrics.primary
        champion = self.champion_metrics or {}
        rows = []
        for name, value in self.challenger_metrics.items():
            other = champion.get(name)
            difference = None if other is None else value - other
            gain = None if difference is None else (-difference if name in LOWER_IS_BETTER else difference)
            boot = self.bootstrap if name == primary and self.bootstrap is not None else self.intervals.get(name)
            rows.append(
                {
                    "metric": name,
                    "primary": name == primary,
                    "better": "lower" if name in LOWER_IS_BETTER else "higher",
                    "challenger": value,
                    "champion": other,
                    "difference": difference,
                    "gain": gain,
                    "ci_low": None if boot is None else boot.low,
                    "ci_high": None if boot is None else boot.high,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """The verdict and its basis as JSON-safe values (verdict.json; small enough for XCom)."""
        ev = self.config.evaluation
        boot = self.bootstrap
        return {
            "decision": self.verdict.decision,
            "promote": self.verdict.promote,
            "reasons": list(self.verdict.reasons),
            "needs_approval": self.verdict.needs_approval,
            "approval_reasons": list(self.verdict.approval_reasons),
            "primary_metric": self.config.metrics.primary,
            "positive_class": self.positive_class,
            "challenger_uri": self.challenger_uri,
            "champion_uri": self.champion_uri,
            "challenger": dict(self.challenger_metrics),
            "champion": None if self.champion_metrics is None else dict(self.champion_metrics),
            "bootstrap": None
            if boot is None
            else {
                "metric": boot.metric,
                "gain": boot.diff,
                "low": boot.low,
                "high": boot.high,
                "confidence": boot.confidence,
                "resamples": boot.resamples,
                "unusable": boot.unusable,
                "stratified": self.config.is_classification,
                "seed": self.config.seed,
            },
            "intervals": {
                name: {"gain": b.diff, "low": b.low, "high": b.high, "unusable": b.unusable}
                for name, b in self.intervals.items()
            },
            "margin": ev.margin,
            "require": ev.require,
            "min_test_rows": ev.min_test_rows,
            "min_test_events": ev.min_test_events if self.config.is_classification else None,
            "class_counts": None if self.class_counts is None else self.class_counts.summary(),
            "baseline_guard": ev.baseline_guard,
            "baseline": None if self.baseline is None else self.baseline.summary(),
            "guard_rails": dict(ev.guard_rails),
            "floors": dict(ev.floors),
            "signature_diff": list(self.signature_diff),
            "leakage": list(self.leakage),
            "n_rows": self.n_rows,
            "test_rows": None if self.test_rows is None else self.test_rows.summary(),
            "panels": {panel.name: panel.to_dict() for panel in self.panels},
        }


# --------------------------------------------------------------------------- evaluate


def evaluate(
    client: MlflowClient,
    config: PipelineConfig,
    test: pd.DataFrame,
    *,
    challenger_uri: str,
    champion_uri: str | None,
    window_end: str | None = None,
    champion_window_end: str | None = None,
) -> EvaluationResult:
    """Load both models, drop from `test` every row the champion saw, score what is left and decide.

    `test` is the challenger's test split (rows it neither trained nor was selected on). The
    champion's rows come from the ``training_rows.parquet`` of its training run (see core.rows).
    `window_end` / `champion_window_end`: the last days of their training data (see `decide`).

    URIs name versions, e.g. ``models:/churn_classifier/3`` (resolve aliases first so the verdict
    is about a fixed version). Raises EvaluationError for what cannot be compared (a deleted
    version, one class in the test rows, missing columns); a differing signature or leakage is a REJECT.
    """
    _check_test_rows(test, config)
    pickle_ok = config.security.allow_pickle_models
    challenger = load(client, challenger_uri, "challenger", allow_pickle=pickle_ok)
    champion = load(client, champion_uri, "champion", allow_pickle=pickle_ok) if champion_uri else None
    record, why = rows_mod.run_record(client, champion.run_id) if champion is not None else (None, None)
    own, own_why = rows_mod.run_record(client, challenger.run_id)
    if own is None:  # fail closed: without it, copies of its own training rows could flatter it
        raise EvaluationError(
            f"{challenger.uri}: the challenger's rows record cannot be read ({own_why}); its "
            f"copies of training rows cannot be kept out of the test rows. Retrain it"
        )
    test_rows = rows_mod.gate_rows(
        test,
        config,
        champion=record,
        has_champion=champion is not None,
        champion_window_end=champion_window_end,
        why_no_record=why,
        own=own,
    )
    baseline = find_baseline(client, config, champion) if config.evaluation.baseline_guard and champion else None
    return judge(
        config,
        test_rows,
        challenger,
        champion,
        window_end=window_end,
        champion_window_end=champion_window_end,
        baseline=baseline,
    )


def judge(
    config: PipelineConfig,
    test_rows: rows_mod.TestRows,
    challenger: Loaded,
    champion: Loaded | None,
    *,
    window_end: str | None = None,
    champion_window_end: str | None = None,
    baseline: Baseline | None = None,
) -> EvaluationResult:
    """Score both models on the clean test rows, bootstrap the gains and decide (no MLflow I/O).

    Fewer clean rows than ``evaluation.min_test_rows``, or (classification) fewer rows of a class than
    ``evaluation.min_test_events``: REJECT without scoring (thin evidence). `baseline`: the model's first
    champion (``evaluation.baseline_guard``, see `find_baseline`).
    """
    import numpy as np

    log.info("%s", test_rows.describe())
    counts = class_counts(config, test_rows.frame, _model_classes(challenger)) if config.is_classification else None
    thin = thin_evidence(config, test_rows, counts)
    if thin is not None:
        passed = []
        if test_rows.n_rows >= config.evaluation.min_test_rows:
            passed.append(
                f"{test_rows.n_rows:,} clean test rows >= evaluation.min_test_rows "
                f"({config.evaluation.min_test_rows:,})"
            )
        verdict = unscored_verdict(
            test_rows,
            thin,
            has_champion=champion is not None,
            window_end=window_end,
            champion_window_end=champion_window_end,
            passed=passed,
        )
        _log_verdict(challenger.uri, champion, verdict)
        return EvaluationResult(
            config=config,
            verdict=verdict,
            challenger_uri=challenger.uri,
            champion_uri=champion.uri if champion else None,
            challenger_metrics={},
            champion_metrics=None,
            bootstrap=None,
            signature_diff=[],
            leakage=[],
            y_true=np.asarray([]),
            labels=None,
            challenger_scores=np.asarray([]),
            champion_scores=None,
            test_rows=test_rows,
            class_counts=counts,
        )
    frame = test_rows.frame
    _check_test_rows(frame, config)
    y = frame[config.target].to_numpy()
    names = list(dict.fromkeys([*config.metrics.all, *config.evaluation.guard_rails, *config.evaluation.floors]))

    ch_scores, ch_pred, labels = score(challenger, frame, config, role="challenger")
    if labels is not None:
        unknown = sorted(set(y.tolist()) - set(labels), key=str)
        if unknown:
            raise EvaluationError(
                f"{config.path}: target column {config.target!r} holds class(es) {unknown} that the challenger "
                f"({challenger.uri}) never saw (its classes: {labels}); retrain on data that includes them"
            )
    positive, how = class_labels.resolve(config, labels)
    if how:
        log.info("binary metrics treat %r as the positive class (%s)", positive, how)
    ch_metrics = training.compute_metrics(config.task, y, ch_pred, ch_scores, names, labels=labels, positive=positive)

    signature_diff: list[str] = []
    cp_metrics: dict[str, float] | None = None
    cp_scores = None
    bootstrap = None
    intervals: dict[str, BootstrapResult] = {}
    evidence = None
    if champion is not None:
        signature_diff = compare_signatures(champion.signature, challenger.signature)
        cp_metrics = {}
        try:
            cp_scores, cp_pred, cp_labels = score(champion, frame, config, role="champion")
            if labels is not None and cp_labels is not None:
                cp_scores = align_classes(cp_scores, cp_labels, labels, signature_diff)
            if cp_scores is not None:
                cp_metrics = training.compute_metrics(
                    config.task, y, cp_pred, cp_scores, names, labels=labels, positive=positive
                )
        except EvaluationError as exc:
            signature_diff.append(f"the champion cannot score these test rows: {exc}")
            cp_scores = None
        if cp_scores is not None:
            intervals = paired_bootstraps(
                y,
                ch_scores,
                cp_scores,
                names,
                task=config.task,
                labels=labels,
                n=config.evaluation.bootstrap_samples,
                seed=config.seed,
                confidence=config.evaluation.confidence,
                positive=positive,
            )
            bootstrap = intervals[config.metrics.primary]
        if config.evaluation.baseline_guard and baseline is not None:
            evidence = baseline_evidence(config, baseline, frame, ch_scores, ch_pred, labels, positive)

    leakage = leakage_suspects(frame, config) if implausibly_perfect(config, ch_metrics) else []
    panels = run_panels(
        PanelInputs(
            config,
            frame,
            y,
            labels,
            positive,
            challenger,
            champion if cp_scores is not None else None,
            ch_scores,
            cp_scores,
        )
    )
    verdict = decide(
        config,
        ch_metrics,
        cp_metrics,
        bootstrap,
        intervals=intervals,
        signature_diff=signature_diff,
        leakage=leakage,
        window_end=window_end,
        champion_window_end=champion_window_end,
        test_rows=test_rows,
        class_counts=counts,
        baseline=evidence,
        panels=panels,
    )
    _log_verdict(challenger.uri, champion, verdict)
    return EvaluationResult(
        config=config,
        verdict=verdict,
        challenger_uri=challenger.uri,
        champion_uri=champion.uri if champion else None,
        challenger_metrics=ch_metrics,
        champion_metrics=cp_metrics,
        bootstrap=bootstrap,
        signature_diff=signature_diff,
        leakage=leakage,
        y_true=np.asarray(y),
        labels=labels,
        challenger_scores=ch_scores,
        champion_scores=cp_scores,
        test_rows=test_rows,
        positive_class=positive,
        intervals=intervals,
        class_counts=counts,
        baseline=evidence,
        panels=panels,
    )


def _log_verdict(challenger_uri: str, champion: Loaded | None, verdict: Verdict) -> None:
    log.info("%s vs %s: %s", challenger_uri, champion.uri if champion else "no champion", verdict.decision)
    for reason in verdict.reasons:
        log.info("  %s", reason)


def thin_evidence(
    config: PipelineConfig, test_rows: rows_mod.TestRows, counts: ClassCounts | None = None
) -> str | None:
    """Why the clean test rows are too few to judge on (rows, or `counts`: rows of a class), or None when enough."""
    ev = config.evaluation
    if test_rows.n_rows >= ev.min_test_rows and (counts is None or not counts.short(ev.min_test_events)):
        return None
    if test_rows.n_rows < ev.min_test_rows:
        if test_rows.strategy == "time":
            advice = "lengthen split.test_days (or lower evaluation.min_test_rows, knowing the interval widens)"
        else:
            advice = (
                "raise split.test_size, or use the time split (split.strategy: time with source.date_column) so the "
                "test rows are newer than anything the champion saw"
            )
        return (
            f"only {test_rows.n_rows:,} clean test row(s) after excluding {test_rows.excluded:,} the champion saw, "
            f"fewer than evaluation.min_test_rows ({ev.min_test_rows:,}): too little evidence to judge on, the "
            f"champion stays; {advice}"
        )
    assert counts is not None
    more = "lengthen split.test_days" if test_rows.strategy == "time" else "raise split.test_size"
    return (
        f"{counts.check(ev.min_test_events)[1]}: too little evidence to judge on, the champion stays; {more} so the "
        f"test rows hold more of the rare class (or lower evaluation.min_test_events, knowing a few rows then decide)"
    )


def class_counts(config: PipelineConfig, frame: pd.DataFrame, classes: list[Any] | None) -> ClassCounts:
    """The clean test rows per class of `classes` (the model's; None: the classes in the rows); a binary task's
    counts name its positive class (core.labels)."""
    found = {_plain(k): int(v) for k, v in frame[config.target].value_counts(dropna=True).items()}
    names = [_plain(c) for c in classes] if classes is not None else sorted(found, key=str)
    counts = {c: found.get(c, 0) for c in names}
    positive = class_labels.positive_class(config, names) if config.task == "binary_classification" else None
    return ClassCounts(counts, positive if len(counts) == 2 else None)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _model_classes(loaded: Loaded) -> list[Any] | None:
    """The classes a classifier predicts (before scoring it), or None when it does not say."""
    classes = getattr(loaded.model, "classes_", None)
    return None if classes is None else list(classes)


def _check_test_rows(test: pd.DataFrame, config: PipelineConfig) -> None:
    span = rows_mod.date_span(test, config.source.date_column) if test is not None else None
    where = f"{config.path}: pipeline {config.name!r}" + (f", test rows {span[0]}..{span[1]}" if span else "")
    if test is None or len(test) == 0:
        raise EvaluationError(f"{where}: there are no test rows; nothing to score the models on")
    if config.target not in test.columns:
        raise EvaluationError(
            f"{where}: the test rows lack the target column {config.target!r}; present: {', '.join(map(str, test.columns))}"
        )
    y = test[config.target]
    if y.isna().any():
        raise EvaluationError(
            f"{where}: target column {config.target!r} has {int(y.isna().sum())} missing value(s) in the test rows; "
            f"labels must be complete"
        )
    if config.is_classification and y.nunique() < 2:
        only = y.iloc[0]
        only = only.item() if hasattr(only, "item") else only
        raise EvaluationError(
            f"{where}: target column {config.target!r} has a single class ({only!r}) in all {len(y)} test rows; "
            f"the models cannot be compared on them (AUC is undefined): lengthen split.test_days (or "
            f"split.test_size), or widen the window (source.window_days)"
        )
