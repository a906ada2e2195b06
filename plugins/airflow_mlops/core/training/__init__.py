"""Model spec -> scikit-learn Pipeline; fit on the train rows; validation metrics; one MLflow run per candidate.

Candidates are ranked on the validation rows only: the test rows are the gate's (core.rows).

Plain Python (no Airflow). Every error names the candidate, the column or the parameter. Split by concern:

- ``pipeline``: the candidate's scikit-learn Pipeline (`build_pipeline`);
- ``metrics``: metrics on a holdout (`compute_metrics`, `model_metrics`) and `select_best`;
- ``checks``: `check_training_data`, before any fit;
- ``fit``: `fit_candidate`, and `train_candidate`'s MLflow run;
- ``models``: logging the model to MLflow and loading it back (`log_sklearn_model`, `load_model`).
"""

from __future__ import annotations

from airflow_mlops.core.training.checks import check_training_data
from airflow_mlops.core.training.fit import fit_candidate, train_candidate
from airflow_mlops.core.training.metrics import LOWER_IS_BETTER, compute_metrics, model_metrics, select_best
from airflow_mlops.core.training.models import (
    MODEL_REQUIREMENTS,
    PICKLE_FORMATS,
    load_model,
    log_sklearn_model,
    model_signature,
    pinned_requirements,
)
from airflow_mlops.core.training.pipeline import build_pipeline

__all__ = [
    "LOWER_IS_BETTER",
    "MODEL_REQUIREMENTS",
    "PICKLE_FORMATS",
    "build_pipeline",
    "check_training_data",
    "compute_metrics",
    "fit_candidate",
    "load_model",
    "log_sklearn_model",
    "model_metrics",
    "model_signature",
    "pinned_requirements",
    "select_best",
    "train_candidate",
]
