"""Champion vs challenger: both scored on one holdout, a paired bootstrap of the gain, the verdict.

The gate (``config.evaluation``): promote only when the primary metric improves by at least
``margin`` and the lower bound of the seeded paired-bootstrap interval of the gain is above zero,
no guard-rail metric regresses past its tolerance, and every floor holds. Without a champion the
floors alone decide. A challenger whose input signature differs from the champion's, whose
holdout score is implausibly perfect (target leakage), or whose training data ends before the
champion's (a backfill: stale data), is rejected with the reason named.

"Gain" is always oriented so that positive means better (``challenger - champion`` for
higher-is-better metrics, ``champion - challenger`` for LOWER_IS_BETTER ones).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import reports, tracking, training
from airflow_mlops.core.errors import MlopsError
from airflow_mlops.core.training import LOWER_IS_BETTER

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)

PROMOTE = "PROMOTE"
REJECT = "REJECT"
NO_BASELINE_PROMOTE = "NO_BASELINE_PROMOTE"
#: A single feature whose association with the target reaches this (univariate AUC, or |r| for
#: regression) is named as a leakage suspect when the model's holdout score is implausibly perfect.
LEAKAGE_FEATURE_THRESHOLD = 0.98
#: Metrics whose perfect value is 1: the only ones the leakage threshold applies to.
BOUNDED_METRICS = frozenset({"roc_auc", "accuracy", "f1", "precision", "recall", "r2"})
#: `decision.reasons` is cut to this many characters: well inside MLflow's tag limits on every backend.
REASONS_TAG_LIMIT = 5000
_EPS = 1e-12  # comparisons of differences tolerate floating-point noise
_NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


class EvaluationError(MlopsError):
    """The champion/challenger comparison cannot be made (names the model, version or column)."""


@dataclass(frozen=True)
class BootstrapResult:
    """The observed gain on the primary metric and its percentile interval (positive = challenger better)."""

    diff: float
    low: float
    high: float
    samples: np.ndarray = field(repr=False)
    metric: str = ""
    confidence: float = 0.95


@dataclass(frozen=True)
class Verdict:
    decision: str  # PROMOTE | REJECT | NO_BASELINE_PROMOTE
    reasons: list[str]  # every check, passing ("PASS: ...") and failing ("FAIL: ..."), in words
    promote: bool


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

    @property
    def n_rows(self) -> int:
        return len(self.y_true)

    def metric_table(self) -> list[dict[str, Any]]:
        """One row per metric: both values, the difference (challenger - champion), the gain and its interval."""
        primary = self.config.metrics.primary
        champion = self.champion_metrics or {}
        rows = []
        for name, value in self.challenger_metrics.items():
            other = champion.get(name)
            difference = None if other is None else value - other
            gain = None if difference is None else (-difference if name in LOWER_IS_BETTER else difference)
            boot = self.bootstrap if name == primary else None
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
            "primary_metric": self.config.metrics.primary,
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
                "resamples": len(boot.samples),
                "seed": self.config.seed,
            },
            "margin": ev.margin,
            "guard_rails": dict(ev.guard_rails),
            "floors": dict(ev.floors),
            "signature_diff": list(self.signature_diff),
            "leakage": list(self.leakage),
            "n_rows": self.n_rows,
        }


# --------------------------------------------------------------------------- paired bootstrap


def paired_bootstrap(
    y_true: Any,
    pred_challenger: Any,
    pred_champion: Any,
    metric: str,
    *,
    task: str,
    labels: Sequence[Any] | None,
    n: int,
    seed: int,
    confidence: float,
) -> BootstrapResult:
    """Resample holdout rows with replacement (the same rows for both models) and take the percentile
    interval of the gain on `metric`.

    `pred_*` are predict_proba arrays (n, n_classes) in `labels` order (1-D positive-class
    probabilities are accepted for binary tasks) or regression predictions. Label metrics use the
    most probable class. Same seed, same result.

    A resample is a multinomial count vector w (how often each row was drawn), so every metric is
    a weighted metric over the original rows, computed in O(rows): AUC as a weighted Mann-Whitney
    statistic against the negatives sorted once, label metrics from a weighted confusion matrix,
    the others from per-row losses. The values equal compute_metrics on the resampled rows.
    """
    import numpy as np

    y = np.asarray(y_true)
    rows = len(y)
    if rows < 2:
        raise EvaluationError(f"paired bootstrap of {metric!r}: the holdout has {rows} row(s); need at least 2")
    if not 0 < confidence < 1:
        raise EvaluationError(f"paired bootstrap: confidence must be in (0, 1), got {confidence}")
    challenger = _metric_kernel(metric, task, y, pred_challenger, labels)
    champion = _metric_kernel(metric, task, y, pred_champion, labels)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    ones = np.ones(rows)
    diff = sign * (challenger(ones) - champion(ones))
    rng = np.random.default_rng(seed)
    samples = np.empty(n)
    for b in range(n):
        weights = np.bincount(rng.integers(0, rows, rows), minlength=rows).astype(float)
        samples[b] = sign * (challenger(weights) - champion(weights))
    valid = samples[np.isfinite(samples)]
    if len(valid) < max(2, n // 2):
        raise EvaluationError(
            f"paired bootstrap of {metric!r}: only {len(valid)} of {n} resamples could be scored (a class is "
            f"too rare in the {rows}-row holdout); use a larger holdout"
        )
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(valid, [alpha, 1.0 - alpha])
    return BootstrapResult(float(diff), float(low), float(high), valid, metric=metric, confidence=confidence)


def _metric_kernel(
    metric: str, task: str, y: np.ndarray, pred: Any, labels: Sequence[Any] | None
) -> Callable[[np.ndarray], float]:
    """f(w) -> the metric with row weights w (counts of a resample; all ones: the holdout itself),
    with the semantics of training.compute_metrics."""
    import numpy as np

    if task == "regression":
        return _regression_kernel(metric, np.asarray(y, dtype=float), np.asarray(pred, dtype=float))
    labels = list(labels) if labels is not None else sorted(set(y.tolist()))
    k = len(labels)
    proba = np.asarray(pred, dtype=float)
    if proba.ndim == 1:
        if k != 2:
            raise EvaluationError(f"metric {metric!r}: 1-D scores are only accepted for a binary task")
        proba = np.column_stack([1.0 - proba, proba])
    if proba.shape != (len(y), k):
        raise EvaluationError(f"metric {metric!r}: predictions have shape {proba.shape}, expected ({len(y)}, {k})")
    y_idx = _label_index(y, labels)
    if metric == "roc_auc":
        if k == 2:
            return _auc_kernel(y_idx == 1, proba[:, 1])
        per_class = [_auc_kernel(y_idx == c, proba[:, c]) for c in range(k)]
        return lambda w: float(np.mean([f(w) for f in per_class]))
    if metric == "log_loss":
        eps = np.finfo(proba.dtype).eps
        loss = -np.log(np.clip(proba[np.arange(len(y)), y_idx], eps, 1.0 - eps))
        return lambda w: float(np.dot(w, loss) / w.sum())
    if metric in ("accuracy", "f1", "precision", "recall"):
        code = y_idx * k + proba.argmax(axis=1)
        return lambda w: _from_confusion(metric, np.bincount(code, weights=w, minlength=k * k), k)
    raise EvaluationError(f"unknown classification metric {metric!r}")


def _label_index(y: np.ndarray, labels: list[Any]) -> np.ndarray:
    import numpy as np

    position = {label: i for i, label in enumerate(labels)}
    try:
        return np.fromiter((position[v] for v in y.tolist()), dtype=np.intp, count=len(y))
    except KeyError as exc:
        raise EvaluationError(f"the holdout has class {exc.args[0]!r}, unknown to the model (classes {labels})") from None


def _auc_kernel(positive: np.ndarray, score: np.ndarray) -> Callable[[np.ndarray], float]:
    """Weighted Mann-Whitney AUC: sum over positives i of w_i * (W_neg below s_i + W_neg tied with s_i / 2),
    divided by W_pos * W_neg. The negatives are sorted by score once and every positive's place among
    them found once (searchsorted left/right), so a resample costs one cumulative sum and one dot
    product: exactly roc_auc_score on the resampled rows, ties included.
    """
    import numpy as np

    pos_rows = np.flatnonzero(positive)
    neg_rows = np.flatnonzero(~positive)
    neg_rows = neg_rows[np.argsort(score[neg_rows], kind="stable")]
    neg_scores = score[neg_rows]
    below = np.searchsorted(neg_scores, score[pos_rows], side="left")
    below_or_tied = np.searchsorted(neg_scores, score[pos_rows], side="right")
    ties = bool(np.any(below != below_or_tied))  # any positive scored exactly like some negative
    cum = np.zeros(len(neg_rows) + 1)

    def auc(w: np.ndarray) -> float:
        np.cumsum(w[neg_rows], out=cum[1:])  # cum[j]: weight of the j lowest-scored negatives
        w_pos = w[pos_rows]
        total_pos, total_neg = float(w_pos.sum()), float(cum[-1])
        if total_pos == 0 or total_neg == 0:
            return math.nan
        twice = cum[below] + cum[below_or_tied] if ties else 2.0 * cum[below]
        return float(np.dot(w_pos, twice)) / (2.0 * total_pos * total_neg)

    return auc


def _from_confusion(metric: str, counts: np.ndarray, k: int) -> float:
    """accuracy / precision / recall / f1 from a flattened (weighted) confusion matrix (binary: positive =
    last label, multiclass: macro average; zero_division=0)."""
    import numpy as np

    cm = counts.reshape(k, k)
    if metric == "accuracy":
        return float(np.trace(cm)) / float(cm.sum())
    tp = np.diag(cm).astype(float)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    if k == 2:
        tp, predicted, actual = tp[1:], predicted[1:], actual[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "precision":
            per_class = np.where(predicted > 0, tp / predicted, 0.0)
        elif metric == "recall":
            per_class = np.where(actual > 0, tp / actual, 0.0)
        else:
            per_class = np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0)
    return float(per_class.mean())


def _regression_kernel(metric: str, y: np.ndarray, pred: np.ndarray) -> Callable[[np.ndarray], float]:
    import numpy as np

    if pred.shape != y.shape:
        raise EvaluationError(f"metric {metric!r}: predictions have shape {pred.shape}, expected {y.shape}")
    error = y - pred
    if metric == "rmse":
        sq = error**2
        return lambda w: float(np.sqrt(np.dot(w, sq) / w.sum()))
    if metric == "mae":
        ae = np.abs(error)
        return lambda w: float(np.dot(w, ae) / w.sum())
    if metric == "r2":
        sq = error**2
        centred = y - y.mean()  # r2 does not change when y shifts; centring keeps the sums precise

        def r2(w: np.ndarray) -> float:
            total_w = float(w.sum())
            mean = float(np.dot(w, centred)) / total_w
            total = float(np.dot(w, centred**2)) - total_w * mean**2
            return 1.0 - float(np.dot(w, sq)) / total if total > 0 else math.nan

        return r2
    raise EvaluationError(f"unknown regression metric {metric!r}")


# --------------------------------------------------------------------------- the decision


def decide(
    config: PipelineConfig,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    bootstrap: BootstrapResult | None,
    *,
    signature_diff: Sequence[str] = (),
    leakage: Sequence[str] = (),
    window_end: str | None = None,
    champion_window_end: str | None = None,
) -> Verdict:
    """The verdict from the numbers alone (no I/O): every check is stated, passing or failing.

    `window_end` / `champion_window_end` are the last days (YYYY-MM-DD) of the challenger's and the
    champion's training data: a challenger trained on older data (a backfill) never replaces the champion.
    """
    ev = config.evaluation
    primary = config.metrics.primary
    checks: list[tuple[bool, str]] = []
    notes: list[str] = []

    if champion is not None and window_end and champion_window_end:
        if window_end < champion_window_end:
            checks.append((False, f"stale data: the challenger was trained on data up to {window_end}, older than "
                                  f"the champion's (up to {champion_window_end}); a backfill never replaces a newer "
                                  f"champion"))
        else:
            checks.append((True, f"the challenger's data (up to {window_end}) is not older than the champion's "
                                 f"(up to {champion_window_end})"))

    if signature_diff:
        checks.append((False, "the challenger's input signature differs from the champion's: " + "; ".join(signature_diff)))
    elif champion is not None:
        checks.append((True, "the challenger's input signature matches the champion's"))

    leak = _leakage_check(config, challenger, leakage)
    if leak is not None:
        checks.append(leak)

    if champion is None:
        notes.append("no champion yet: the floors alone decide")
    else:
        checks.extend(_primary_checks(primary, challenger, champion, bootstrap, ev.margin))
        for metric, tolerance in ev.guard_rails.items():
            checks.append(_guard_rail_check(metric, tolerance, challenger, champion))

    if ev.floors:
        checks.extend(_floor_check(metric, floor, challenger) for metric, floor in ev.floors.items())
    elif champion is None:
        notes.append("no floors are configured (evaluation.floors): nothing bars a first model")

    passed = all(ok for ok, _ in checks)
    if not passed:
        decision = REJECT
    elif champion is None:
        decision = NO_BASELINE_PROMOTE
    else:
        decision = PROMOTE
    reasons = notes + [f"{'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks]
    return Verdict(decision=decision, reasons=reasons, promote=decision != REJECT)


def _value(metrics: dict[str, float], name: str) -> float | None:
    value = metrics.get(name)
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _gain(metric: str, challenger: float, champion: float) -> float:
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def _change_words(gain: float) -> str:
    if abs(gain) <= _EPS:
        return "did not change"
    return f"improved by {gain:.4f}" if gain > 0 else f"regressed by {-gain:.4f}"


def _primary_checks(
    metric: str,
    challenger: dict[str, float],
    champion: dict[str, float],
    bootstrap: BootstrapResult | None,
    margin: float,
) -> list[tuple[bool, str]]:
    ch, cp = _value(challenger, metric), _value(champion, metric)
    if ch is None or cp is None:
        missing = "challenger" if ch is None else "champion"
        return [(False, f"primary metric {metric} has no value for the {missing}: the models cannot be compared")]
    gain = _gain(metric, ch, cp)
    values = f"champion {cp:.4f} -> challenger {ch:.4f}"
    if bootstrap is None:
        margin_ok = gain >= margin - _EPS
        return [
            (margin_ok, f"{metric} {_change_words(gain)} ({values}) {'>=' if margin_ok else '<'} margin {margin:g}"),
            (False, f"no paired-bootstrap interval for {metric}: the gain's confidence cannot be established"),
        ]
    ci = f"{bootstrap.confidence:.0%} CI {bootstrap.low:.4f}..{bootstrap.high:.4f}"
    margin_ok = gain >= margin - _EPS
    significant = bootstrap.low > 0
    return [
        (margin_ok, f"{metric} {_change_words(gain)} ({ci}; {values}) {'>=' if margin_ok else '<'} margin {margin:g}"),
        (
            significant,
            f"the {ci} of the {metric} gain lies above zero: the gain is significant"
            if significant
            else f"the {ci} of the {metric} gain does not lie above zero: the gain is not significant",
        ),
    ]


def _guard_rail_check(
    metric: str, tolerance: float, challenger: dict[str, float], champion: dict[str, float]
) -> tuple[bool, str]:
    ch, cp = _value(challenger, metric), _value(champion, metric)
    if ch is None or cp is None:
        missing = "challenger" if ch is None else "champion"
        return False, f"guard rail {metric}: no value for the {missing}"
    regression = -_gain(metric, ch, cp)
    values = f"champion {cp:.4f} -> challenger {ch:.4f}"
    if regression > tolerance + _EPS:
        return False, f"{metric} regressed by {regression:.4f} > tolerance {tolerance:g} ({values})"
    if regression > _EPS:
        return True, f"{metric} regressed by {regression:.4f} <= tolerance {tolerance:g} ({values})"
    return True, f"{metric} {_change_words(-regression)}, within guard rail tolerance {tolerance:g} ({values})"


def _floor_check(metric: str, floor: float, challenger: dict[str, float]) -> tuple[bool, str]:
    value = _value(challenger, metric)
    if value is None:
        return False, f"floor {metric}: the challenger has no value for it"
    if metric in LOWER_IS_BETTER:
        ok = value <= floor
        return ok, f"{metric} {value:.4f} {'<=' if ok else '>'} floor {floor:g} (a maximum: lower is better)"
    ok = value >= floor
    return ok, f"{metric} {value:.4f} {'>=' if ok else '<'} floor {floor:g}"


def implausibly_perfect(config: PipelineConfig, metrics: dict[str, float]) -> bool:
    """True when the holdout primary score reaches evaluation.leakage_threshold (bounded metrics only)."""
    threshold = config.evaluation.leakage_threshold
    primary = config.metrics.primary
    value = _value(metrics, primary)
    return threshold is not None and primary in BOUNDED_METRICS and value is not None and value >= threshold


def _leakage_check(config: PipelineConfig, challenger: dict[str, float], leakage: Sequence[str]) -> tuple[bool, str] | None:
    primary = config.metrics.primary
    threshold = config.evaluation.leakage_threshold
    value = _value(challenger, primary)
    if implausibly_perfect(config, challenger) or leakage:
        if leakage:
            why = (
                f"suspected target leakage through feature(s) {', '.join(leakage)}: remove them from the features "
                f"or fix how they are computed (they must not be derived from the label)"
            )
        else:
            why = (
                "no single feature explains it: check for rows shared between the training data and the holdout, "
                "or a combination of features derived from the label"
            )
        shown = "n/a" if value is None else f"{value:.4f}"
        limit = "" if threshold is None else f" >= leakage threshold {threshold:g}"
        return False, f"holdout {primary} {shown}{limit} is implausibly good; {why}"
    if threshold is None or primary not in BOUNDED_METRICS or value is None:
        return None
    return True, f"holdout {primary} {value:.4f} < leakage threshold {threshold:g}: no sign of target leakage"


# --------------------------------------------------------------------------- leakage suspects


def leakage_suspects(holdout: pd.DataFrame, config: PipelineConfig, *, threshold: float = LEAKAGE_FEATURE_THRESHOLD) -> list[str]:
    """Features whose association with the target on their own is near perfect, e.g. "'x' (univariate AUC 1.000)".

    Numeric features: the AUC of the raw value (either direction); categorical ones: the AUC of the
    leave-one-out target rate of their category (so an ID-like column does not look predictive).
    Classification averages one-vs-rest over the classes; regression uses |Pearson r| instead of AUC.
    """
    y = holdout[config.target]
    suspects = []
    for feature in config.features:
        if feature.name not in holdout.columns:
            continue
        score = _association(holdout[feature.name], y, feature.type, config.is_classification)
        if score is not None and score >= threshold:
            kind = "univariate AUC" if config.is_classification else "|r| with the target"
            suspects.append(f"{feature.name!r} ({kind} {score:.3f})")
    return suspects


def _association(column: pd.Series, y: pd.Series, kind: str, classification: bool) -> float | None:
    import numpy as np
    import pandas as pd

    if classification:
        classes = sorted(pd.unique(y).tolist(), key=str)
        targets = [(y == c).astype(float) for c in (classes[-1:] if len(classes) == 2 else classes)]
    else:
        targets = [y.astype(float)]
    scores = []
    for target in targets:
        if kind == "numeric":
            x = pd.to_numeric(column, errors="coerce")
            orient = True
        else:
            x = _leave_one_out_mean(column, target)
            orient = False
        mask = x.notna().to_numpy()
        xs, ts = x.to_numpy(dtype=float)[mask], target.to_numpy(dtype=float)[mask]
        if len(xs) < 2:
            return None
        if classification:
            if ts.min() == ts.max():
                continue
            from sklearn.metrics import roc_auc_score

            auc = float(roc_auc_score(ts, xs))
            scores.append(max(auc, 1.0 - auc) if orient else auc)
        else:
            if xs.std() == 0 or ts.std() == 0:
                scores.append(0.0)
                continue
            scores.append(abs(float(np.corrcoef(xs, ts)[0, 1])))
    return float(np.mean(scores)) if scores else None


def _leave_one_out_mean(column: pd.Series, target: pd.Series) -> pd.Series:
    """Each row's category mean of `target`, leaving the row itself out (singletons: the overall mean)."""
    keys = column.astype("string").fillna("<missing>")
    total = target.groupby(keys).transform("sum")
    count = target.groupby(keys).transform("count")
    loo = (total - target) / (count - 1)
    return loo.where(count > 1, target.mean())


# --------------------------------------------------------------------------- evaluate


@dataclass
class _Loaded:
    uri: str
    model: Any
    signature: Any


def evaluate(
    client: MlflowClient,
    config: PipelineConfig,
    holdout: pd.DataFrame,
    *,
    challenger_uri: str,
    champion_uri: str | None,
    window_end: str | None = None,
    champion_window_end: str | None = None,
) -> EvaluationResult:
    """Score the challenger (and the champion, when there is one) on `holdout` and decide.

    `window_end` / `champion_window_end`: the last days of their training data (see `decide`).

    URIs name versions, e.g. ``models:/churn_classifier/3`` (resolve aliases first so the verdict
    is about a fixed version). Raises EvaluationError for what cannot be compared (a deleted
    version, a one-class holdout, missing columns); a differing signature or leakage is a REJECT.
    """
    import numpy as np

    _check_holdout(holdout, config)
    pickle_ok = config.security.allow_pickle_models
    challenger = _load(client, challenger_uri, "challenger", allow_pickle=pickle_ok)
    champion = _load(client, champion_uri, "champion", allow_pickle=pickle_ok) if champion_uri else None
    y = holdout[config.target].to_numpy()
    names = list(dict.fromkeys([*config.metrics.all, *config.evaluation.guard_rails, *config.evaluation.floors]))

    ch_scores, ch_pred, labels = _score(challenger, holdout, config, role="challenger")
    if labels is not None:
        unknown = sorted(set(y.tolist()) - set(labels), key=str)
        if unknown:
            raise EvaluationError(
                f"{config.path}: target column {config.target!r} holds class(es) {unknown} that the challenger "
                f"({challenger_uri}) never saw (its classes: {labels}); retrain on data that includes them"
            )
    ch_metrics = training.compute_metrics(config.task, y, ch_pred, ch_scores, names, labels=labels)

    signature_diff: list[str] = []
    cp_metrics: dict[str, float] | None = None
    cp_scores = None
    bootstrap = None
    if champion is not None:
        signature_diff = compare_signatures(champion.signature, challenger.signature)
        cp_metrics = {}
        try:
            cp_scores, cp_pred, cp_labels = _score(champion, holdout, config, role="champion")
            if labels is not None and cp_labels is not None:
                cp_scores = _align_classes(cp_scores, cp_labels, labels, signature_diff)
            if cp_scores is not None:
                cp_metrics = training.compute_metrics(config.task, y, cp_pred, cp_scores, names, labels=labels)
        except EvaluationError as exc:
            signature_diff.append(f"the champion cannot score this holdout: {exc}")
            cp_scores = None
        if cp_scores is not None:
            bootstrap = paired_bootstrap(
                y, ch_scores, cp_scores, config.metrics.primary, task=config.task, labels=labels,
                n=config.evaluation.bootstrap_samples, seed=config.seed, confidence=config.evaluation.confidence,
            )

    leakage = leakage_suspects(holdout, config) if implausibly_perfect(config, ch_metrics) else []
    verdict = decide(
        config, ch_metrics, cp_metrics, bootstrap, signature_diff=signature_diff, leakage=leakage,
        window_end=window_end, champion_window_end=champion_window_end,
    )
    log.info("%s vs %s: %s", challenger_uri, champion_uri or "no champion", verdict.decision)
    for reason in verdict.reasons:
        log.info("  %s", reason)
    return EvaluationResult(
        config=config,
        verdict=verdict,
        challenger_uri=challenger_uri,
        champion_uri=champion_uri,
        challenger_metrics=ch_metrics,
        champion_metrics=cp_metrics,
        bootstrap=bootstrap,
        signature_diff=signature_diff,
        leakage=leakage,
        y_true=np.asarray(y),
        labels=labels,
        challenger_scores=ch_scores,
        champion_scores=cp_scores,
    )


def _check_holdout(holdout: pd.DataFrame, config: PipelineConfig) -> None:
    where = f"{config.path}: pipeline {config.name!r}"
    if holdout is None or len(holdout) == 0:
        raise EvaluationError(f"{where}: the holdout has no rows; nothing to score the models on")
    if config.target not in holdout.columns:
        raise EvaluationError(
            f"{where}: the holdout lacks the target column {config.target!r}; present: {', '.join(map(str, holdout.columns))}"
        )
    y = holdout[config.target]
    if y.isna().any():
        raise EvaluationError(
            f"{where}: target column {config.target!r} has {int(y.isna().sum())} missing value(s) in the holdout; "
            f"labels must be complete"
        )
    if config.is_classification and y.nunique() < 2:
        only = y.iloc[0]
        only = only.item() if hasattr(only, "item") else only
        raise EvaluationError(
            f"{where}: target column {config.target!r} has a single class ({only!r}) in all {len(y)} holdout rows; "
            f"the models cannot be compared on it (AUC is undefined): use a larger or stratified holdout "
            f"(split.stratify) or a wider window (source.window_days)"
        )


def _parse_models_uri(uri: str) -> tuple[str, str | None, str | None] | None:
    """models:/name/version -> (name, version, None); models:/name@alias -> (name, None, alias)."""
    if not uri.startswith("models:/"):
        return None
    rest = uri[len("models:/") :].strip("/")
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        return name, None, alias
    name, _, version = rest.rpartition("/")
    return (name, version, None) if name else None


def _load(client: MlflowClient, uri: str, role: str, *, allow_pickle: bool = False) -> _Loaded:
    """The model behind `uri`, after checking in the registry that its version exists and is READY."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    parsed = _parse_models_uri(uri)
    if parsed is not None:
        name, version, alias = parsed
        try:
            mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, str(version))
        except MlflowException as exc:
            if exc.error_code not in _NOT_FOUND_CODES:
                raise
            what = f"alias {alias!r}" if alias else f"version {version}"
            raise EvaluationError(
                f"{role} {uri}: {what} of registered model {name!r} does not exist (deleted?); nothing was "
                f"evaluated or moved. Point the {role} alias at an existing version, or register a new one"
            ) from None
        if mv.status != "READY":
            raise EvaluationError(f"{role} {uri}: version {mv.version} of {name!r} is {mv.status}, not READY")
    tracking.configure(client)  # `models:/` URIs resolve through MLflow's global registry URI
    try:
        model = training.load_model(uri, allow_pickle=allow_pickle)
        signature = get_model_info(uri).signature
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND_CODES:
            raise
        raise EvaluationError(f"{role} {uri}: the model's files cannot be found: {exc.message}") from None
    return _Loaded(uri=uri, model=model, signature=signature)


def _score(
    loaded: _Loaded, holdout: pd.DataFrame, config: PipelineConfig, *, role: str
) -> tuple[np.ndarray, np.ndarray, list[Any] | None]:
    """(scores, predictions, class labels) of one model: predict_proba for classifiers, predict for regressors."""
    import numpy as np

    columns = _input_columns(loaded.signature) or config.feature_names
    missing = [c for c in columns if c not in holdout.columns]
    if missing:
        raise EvaluationError(
            f"{role} {loaded.uri} needs column(s) {', '.join(map(repr, missing))} that the holdout lacks"
        )
    x = holdout[columns]
    model = loaded.model
    try:
        pred = np.asarray(model.predict(x))
        if not config.is_classification:
            return pred.astype(float), pred, None
        labels = list(model.classes_)
        if hasattr(model, "predict_proba"):
            return np.asarray(model.predict_proba(x), dtype=float), pred, labels
        if hasattr(model, "decision_function") and len(labels) == 2:
            decision = np.asarray(model.decision_function(x), dtype=float)
            return 1.0 / (1.0 + np.exp(-decision)), pred, labels  # monotone: same ranks, same 0.5 cut
    except (ValueError, TypeError, KeyError) as exc:
        raise EvaluationError(f"{role} {loaded.uri} cannot score the holdout: {exc}") from exc
    raise EvaluationError(f"{role} {loaded.uri}: a multiclass model without predict_proba cannot be evaluated")


def _input_columns(signature: Any) -> list[str]:
    if signature is None or signature.inputs is None:
        return []
    return [c["name"] for c in signature.inputs.to_dict() if "name" in c]


def _align_classes(scores: np.ndarray, have: list[Any], want: list[Any], diff: list[str]) -> np.ndarray | None:
    """The champion's probability columns in the challenger's class order; None (and a diff) if the classes differ."""
    if set(have) != set(want):
        diff.append(f"classes differ: champion {have}, challenger {want}")
        return None
    if scores.ndim == 1 or have == want:
        return scores
    return scores[:, [have.index(c) for c in want]]


def compare_signatures(champion: Any, challenger: Any) -> list[str]:
    """The differences between two MLflow model signatures, in words ([] when they match)."""
    if champion is None or challenger is None:
        who = "champion" if champion is None else "challenger"
        log.warning("the %s has no model signature; input columns cannot be compared", who)
        return []
    old = {c.get("name"): c.get("type") for c in champion.inputs.to_dict()}
    new = {c.get("name"): c.get("type") for c in challenger.inputs.to_dict()}
    diff = []
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    if added:
        diff.append(f"new column(s) {', '.join(map(repr, added))} the champion does not take")
    if removed:
        diff.append(f"missing column(s) {', '.join(map(repr, removed))} the champion takes")
    for n in new:
        if n in old and new[n] != old[n]:
            diff.append(f"column {n!r} changed type {old[n]} -> {new[n]}")
    if champion.outputs is not None and challenger.outputs is not None:
        before = [c.get("type") for c in champion.outputs.to_dict()]
        after = [c.get("type") for c in challenger.outputs.to_dict()]
        if before != after:
            diff.append(f"output type changed {before} -> {after}")
    return diff


# --------------------------------------------------------------------------- logging


def write_artifacts(result: EvaluationResult, folder: str | Path) -> list[Path]:
    """verdict.json, metrics.json, the PNG plots and report.html, written into `folder`."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    config = result.config
    written = []
    if config.is_classification:
        scores = {"challenger": result.challenger_scores}
        if result.champion_scores is not None:
            scores["champion"] = result.champion_scores
        written.append(reports.roc_plot(result.y_true, scores, result.labels or [], out / "roc.png"))
    else:
        preds = {"challenger": result.challenger_scores}
        if result.champion_scores is not None:
            preds["champion"] = result.champion_scores
        written.append(reports.residual_plot(result.y_true, preds, out / "residuals.png", seed=config.seed))
    boot = result.bootstrap
    if boot is not None:
        written.append(
            reports.bootstrap_plot(
                boot.samples, out / "bootstrap.png", metric=boot.metric, diff=boot.diff, low=boot.low,
                high=boot.high, confidence=boot.confidence, margin=config.evaluation.margin,
            )
        )
    images = [p.name for p in written]
    (out / "verdict.json").write_text(json.dumps(_json_safe(result.to_dict()), indent=2), encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(_json_safe(result.metric_table()), indent=2), encoding="utf-8")
    (out / "report.html").write_text(reports.evaluation_html(result, images), encoding="utf-8")
    return [*written, out / "verdict.json", out / "metrics.json", out / "report.html"]


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
    evaluation.champion_version ("none" without a champion). Returns the run id.
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
                "margin": ev.margin,
                "confidence": ev.confidence,
                "bootstrap_samples": ev.bootstrap_samples,
                "seed": result.config.seed,
                "n_rows.holdout": result.n_rows,
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
    for key, value in version_tags.items():
        client.set_model_version_tag(model_name, str(challenger_version), key, value)
    log.info("%s version %s: %s (evaluation run %s)", model_name, challenger_version, verdict.decision, run_id)
    return run_id


def _run_metrics(result: EvaluationResult) -> dict[str, float]:
    metrics: dict[str, float] = {"decision.promote": float(result.verdict.promote)}
    for row in result.metric_table():
        name = row["metric"]
        metrics[f"challenger.{name}"] = row["challenger"]
        if row["champion"] is not None:
            metrics[f"champion.{name}"] = row["champion"]
            metrics[f"diff.{name}"] = row["difference"]
    if result.bootstrap is not None:
        metrics["bootstrap.gain"] = result.bootstrap.diff
        metrics["bootstrap.low"] = result.bootstrap.low
        metrics["bootstrap.high"] = result.bootstrap.high
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


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
