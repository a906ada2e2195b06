"""Which features explain the target on their own: named when a test score is implausibly perfect."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from airflow_mlops.core.config import PipelineConfig

#: Metrics whose perfect value is 1: the only ones the leakage threshold applies to.
BOUNDED_METRICS = frozenset({"roc_auc", "accuracy", "f1", "precision", "recall", "r2"})

#: A single feature whose association with the target reaches this (univariate AUC, or |r| for
#: regression) is named as a leakage suspect when the model's test score is implausibly perfect.
LEAKAGE_FEATURE_THRESHOLD = 0.98


def leakage_suspects(
    rows: pd.DataFrame, config: PipelineConfig, *, threshold: float = LEAKAGE_FEATURE_THRESHOLD
) -> list[str]:
    """Features whose association with the target on their own is near perfect, e.g. "'x' (univariate AUC 1.000)".

    Numeric features: the AUC of the raw value (either direction); categorical ones: the AUC of the
    leave-one-out target rate of their category (so an ID-like column does not look predictive).
    Classification averages one-vs-rest over the classes; regression uses |Pearson r| instead of AUC.
    """
    y = rows[config.target]
    suspects = []
    for feature in config.features:
        if feature.name not in rows.columns:
            continue
        score = _association(rows[feature.name], y, feature.type, config.is_classification)
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


def implausibly_perfect(config: PipelineConfig, metrics: dict[str, float]) -> bool:
    """True when the test-set primary score reaches evaluation.leakage_threshold (bounded metrics only)."""
    threshold = config.evaluation.leakage_threshold
    primary = config.metrics.primary
    value = _finite_value(metrics, primary)
    return threshold is not None and primary in BOUNDED_METRICS and value is not None and value >= threshold


def leakage_check(
    config: PipelineConfig, challenger: dict[str, float], leakage: Sequence[str]
) -> tuple[bool, str] | None:
    """The gate's leakage check: FAIL when the test-set score reaches the threshold or a feature is a suspect; PASS
    when it stays under a configured threshold; None when there is nothing to judge (no threshold, unbounded metric)."""
    primary = config.metrics.primary
    threshold = config.evaluation.leakage_threshold
    value = _finite_value(challenger, primary)
    if implausibly_perfect(config, challenger) or leakage:
        if leakage:
            why = (
                f"suspected target leakage through feature(s) {', '.join(leakage)}: remove them from the features "
                f"or fix how they are computed (they must not be derived from the label)"
            )
        else:
            why = (
                "no single feature explains it: check for rows shared between the training data and the test rows, "
                "or a combination of features derived from the label"
            )
        shown = "n/a" if value is None else f"{value:.4f}"
        limit = "" if threshold is None else f" >= leakage threshold {threshold:g}"
        return False, f"test-set {primary} {shown}{limit} is implausibly good; {why}"
    if threshold is None or primary not in BOUNDED_METRICS or value is None:
        return None
    return True, f"test-set {primary} {value:.4f} < leakage threshold {threshold:g}: no sign of target leakage"


def _finite_value(metrics: dict[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if value is not None and math.isfinite(value) else None
