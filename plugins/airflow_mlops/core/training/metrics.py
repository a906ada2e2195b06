"""Metrics on a holdout (`compute_metrics`, `model_metrics`) and the choice of the best candidate by them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import labels as class_labels
from airflow_mlops.core.errors import TrainingError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pandas as pd

    from airflow_mlops.core.config import PipelineConfig

#: Metrics where a smaller value is better; all others are "higher is better".
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def compute_metrics(
    task: str,
    y_true: Any,
    y_pred: Any,
    y_proba: Any,
    names: Sequence[str],
    *,
    labels: Sequence[Any] | None = None,
    positive: Any = None,
) -> dict[str, float]:
    """The named metrics on a holdout.

    `y_proba` is predict_proba's (n, n_classes) array in `labels` order (the model's ``classes_``);
    for binary tasks a 1-D array of positive-class scores is accepted too. It may be None for
    regression and for metrics that do not need it. `positive`: the class binary f1, precision,
    recall and ROC AUC treat as positive (``labels.positive_class``); default the last of `labels`.
    """
    import numpy as np
    from sklearn import metrics as m

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if task != "regression" and labels is None:
        labels = list(np.unique(np.concatenate([y_true, y_pred])))
    labels = list(labels) if labels is not None else []
    binary = task == "binary_classification"
    if binary and positive is None:
        positive = labels[-1]
    averaging = {"average": "binary", "pos_label": positive} if binary else {"average": "macro"}

    def proba() -> np.ndarray:
        if y_proba is None:
            raise TrainingError(f"metric needs class probabilities, but the estimator has no predict_proba ({task})")
        return np.asarray(y_proba)

    def roc_auc() -> float:
        p = proba()
        if binary:
            score = p[:, class_labels.positive_index(labels, positive)] if p.ndim == 2 else p
            return m.roc_auc_score(y_true == positive, score)
        return m.roc_auc_score(y_true, p, multi_class="ovr", average="macro", labels=labels)

    def log_loss() -> float:
        p = proba()
        if p.ndim == 1:
            raise TrainingError("metric 'log_loss' needs predict_proba, got decision scores")
        return m.log_loss(y_true, p, labels=labels)

    funcs = {
        "roc_auc": roc_auc,
        "log_loss": log_loss,
        "accuracy": lambda: m.accuracy_score(y_true, y_pred),
        "f1": lambda: m.f1_score(y_true, y_pred, labels=None if binary else labels, zero_division=0, **averaging),
        "precision": lambda: m.precision_score(
            y_true, y_pred, labels=None if binary else labels, zero_division=0, **averaging
        ),
        "recall": lambda: m.recall_score(
            y_true, y_pred, labels=None if binary else labels, zero_division=0, **averaging
        ),
        "rmse": lambda: m.root_mean_squared_error(y_true, y_pred),
        "mae": lambda: m.mean_absolute_error(y_true, y_pred),
        "r2": lambda: m.r2_score(y_true, y_pred),
    }
    out: dict[str, float] = {}
    for name in names:
        if name not in funcs:
            raise TrainingError(f"unknown metric {name!r}; known: {', '.join(funcs)}")
        try:
            out[name] = float(funcs[name]())
        except TrainingError as exc:
            raise TrainingError(f"metric {name!r}: {exc}") from None
        except ValueError as exc:
            raise TrainingError(f"metric {name!r} cannot be computed on the holdout: {exc}") from None
    return out


def model_metrics(
    model: Any, rows: pd.DataFrame, config: PipelineConfig, names: Sequence[str] | None = None
) -> dict[str, float]:
    """The named metrics (default: the config's) of a fitted model on `rows`."""
    x, y = rows[config.feature_names], rows[config.target]
    labels = list(model.classes_) if config.is_classification else None
    positive = class_labels.positive_class(config, labels)
    proba = None
    if config.is_classification:
        if hasattr(model, "predict_proba"):
            proba = model.predict_proba(x)
        elif hasattr(model, "decision_function") and config.task == "binary_classification":
            proba = model.decision_function(x)  # scores of classes_[1]: turned into positive-class scores
            if labels and class_labels.positive_index(labels, positive) == 0:
                proba = -proba
    return compute_metrics(
        config.task, y, model.predict(x), proba, names or config.metrics.all, labels=labels, positive=positive
    )


def select_best(results: list[dict], config: PipelineConfig) -> dict:
    """The best result by its validation primary metric (lower is better for log_loss/rmse/mae); ties go
    to config order. Results carry validation metrics only: the test rows never choose the challenger."""
    if not results:
        raise TrainingError(f"{config.path}: no trained candidates to choose from; did every training task fail?")
    primary = config.metrics.primary
    order = {c.name: i for i, c in enumerate(config.candidates)}
    sign = 1.0 if primary in LOWER_IS_BETTER else -1.0

    def key(r: dict) -> tuple[float, int]:
        value = r.get("metrics", {}).get(primary, r.get("primary_value"))
        if value is None or (isinstance(value, float) and math.isnan(value)):
            score = math.inf
        else:
            score = sign * float(value)
        return score, order.get(r["candidate"], len(order))

    best = min(results, key=key)
    if math.isinf(key(best)[0]):
        raise TrainingError(f"{config.path}: no candidate has a value for the primary metric {primary!r}")
    return best
