"""The paired bootstrap of the gains on the gate's metrics, as weighted metrics over the test rows.

"Gain" is oriented so that positive means better (``challenger - champion`` for higher-is-better
metrics, ``champion - challenger`` for LOWER_IS_BETTER ones). Classification resamples within each
class (stratified), so every resample holds every class the test rows hold, and all metrics are
computed on the same resamples (paired across models and across metrics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import EvaluationError
from airflow_mlops.core.labels import positive_index
from airflow_mlops.core.training import LOWER_IS_BETTER

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np


#: More than this share of resamples without a value for a metric: its interval is not used (the gate refuses).
MAX_UNUSABLE = 0.01


@dataclass(frozen=True)
class BootstrapResult:
    """The observed gain on the primary metric and its percentile interval (positive = challenger better)."""

    diff: float
    low: float
    high: float
    samples: np.ndarray = field(repr=False)  # the usable resamples' gains
    metric: str = ""
    confidence: float = 0.95
    unusable: int = 0  # resamples whose metric could not be computed (NaN): more than MAX_UNUSABLE, no verdict

    @property
    def resamples(self) -> int:
        return len(self.samples) + self.unusable

    @property
    def usable(self) -> bool:
        """True when at most MAX_UNUSABLE of the resamples failed to compute the metric."""
        return self.resamples > 0 and self.unusable <= MAX_UNUSABLE * self.resamples

    def unusable_text(self) -> str:
        """Why the interval cannot be trusted, in words (for a FAIL reason)."""
        return (
            f"{self.unusable:,} of {self.resamples:,} bootstrap resamples ({self.unusable / max(self.resamples, 1):.1%}) "
            f"could not compute {self.metric} (more than {MAX_UNUSABLE:.0%}): the interval is unreliable, so the gate "
            f"refuses to judge on it"
        )


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
    positive: Any = None,
) -> BootstrapResult:
    """The paired bootstrap of the gain on one metric (see `paired_bootstraps`)."""
    return paired_bootstraps(
        y_true,
        pred_challenger,
        pred_champion,
        [metric],
        task=task,
        labels=labels,
        n=n,
        seed=seed,
        confidence=confidence,
        positive=positive,
    )[metric]


def paired_bootstraps(
    y_true: Any,
    pred_challenger: Any,
    pred_champion: Any,
    metrics: Sequence[str],
    *,
    task: str,
    labels: Sequence[Any] | None,
    n: int,
    seed: int,
    confidence: float,
    positive: Any = None,
) -> dict[str, BootstrapResult]:
    """Resample test rows with replacement (the same rows for both models and every metric) and take the
    percentile interval of the gain on each of `metrics`.

    `pred_*` are predict_proba arrays (n, n_classes) in `labels` order (1-D positive-class
    probabilities are accepted for binary tasks) or regression predictions. Label metrics use the
    most probable class; binary ones treat `positive` as the positive class (default: the last of
    `labels`, see core.labels). Same seed, same result.

    Classification draws each class's rows from that class only (a stratified bootstrap: each resample
    keeps every class's count), so a rare class is in every resample. A resample is a count vector w
    (how often each row was drawn), so every metric is a weighted metric over the original rows,
    computed in O(rows): AUC as a weighted Mann-Whitney statistic against the negatives sorted once,
    label metrics from a weighted confusion matrix, the others from per-row losses. The values equal
    compute_metrics on the resampled rows. Resamples where a metric is undefined are counted
    (`BootstrapResult.unusable`), not silently dropped.
    """
    import numpy as np

    y = np.asarray(y_true)
    rows = len(y)
    names = list(dict.fromkeys(metrics))
    if rows < 2:
        raise EvaluationError(
            f"paired bootstrap of {', '.join(names)}: the test rows are {rows} row(s); need at least 2"
        )
    if not 0 < confidence < 1:
        raise EvaluationError(f"paired bootstrap: confidence must be in (0, 1), got {confidence}")
    kernels = []
    for metric in names:
        challenger = metric_kernel(metric, task, y, pred_challenger, labels, positive)
        champion = metric_kernel(metric, task, y, pred_champion, labels, positive)
        kernels.append((-1.0 if metric in LOWER_IS_BETTER else 1.0, challenger, champion))

    def gains(w: np.ndarray) -> np.ndarray:
        return np.array([sign * (challenger(w) - champion(w)) for sign, challenger, champion in kernels])

    strata = class_strata(y, task, labels)
    observed = gains(np.ones(rows))
    samples = multinomial_resamples(np.random.default_rng(seed), rows, n, gains, strata=strata).reshape(n, len(names))
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for i, metric in enumerate(names):
        column = samples[:, i]
        valid = column[np.isfinite(column)]
        low, high = np.quantile(valid, [alpha, 1.0 - alpha]) if len(valid) else (math.nan, math.nan)
        out[metric] = BootstrapResult(
            float(observed[i]),
            float(low),
            float(high),
            valid,
            metric=metric,
            confidence=confidence,
            unusable=n - len(valid),
        )
    return out


def class_strata(y: np.ndarray, task: str, labels: Sequence[Any] | None) -> list[np.ndarray] | None:
    """The rows of each class (classification), in `labels` order: what the gate's bootstrap resamples within;
    None for regression. With the same seed, `multinomial_resamples` on these strata draws the gate's resamples."""
    import numpy as np

    if task == "regression":
        return None
    classes = list(labels) if labels is not None else sorted(set(y.tolist()))
    index = _label_index(y, classes)
    return [rows_of for c in range(len(classes)) if len(rows_of := np.flatnonzero(index == c))]


def multinomial_resamples(
    rng: np.random.Generator,
    rows: int,
    n: int,
    statistic: Callable[[np.ndarray], Any],
    *,
    strata: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """`statistic(w)` for `n` resamples of `rows` rows with replacement, w counting how often each row was drawn.

    `strata` (row indices per group, together every row once): each group is resampled on its own, keeping its
    size (a stratified bootstrap). `statistic` may return one number (samples: shape (n,)) or a 1-D array of
    them (shape (n, k)). One BLAS thread: a resample's dot products are too short to share, and OpenBLAS's
    idle threads spin, which doubled the CPU time (same wall time) and slows whatever else the worker runs.
    """
    import numpy as np
    from threadpoolctl import threadpool_limits

    if strata is not None and sum(len(s) for s in strata) != rows:
        raise EvaluationError(f"bootstrap strata hold {sum(len(s) for s in strata)} rows, not the {rows} test rows")
    samples: np.ndarray | None = None
    with threadpool_limits(1, user_api="blas"):
        for b in range(n):
            if strata is None:
                drawn = rng.integers(0, rows, rows)
            else:
                drawn = np.concatenate([group[rng.integers(0, len(group), len(group))] for group in strata])
            value = np.asarray(statistic(np.bincount(drawn, minlength=rows).astype(float)), dtype=float)
            if samples is None:
                samples = np.empty((n, *value.shape))
            samples[b] = value
    return samples if samples is not None else np.empty(0)


def metric_kernel(
    metric: str, task: str, y: np.ndarray, pred: Any, labels: Sequence[Any] | None, positive: Any = None
) -> Callable[[np.ndarray], float]:
    """f(w) -> the metric with row weights w (counts of a resample; all ones: the test rows themselves),
    with the semantics of training.compute_metrics."""
    import numpy as np

    if task == "regression":
        return regression_kernel(metric, np.asarray(y, dtype=float), np.asarray(pred, dtype=float))
    labels = list(labels) if labels is not None else sorted(set(y.tolist()))
    k = len(labels)
    try:
        pos = positive_index(labels, positive) if k == 2 else -1
    except ValueError as exc:
        raise EvaluationError(f"metric {metric!r}: {exc}") from None
    proba = np.asarray(pred, dtype=float)
    if proba.ndim == 1:
        if k != 2:
            raise EvaluationError(f"metric {metric!r}: 1-D scores are only accepted for a binary task")
        proba = np.column_stack([1.0 - proba, proba] if pos == 1 else [proba, 1.0 - proba])
    if proba.shape != (len(y), k):
        raise EvaluationError(f"metric {metric!r}: predictions have shape {proba.shape}, expected ({len(y)}, {k})")
    y_idx = _label_index(y, labels)
    if metric == "roc_auc":
        if k == 2:
            return auc_kernel(y_idx == pos, proba[:, pos])
        per_class = [auc_kernel(y_idx == c, proba[:, c]) for c in range(k)]
        return lambda w: float(np.mean([f(w) for f in per_class]))
    if metric == "log_loss":
        eps = np.finfo(proba.dtype).eps
        loss = -np.log(np.clip(proba[np.arange(len(y)), y_idx], eps, 1.0 - eps))
        return lambda w: float(np.dot(w, loss) / w.sum())
    if metric in ("accuracy", "f1", "precision", "recall"):
        code = y_idx * k + proba.argmax(axis=1)
        return lambda w: from_confusion(metric, np.bincount(code, weights=w, minlength=k * k), k, pos)
    raise EvaluationError(f"unknown classification metric {metric!r}")


def _label_index(y: np.ndarray, labels: list[Any]) -> np.ndarray:
    import numpy as np

    position = {label: i for i, label in enumerate(labels)}
    try:
        return np.fromiter((position[v] for v in y.tolist()), dtype=np.intp, count=len(y))
    except KeyError as exc:
        raise EvaluationError(
            f"the test rows hold class {exc.args[0]!r}, unknown to the model (classes {labels})"
        ) from None


def auc_kernel(positive: np.ndarray, score: np.ndarray) -> Callable[[np.ndarray], float]:
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


def from_confusion(metric: str, counts: np.ndarray, k: int, pos: int = 1) -> float:
    """accuracy / precision / recall / f1 from a flattened (weighted) confusion matrix (binary: of the
    class at index `pos`, multiclass: macro average; zero_division=0)."""
    return float(confusion_metric(metric, counts.reshape(1, -1), k, pos)[0])


def confusion_metric(metric: str, counts: np.ndarray, k: int, pos: int) -> np.ndarray:
    """`from_confusion` of each row of `counts` (flattened confusion matrices, e.g. resampled), vectorised. A
    binary task scores the class at index `pos` (pos < 0: the macro average, as for multiclass)."""
    import numpy as np

    cm = counts.reshape(len(counts), k, k).astype(float)
    total = cm.sum(axis=(1, 2))
    tp = np.diagonal(cm, axis1=1, axis2=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            return tp.sum(axis=1) / total
        predicted, actual = cm.sum(axis=1), cm.sum(axis=2)
        if k == 2 and pos >= 0:
            tp, predicted, actual = tp[:, pos : pos + 1], predicted[:, pos : pos + 1], actual[:, pos : pos + 1]
        if metric == "precision":
            per_class = np.where(predicted > 0, tp / predicted, 0.0)
        elif metric == "recall":
            per_class = np.where(actual > 0, tp / actual, 0.0)
        else:
            per_class = np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0)
    return per_class.mean(axis=1)


def regression_kernel(metric: str, y: np.ndarray, pred: np.ndarray) -> Callable[[np.ndarray], float]:
    """The regression `metric` of `pred` against `y` as a function of the row weights (a resample)."""
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
        centred_sq = centred**2

        def r2(w: np.ndarray) -> float:
            total_w = float(w.sum())
            mean = float(np.dot(w, centred)) / total_w
            spread = float(np.dot(w, centred_sq))
            total = spread - total_w * mean**2
            # a constant target (a resample of one value) has no variance to explain: rounding leaves ~1e-16 of it
            return 1.0 - float(np.dot(w, sq)) / total if total > 1e-12 * spread else math.nan

        return r2
    raise EvaluationError(f"unknown regression metric {metric!r}")
