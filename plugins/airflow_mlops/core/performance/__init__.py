"""Realized performance on delayed labels: are the champion's predictions still coming true?

Split by concern:

- ``inputs``: where the day's predictions are (``predictions_path``) and its labels file; reading both,
  refusing bad input (a future day, unknown classes, missing columns) before anything is written;
- ``join``: predictions joined with labels on the id columns, every row accounted for (``join_day``);
- ``metrics``: realized metrics with a bootstrap interval, fast enough for millions of rows;
- ``decay``: the champion's promise (its test-set figure at evaluation) and the decay rule;
- ``check``: one day's check end to end, with the drift monitor's debounce and cool-down;
- ``evidence``: the MLflow run of a check, the per-day table read back, the status summary.
"""

from __future__ import annotations

from airflow_mlops.core.performance.check import DayCheck, check_day, decide_request, default_day
from airflow_mlops.core.performance.decay import Judgement, Promise, decay_threshold, judge, promise
from airflow_mlops.core.performance.inputs import (
    find_labels,
    known_classes,
    predictions_path,
    read_labels,
    read_predictions,
)
from airflow_mlops.core.performance.join import JoinResult, check_join_rate, join_day
from airflow_mlops.core.performance.metrics import RealizedMetrics, expected_calibration_error, realized_metrics

__all__ = [
    "DayCheck",
    "JoinResult",
    "Judgement",
    "Promise",
    "RealizedMetrics",
    "check_day",
    "check_join_rate",
    "decay_threshold",
    "decide_request",
    "default_day",
    "expected_calibration_error",
    "find_labels",
    "join_day",
    "judge",
    "known_classes",
    "predictions_path",
    "promise",
    "read_labels",
    "read_predictions",
    "realized_metrics",
]
