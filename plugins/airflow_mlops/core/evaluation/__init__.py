"""Champion vs challenger, split by concern:

- ``gate``: load both models, take the test rows neither saw, score them, decide (`evaluate`, `judge`);
- ``bootstrap``: the paired (stratified, for classes) bootstrap of the gains as weighted metrics;
- ``decision``: the verdict from the numbers alone (`decide`);
- ``baseline``: ``evaluation.baseline_guard``, the guard rails against the model's first champion;
- ``leakage``: features that explain the target on their own;
- ``models``: loading registered models, scoring, signatures;
- ``evidence``: verdict.json, plots, HTML, test_rows.parquet and the MLflow run;
- ``page``: the evaluation page (report.html).
"""

from __future__ import annotations

from airflow_mlops.core.errors import EvaluationError
from airflow_mlops.core.evaluation.bootstrap import MAX_UNUSABLE, BootstrapResult, paired_bootstrap, paired_bootstraps
from airflow_mlops.core.evaluation.decision import (
    NO_BASELINE_PROMOTE,
    PROMOTE,
    REJECT,
    BaselineEvidence,
    ClassCounts,
    Verdict,
    decide,
)
from airflow_mlops.core.evaluation.evidence import REASONS_TAG_LIMIT, log_evaluation, reasons_tag, write_artifacts
from airflow_mlops.core.evaluation.gate import EvaluationResult, evaluate, judge, thin_evidence
from airflow_mlops.core.evaluation.leakage import (
    BOUNDED_METRICS,
    LEAKAGE_FEATURE_THRESHOLD,
    implausibly_perfect,
    leakage_suspects,
)
from airflow_mlops.core.evaluation.models import Loaded, compare_signatures, load, score

__all__ = [
    "BOUNDED_METRICS",
    "LEAKAGE_FEATURE_THRESHOLD",
    "MAX_UNUSABLE",
    "NO_BASELINE_PROMOTE",
    "PROMOTE",
    "REASONS_TAG_LIMIT",
    "REJECT",
    "BaselineEvidence",
    "BootstrapResult",
    "ClassCounts",
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
    "paired_bootstraps",
    "reasons_tag",
    "score",
    "thin_evidence",
    "write_artifacts",
]
