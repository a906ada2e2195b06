"""Champion vs challenger, split by concern:

- ``gate``: load both models, take the test rows neither saw, score them, decide (`evaluate`, `judge`);
- ``bootstrap``: the paired bootstrap of the gain as weighted metrics;
- ``decision``: the verdict from the numbers alone (`decide`);
- ``leakage``: features that explain the target on their own;
- ``models``: loading registered models, scoring, signatures;
- ``evidence``: verdict.json, plots, HTML, test_rows.parquet and the MLflow run.
"""

from __future__ import annotations

from airflow_mlops.core.errors import EvaluationError
from airflow_mlops.core.evaluation.bootstrap import BootstrapResult, paired_bootstrap
from airflow_mlops.core.evaluation.decision import (
    BOUNDED_METRICS,
    NO_BASELINE_PROMOTE,
    PROMOTE,
    REJECT,
    Verdict,
    decide,
    implausibly_perfect,
)
from airflow_mlops.core.evaluation.evidence import REASONS_TAG_LIMIT, log_evaluation, reasons_tag, write_artifacts
from airflow_mlops.core.evaluation.gate import EvaluationResult, evaluate, judge, thin_evidence
from airflow_mlops.core.evaluation.leakage import LEAKAGE_FEATURE_THRESHOLD, leakage_suspects
from airflow_mlops.core.evaluation.models import Loaded, compare_signatures, load, score

__all__ = [
    "BOUNDED_METRICS",
    "LEAKAGE_FEATURE_THRESHOLD",
    "NO_BASELINE_PROMOTE",
    "PROMOTE",
    "REASONS_TAG_LIMIT",
    "REJECT",
    "BootstrapResult",
    "EvaluationError",
    "EvaluationResult",
    "Loaded",
    "Verdict",
    "compare_signatures",
    "decide",
    "evaluate",
    "implausibly_perfect",
    "judge",
    "leakage_suspects",
    "load",
    "log_evaluation",
    "paired_bootstrap",
    "reasons_tag",
    "score",
    "thin_evidence",
    "write_artifacts",
]
