"""One loaded model turned into predictions: ``score`` and ``predicted`` per row, and the partition's Arrow table.

``score``: binary, the positive class's probability (``core.labels``); multiclass, the predicted class's
probability; regression, the prediction. ``predicted``: the class with the highest probability, as
scikit-learn's ``predict`` decides it (from the same ``predict_proba`` call: the model runs once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from airflow_mlops.core import labels

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable

    import pandas as pd

    from airflow_mlops.core.config import PipelineConfig


@dataclass(frozen=True, eq=False)
class Scorer:
    """One loaded model and how to read its output: the columns it takes, its classes, the positive one."""

    model: Any
    features: list[str]
    task: str
    classes: np.ndarray | None  # a classifier's classes_ (None: regression)
    positive_index: int | None  # binary: the column of the positive class in predict_proba

    @classmethod
    def of(cls, model: Any, config: PipelineConfig) -> Scorer:
        features = [str(c) for c in getattr(model, "feature_names_in_", config.feature_names)]
        classes = np.asarray(model.classes_) if config.is_classification and hasattr(model, "classes_") else None
        positive = None
        if config.task == "binary_classification" and classes is not None:
            positive = labels.positive_index(list(classes), labels.positive_class(config, list(classes)))
        return cls(model=model, features=features, task=config.task, classes=classes, positive_index=positive)

    def score(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(score, predicted) of every row, from one pass through the model (predict_proba, else predict)."""
        x = frame[self.features]
        if self.classes is None:
            prediction = np.asarray(self.model.predict(x), dtype="float64")
            return prediction, prediction
        if not hasattr(self.model, "predict_proba"):  # e.g. a LinearSVC: a class, no probability
            return np.full(len(frame), np.nan), np.asarray(self.model.predict(x))
        proba = self.model.predict_proba(x)
        best = proba.argmax(axis=1)
        predicted = self.classes[best]
        if self.positive_index is not None:
            return proba[:, self.positive_index].astype("float64", copy=False), predicted
        return np.take_along_axis(proba, best[:, None], axis=1)[:, 0].astype("float64", copy=False), predicted


def predictions_table(
    scorer: Scorer,
    frame: pd.DataFrame,
    *,
    id_columns: Iterable[str],
    model_version: str,
    data_digest: str,
    scored_at: dt.datetime,
) -> pa.Table:
    """`frame` scored: its id columns, score, predicted, model_version, data_digest, scored_at (an Arrow table)."""
    score, predicted = scorer.score(frame)
    n = len(frame)
    columns: dict[str, pa.Array] = {c: pa.Array.from_pandas(frame[c]) for c in id_columns}
    columns["score"] = pa.array(score, pa.float64())
    columns["predicted"] = pa.array(predicted)
    columns["model_version"] = pa.repeat(pa.scalar(model_version, pa.string()), n)
    columns["data_digest"] = pa.repeat(pa.scalar(data_digest, pa.string()), n)
    columns["scored_at"] = pa.repeat(pa.scalar(scored_at, pa.timestamp("us", tz="UTC")), n)
    return pa.table(columns)
