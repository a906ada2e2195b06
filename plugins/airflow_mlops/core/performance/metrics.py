"""Realized metrics of a day's joined predictions: the primary metric with a bootstrap interval, the
guard-rail metrics, calibration error and positive rates, with the semantics of ``training.compute_metrics``.

Fast on purpose (a day can hold millions of rows). Up to ``EXACT_MAX_ROWS`` rows the interval is the
gate's own bootstrap: multinomial resamples of the rows as weights on the exact kernels of
``core.evaluation.bootstrap``. Above it, a Poisson bootstrap over cells of rows, so a resample costs
O(cells), not O(rows), and all resamples are drawn in one vectorised call:

- label metrics (accuracy, precision, recall, f1): the cells are the confusion matrix's, so the
  resampled metric is exact;
- ROC AUC: rows sorted once by score (with the label packed into the sort key), tied scores grouped
  (the exact AUC, ties counted half, comes from these groups), adjacent groups merged into
  ``AUC_BINS`` bins of about equal size (a tie group is never split). A resample draws Poisson counts
  of positives and negatives per bin; pairs inside one bin count as ties, so the binned AUC is a
  slightly different statistic: the interval is the exact AUC plus the quantiles of (resampled binned
  AUC - binned AUC), i.e. the binned statistic supplies the spread only;
- means of a per-row loss (log_loss, mae, rmse's squared error): cells are quantile bins of the loss;
  a resample is the count-weighted mean of the bin means plus a normal term restoring the
  within-bin variance the bins leave out.

Same rows, same seed: the same interval. ``benchmarks/decay_quality.py`` measures the speed (1M rows)
and the rule's decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import PerformanceError
from airflow_mlops.core.evaluation.bootstrap import (
    auc_kernel,
    confusion_metric,
    from_confusion,
    multinomial_resamples,
    regression_kernel,
)
from airflow_mlops.core.performance.join import ACTUAL
from airflow_mlops.core.training import LOWER_IS_BETTER

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    import pandas as pd

    from airflow_mlops.core.config import PipelineConfig

#: Up to this many rows the bootstrap resamples rows (exact, O(rows) per resample); above, cells (see the doc).
EXACT_MAX_ROWS = 50_000
#: Bins of the ROC AUC's binned bootstrap, and of a per-row loss's.
AUC_BINS = 500
LOSS_BINS = 500
CALIBRATION_BINS = 10
LABEL_METRICS = ("accuracy", "precision", "recall", "f1")
MEAN_LOSS_METRICS = ("log_loss", "mae", "rmse")


@dataclass
class RealizedMetrics:
    """One model version's realized metrics on one day's labelled rows."""

    version: str
    rows: int
    metric: str  # the primary metric
    value: float  # NaN when it cannot be computed (e.g. one class only)
    low: float | None  # the bootstrap interval of the primary metric
    high: float | None
    confidence: float
    metrics: dict[str, float] = field(default_factory=dict)  # every metric, calibration error, positive rates
    method: str = ""  # how the interval was computed
    notes: list[str] = field(default_factory=list)

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rows": self.rows,
            "metric": self.metric,
            "value": _finite(self.value),
            "low": _finite(self.low),
            "high": _finite(self.high),
            "confidence": self.confidence,
            "metrics": {k: _finite(v) for k, v in self.metrics.items()},
            "method": self.method,
            "notes": list(self.notes),
        }


def metric_names(config: PipelineConfig) -> list[str]:
    """The metrics a check reports: the config's metrics, its guard rails and its floors (primary first)."""
    ev = config.evaluation
    return list(dict.fromkeys([*config.metrics.all, *ev.guard_rails, *ev.floors]))


def realized_metrics(
    joined: pd.DataFrame,
    config: PipelineConfig,
    *,
    positive: Any = None,
    classes: Sequence[Any] | None = None,
    n_boot: int,
    seed: int | Sequence[int],
    confidence: float = 0.95,
    version: str = "all",
) -> RealizedMetrics:
    """The realized metrics of `joined` (``join_day``'s rows: ``score``, ``predicted``, ``actual``).

    Binary: ``score`` is the probability of `positive`; the label metrics use ``predicted`` (the class the
    model served). Multiclass: the label metrics only (the predictions carry no per-class probabilities).
    Regression: ``score`` is the prediction.
    """
    import numpy as np

    rows = len(joined)
    primary = config.metrics.primary
    names = metric_names(config)
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    if rows == 0:
        return RealizedMetrics(version, 0, primary, math.nan, None, None, confidence, {}, "none", ["no labelled rows"])
    if config.task == "binary_classification":
        values, kernel_for, fast_for = _binary(joined, names, positive, notes)
    elif config.task == "multiclass_classification":
        values, kernel_for, fast_for = _multiclass(joined, names, classes, notes)
        if primary not in LABEL_METRICS:
            raise PerformanceError(
                f"{config.path}: metrics.primary {primary!r} needs per-class probabilities, which batch predictions "
                f"do not carry (score, predicted); judge a multiclass model on accuracy, f1, precision or recall"
            )
    else:
        values, kernel_for, fast_for = _regression(joined, names)
    value = values.get(primary, math.nan)
    low = high = None
    method = ""
    if math.isfinite(value) and rows >= 2:
        alpha = (1.0 - confidence) / 2.0
        fast = fast_for(primary) if rows > EXACT_MAX_ROWS else None
        if fast is not None:
            samples, method = fast(rng, n_boot)
        else:
            samples = multinomial_resamples(rng, rows, n_boot, kernel_for(primary))
            method = f"bootstrap of the rows ({n_boot} multinomial resamples)"
        valid = samples[np.isfinite(samples)]
        if len(valid) >= max(2, n_boot // 2):
            low, high = (float(q) for q in np.quantile(valid, [alpha, 1.0 - alpha]))
        else:
            notes.append(f"only {len(valid)} of {n_boot} resamples could be scored: no interval")
    return RealizedMetrics(version, rows, primary, value, low, high, confidence, values, method, notes)


# --------------------------------------------------------------------------- by task


def _binary(joined: pd.DataFrame, names: list[str], positive: Any, notes: list[str]) -> tuple[dict, Any, Any]:
    import numpy as np

    score = np.ascontiguousarray(joined["score"].to_numpy(dtype=float))
    if not np.isfinite(score).all() or score.min() < 0 or score.max() > 1:
        raise PerformanceError(
            "binary predictions must carry the positive class's probability in `score` (0..1); "
            f"got values from {np.nanmin(score):g} to {np.nanmax(score):g}: re-score the day"
        )
    actual = _values(joined[ACTUAL])
    predicted = _values(joined["predicted"])
    if positive is None:  # not given: the rule of core.labels without a config (the last class in sorted order)
        seen = {_plain(v) for v in [*set(actual.tolist()), *set(predicted.tolist())]}
        positive = sorted(seen, key=str)[-1] if any(isinstance(v, str) for v in seen) else sorted(seen)[-1]
    y = actual == positive
    p = predicted == positive
    values: dict[str, float] = {}
    code = y.astype(np.intp) * 2 + p  # confusion cell: 0 TN, 1 FP, 2 FN, 3 TP (positive at index 1)
    cells = np.bincount(code, minlength=4).astype(float)
    empty = np.zeros(0)
    groups = _score_groups(y, score) if "roc_auc" in names else ScoreGroups(empty, empty, empty, empty)
    eps = np.finfo(float).eps
    loss = -np.log(np.clip(np.where(y, score, 1.0 - score), eps, 1.0 - eps)) if "log_loss" in names else empty
    for name in names:
        if name in LABEL_METRICS:
            values[name] = from_confusion(name, cells, 2, 1)
        elif name == "roc_auc":
            values[name] = _grouped_auc(groups.pos, groups.neg)
            if not math.isfinite(values[name]):
                notes.append("roc_auc is undefined: the labelled rows hold one class only")
        elif name == "log_loss":
            values[name] = float(loss.mean())
    values["calibration_error"] = expected_calibration_error(y, score)
    values["positive_rate"] = float(y.mean())
    values["predicted_positive_rate"] = float(p.mean())
    values["mean_score"] = float(score.mean())

    def kernel_for(metric: str) -> Callable[[np.ndarray], float]:
        if metric in LABEL_METRICS:
            return lambda w: from_confusion(metric, np.bincount(code, weights=w, minlength=4), 2, 1)
        if metric == "roc_auc":
            return auc_kernel(y, score)
        if metric == "log_loss":
            return lambda w: float(np.dot(w, loss) / w.sum())
        raise PerformanceError(f"no bootstrap for metric {metric!r}")

    def fast_for(metric: str) -> Callable | None:
        if metric in LABEL_METRICS:
            return lambda rng, b: (confusion_metric(metric, _poisson(rng, cells, b), 2, 1), _CELLS_METHOD)
        if metric == "roc_auc":
            return lambda rng, b: (_binned_auc_samples(groups, values["roc_auc"], rng, b), _AUC_METHOD)
        if metric == "log_loss":
            return lambda rng, b: (_mean_loss_samples(loss, rng, b), _LOSS_METHOD)
        return None

    return values, kernel_for, fast_for


def _multiclass(
    joined: pd.DataFrame, names: list[str], classes: Sequence[Any] | None, notes: list[str]
) -> tuple[dict, Any, Any]:
    import numpy as np

    actual, predicted = _values(joined[ACTUAL]), _values(joined["predicted"])
    labels = list(classes) if classes else sorted(set(actual.tolist()) | set(predicted.tolist()), key=str)
    index = {c: i for i, c in enumerate(labels)}
    k = len(labels)
    try:
        code = np.fromiter(
            (index[a] * k + index[b] for a, b in zip(actual.tolist(), predicted.tolist(), strict=True)),
            dtype=np.intp,
            count=len(actual),
        )
    except KeyError as exc:
        raise PerformanceError(f"class {exc.args[0]!r} is not among the model's classes {labels}") from None
    cells = np.bincount(code, minlength=k * k).astype(float)
    values = {name: from_confusion(name, cells, k) for name in names if name in LABEL_METRICS}
    skipped = [name for name in names if name not in LABEL_METRICS]
    if skipped:
        notes.append(f"{', '.join(skipped)}: not computed (batch predictions carry no per-class probabilities)")
    values["accuracy"] = from_confusion("accuracy", cells, k)

    def kernel_for(metric: str) -> Callable[[np.ndarray], float]:
        return lambda w: from_confusion(metric, np.bincount(code, weights=w, minlength=k * k), k)

    def fast_for(metric: str) -> Callable | None:
        return lambda rng, b: (confusion_metric(metric, _poisson(rng, cells, b), k, -1), _CELLS_METHOD)

    return values, kernel_for, fast_for


def _regression(joined: pd.DataFrame, names: list[str]) -> tuple[dict, Any, Any]:
    import numpy as np

    actual = joined[ACTUAL].to_numpy(dtype=float)
    pred = joined["score"].to_numpy(dtype=float)
    if not np.isfinite(pred).all():
        raise PerformanceError("regression predictions hold missing or infinite scores: re-score the day")
    error = actual - pred
    ones = np.ones(len(actual))
    values = {name: regression_kernel(name, actual, pred)(ones) for name in names}
    values["mean_actual"] = float(actual.mean())
    values["mean_predicted"] = float(pred.mean())

    def kernel_for(metric: str) -> Callable[[np.ndarray], float]:
        return regression_kernel(metric, actual, pred)

    def fast_for(metric: str) -> Callable | None:
        if metric == "mae":
            return lambda rng, b: (_mean_loss_samples(np.abs(error), rng, b), _LOSS_METHOD)
        if metric == "rmse":
            return lambda rng, b: (np.sqrt(np.maximum(_mean_loss_samples(error**2, rng, b), 0.0)), _LOSS_METHOD)
        return None  # r2: the exact bootstrap

    return values, kernel_for, fast_for


# --------------------------------------------------------------------------- kernels


_CELLS_METHOD = "Poisson bootstrap of the confusion-matrix cells"
_AUC_METHOD = f"Poisson bootstrap over {AUC_BINS} score bins, centred on the exact AUC"
_LOSS_METHOD = f"Poisson bootstrap over {LOSS_BINS} loss bins (+ within-bin variance)"


def expected_calibration_error(y: np.ndarray, score: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error: |observed positive rate - mean score| per equal-width score bin,
    weighted by the bin's share of rows (``bins`` bins over [0, 1])."""
    import numpy as np

    index = np.minimum((score * bins).astype(np.intp), bins - 1)
    observed = np.bincount(index, weights=y.astype(float), minlength=bins)
    predicted = np.bincount(index, weights=score, minlength=bins)
    return float(np.abs(observed - predicted).sum() / len(score))


def _score_groups(y: np.ndarray, score: np.ndarray) -> ScoreGroups:
    """Positives and negatives per distinct score, in ascending score order (one sort of the rows).

    Scores are probabilities (>= 0), whose float64 bit patterns sort like the numbers: shifted left one
    bit they leave room for the label, so one plain integer sort orders scores and carries labels along.
    """
    import numpy as np

    n = len(score)
    key = (score.view(np.uint64) << np.uint64(1)) | y.astype(np.uint64)
    key.sort()
    value = key >> np.uint64(1)
    ends = np.append(np.flatnonzero(value[1:] != value[:-1]) + 1, n)  # one past each group's last row
    cum = np.cumsum(key & np.uint64(1), dtype=np.int64)  # positives among the first i + 1 rows
    pos_before_end = cum[ends - 1]
    pos = np.diff(pos_before_end, prepend=0).astype(float)
    neg = np.diff(ends, prepend=0) - pos
    return ScoreGroups(pos, neg, ends, pos_before_end)


@dataclass(frozen=True)
class ScoreGroups:
    """Rows sorted by score, grouped by distinct score: counts per group and where each group ends."""

    pos: np.ndarray
    neg: np.ndarray
    ends: np.ndarray  # one past the group's last row, in sorted order
    pos_before_end: np.ndarray  # positives up to the group's end

    def binned(self, bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Positives and negatives in about `bins` bins of adjacent groups of about equal size (groups never split)."""
        import numpy as np

        n = int(self.ends[-1]) if len(self.ends) else 0
        targets = (np.arange(1, bins) * n) // bins
        cut = np.unique(np.searchsorted(self.ends, targets, side="left"))  # the group each bin ends with
        cut = np.union1d(cut[cut < len(self.ends) - 1], [len(self.ends) - 1])
        ends, pos_end = self.ends[cut], self.pos_before_end[cut]
        pos = np.diff(pos_end, prepend=0).astype(float)
        return pos, np.diff(ends, prepend=0) - pos


def _grouped_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC from counts per score group (ascending): each positive beats the negatives of lower groups and
    ties half of its own group's; exactly roc_auc_score when groups are the distinct scores."""
    import numpy as np

    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        return math.nan
    below = np.cumsum(neg) - neg
    return float(np.dot(pos, below + neg / 2.0) / (total_pos * total_neg))


def _binned_auc_samples(groups: ScoreGroups, exact: float, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap AUCs: Poisson counts per bin of adjacent score groups, centred on the exact AUC."""
    import numpy as np

    pos_b, neg_b = groups.binned(AUC_BINS)
    binned = _grouped_auc(pos_b, neg_b)
    p = _poisson(rng, pos_b, n_boot)
    q = _poisson(rng, neg_b, n_boot)
    below = np.cumsum(q, axis=1)
    below -= q / 2.0  # negatives of lower bins, and half of the bin's own (ties)
    with np.errstate(invalid="ignore", divide="ignore"):
        aucs = np.einsum("ij,ij->i", p, below) / (p.sum(axis=1) * q.sum(axis=1))
    return exact + (aucs - binned)


#: Above this mean a Poisson count is drawn from its normal approximation (3x cheaper, indistinguishable here).
NORMAL_FROM = 100.0


def _poisson(rng: np.random.Generator, lam: np.ndarray, n_boot: int) -> np.ndarray:
    """An (n_boot, len(lam)) matrix of Poisson(lam) counts, normal-approximated where lam >= NORMAL_FROM."""
    import numpy as np

    big = lam >= NORMAL_FROM
    out = np.empty((n_boot, len(lam)))
    if big.any():
        lam_big = lam[big]
        out[:, big] = np.maximum(lam_big + np.sqrt(lam_big) * rng.standard_normal((n_boot, len(lam_big))), 0.0)
    if not big.all():
        out[:, ~big] = rng.poisson(lam[~big], (n_boot, int((~big).sum())))
    return out


def _mean_loss_samples(loss: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap means of a per-row loss: Poisson counts per quantile bin of the loss, plus a normal term
    with the within-bin variance (so the spread matches resampling the rows)."""
    import numpy as np

    n = len(loss)
    sample = loss[rng.integers(0, n, min(n, 20_000))]
    edges = np.unique(np.quantile(sample, np.linspace(0, 1, LOSS_BINS + 1)[1:-1]))
    bins = np.searchsorted(edges, loss, side="right")
    k = len(edges) + 1
    count = np.bincount(bins, minlength=k).astype(float)
    total = np.bincount(bins, weights=loss, minlength=k)
    squares = np.bincount(bins, weights=loss * loss, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, 0.0)
        within = np.where(count > 0, squares / count - mean**2, 0.0)
    draws = _poisson(rng, count, n_boot)
    weight = draws.sum(axis=1)
    means = draws @ mean / weight
    spread = np.sqrt(np.maximum(draws @ np.maximum(within, 0.0), 0.0)) / weight
    return means + spread * rng.standard_normal(n_boot)


def _values(series: pd.Series) -> np.ndarray:
    """A column as a numpy array whose == against a plain Python class value works elementwise."""
    import numpy as np

    values = series.to_numpy()
    return values if values.dtype != object else np.asarray([_plain(v) for v in values.tolist()], dtype=object)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
