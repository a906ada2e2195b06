"""Which features explain the target on their own: named when a test score is implausibly perfect."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.config import PipelineConfig

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
