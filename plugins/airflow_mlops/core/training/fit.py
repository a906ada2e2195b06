"""Fit one candidate on the train rows, score it on the validation rows, log one MLflow run.

Candidates are ranked on the validation rows only: the test rows are the gate's (core.rows).
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import labels as class_labels
from airflow_mlops.core import tracking
from airflow_mlops.core.errors import TrainingError
from airflow_mlops.core.training.metrics import model_metrics
from airflow_mlops.core.training.models import log_sklearn_model
from airflow_mlops.core.training.pipeline import build_pipeline

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

    from airflow_mlops.core.config import Candidate, PipelineConfig
    from airflow_mlops.core.payloads import TrainingResult
    from airflow_mlops.core.rows import Split

log = logging.getLogger(__name__)

#: Data MLflow accepts as a dataset digest (its SQL store column is 36 characters wide).
_MAX_DATASET_DIGEST = 36


def fit_candidate(train: pd.DataFrame, config: PipelineConfig, candidate_name: str) -> tuple[Pipeline, float]:
    """The candidate's pipeline fitted on `train`, and the seconds the fit took."""
    candidate = config.candidate(candidate_name)
    pipeline = build_pipeline(config, candidate)
    log.info(
        "%s: fit started (%s, %d train rows, %d features)",
        candidate.name,
        candidate.estimator,
        len(train),
        len(config.features),
    )
    started = time.perf_counter()
    try:
        pipeline.fit(train[config.feature_names], train[config.target])
    except (ValueError, TypeError) as exc:  # bad data or parameter values: a retry cannot help
        raise TrainingError(f"candidate {candidate.name!r} ({candidate.estimator}): fit failed: {exc}") from exc
    seconds = time.perf_counter() - started
    log.info("%s: fit done in %.2f s", candidate.name, seconds)
    return pipeline, seconds


def train_candidate(
    split: Split,
    config: PipelineConfig,
    candidate_name: str,
    *,
    client: MlflowClient,
    experiment: str,
    data_digest: str,
    data_uri: str,
    tags: dict[str, str],
) -> TrainingResult:
    """Fit one candidate on the split's train rows, score it on its validation rows, log one MLflow run.

    The run keeps the model, its validation metrics (what candidates are ranked by) and
    ``training_rows.parquet``: the hashes of every row it was trained or selected on, which the
    gate excludes from its test rows when this model is the champion. The test rows are not read.
    Returns {candidate, run_id, model_uri, metrics, primary_metric, primary_value, estimator}.
    """
    import tempfile

    import mlflow

    from airflow_mlops.core import rows

    candidate = config.candidate(candidate_name)
    pipeline, fit_seconds = fit_candidate(split.train, config, candidate_name)
    metrics = model_metrics(pipeline, split.validation, config)
    primary = config.metrics.primary
    positive, how = class_labels.resolve(config, list(getattr(pipeline, "classes_", [])))
    if how:
        log.info("%s: binary metrics treat %r as the positive class (%s)", candidate.name, positive, how)
    log.info("%s: validation metrics %s", candidate.name, ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))

    run_tags = {
        **tags,
        "code.version": tracking.code_version(),
        "data.digest": data_digest,
        "seed": str(config.seed),
        "mlops.candidate": candidate.name,
    }
    x_train, y_train = split.train[config.feature_names], split.train[config.target]
    with tracking.active_run(client, experiment, run_name=candidate.name, tags=run_tags) as run_id:
        mlflow.log_params(_run_params(config, candidate, split, positive))
        mlflow.log_metrics({**metrics, "fit_seconds": fit_seconds})
        with warnings.catch_warnings():
            # MLflow registers two equal local-file dataset sources and warns about the ambiguity, and
            # warns about integer columns in the dataset's (descriptive) schema: neither concerns us.
            warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways.*")
            warnings.filterwarnings("ignore", message=".*integer column.*")
            dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
                split.train,
                source=data_uri,
                name=f"{config.name}-train",
                digest=_dataset_digest(data_digest),
                targets=config.target,
            )
            mlflow.log_input(dataset, context="training")  # computes the dataset schema (lazily)
        mlflow.log_dict(dict(config.raw), "config/pipeline.yaml")
        with tempfile.TemporaryDirectory(prefix="mlops-rows-") as tmp:
            record = rows.write_record(rows.training_record(split), f"{tmp}/{rows.TRAINING_ROWS_ARTIFACT}")
            mlflow.log_artifact(str(record))
        started = time.perf_counter()
        info = log_sklearn_model(pipeline, config, x_train.head(5), y_train)
        log.info("%s: model logged in %.2f s: %s", candidate.name, time.perf_counter() - started, info.model_uri)

    return {
        "candidate": candidate.name,
        "run_id": run_id,
        "model_uri": info.model_uri,
        "metrics": metrics,
        "primary_metric": primary,
        "primary_value": metrics[primary],
        "estimator": candidate.estimator,
    }


def _run_params(config: PipelineConfig, candidate: Candidate, split: Split, positive: Any = None) -> dict[str, Any]:
    from airflow_mlops.core.rows import date_span

    ours: dict[str, Any] = {
        "candidate": candidate.name,
        "estimator": candidate.estimator,
        "task": config.task,
        "target": config.target,
        "split.strategy": split.strategy,
        "seed": config.seed,
        "n_rows.train": len(split.train),
        "n_rows.validation": len(split.validation),
        "n_rows.test": len(split.test),
        "n_features": len(config.features),
    }
    if config.task == "binary_classification":
        ours["positive_class"] = str(positive)
    for role in ("train", "validation", "test"):
        span = date_span(getattr(split, role), split.date_column)
        if span:
            ours[f"split.{role}_days"] = f"{span[0]}..{span[1]}"
    for key, value in candidate.params.items():
        ours[f"params.{key}" if key in ours else key] = value
    return ours


def _dataset_digest(data_digest: str) -> str:
    """MLflow caps dataset digests at 36 characters; the full digest stays in the `data.digest` tag."""
    return data_digest.rpartition(":")[2][:_MAX_DATASET_DIGEST] or "unknown"
