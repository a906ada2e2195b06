"""Model spec -> scikit-learn Pipeline; fit on the train rows; validation metrics; one MLflow run per candidate.

Candidates are ranked on the validation rows only: the test rows are the gate's (core.rows).

Plain Python (no Airflow). Every error names the candidate, the column or the parameter.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import math
import os
import time
import warnings
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import labels as class_labels
from airflow_mlops.core import tracking
from airflow_mlops.core.config import ALLOWED_ESTIMATOR_PREFIX, Candidate, PipelineConfig
from airflow_mlops.core.errors import TrainingError
from airflow_mlops.core.skops_types import TRUSTED_TYPES, UntrustedModelError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature
    from sklearn.pipeline import Pipeline

    from airflow_mlops.core.rows import Split

log = logging.getLogger(__name__)

#: Metrics where a smaller value is better; all others are "higher is better".
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
#: The packages the logged model needs at serving time, pinned to the versions it was trained with.
MODEL_REQUIREMENTS = ("scikit-learn", "skops", "pandas", "numpy", "scipy", "mlflow")
#: MLflow sklearn serialization formats that unpickle (and so can run code) when loaded.
PICKLE_FORMATS = frozenset({"pickle", "cloudpickle"})
#: Data MLflow accepts as a dataset digest (its SQL store column is 36 characters wide).
_MAX_DATASET_DIGEST = 36


# --------------------------------------------------------------------------- pipeline


def build_pipeline(config: PipelineConfig, candidate: Candidate) -> Pipeline:
    """Preprocessing by feature type (impute + scale / impute + one-hot) followed by the candidate's estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    estimator = _make_estimator(config, candidate)
    transformers = []
    if config.numeric_features:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        transformers.append(("numeric", numeric, config.numeric_features))
    if config.categorical_features:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("onehot", OneHotEncoder(handle_unknown="ignore")),
            ]
        )
        transformers.append(("categorical", categorical, config.categorical_features))
    # Dense output: HistGradientBoosting* rejects sparse input, and our tables are narrow.
    preprocess = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def _estimator_class(candidate: Candidate) -> type:
    path = candidate.estimator
    where = f"candidate {candidate.name!r}"
    if not path.startswith(ALLOWED_ESTIMATOR_PREFIX) or path.count(".") < 2:
        raise TrainingError(
            f"{where}: estimator {path!r} is not allowed; give a scikit-learn class path "
            f"such as sklearn.linear_model.LogisticRegression"
        )
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise TrainingError(f"{where}: estimator {path!r}: module {module_name!r} not found in scikit-learn") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not hasattr(cls, "fit"):
        raise TrainingError(f"{where}: estimator {path!r}: {module_name} has no estimator class {class_name!r}")
    return cls


def _make_estimator(config: PipelineConfig, candidate: Candidate) -> Any:
    cls = _estimator_class(candidate)
    where = f"candidate {candidate.name!r} ({candidate.estimator})"
    try:
        accepted = set(cls().get_params(deep=False))
    except Exception as exc:  # an estimator with required constructor arguments
        raise TrainingError(f"{where}: cannot be built without arguments: {exc}") from None
    unknown = sorted(set(candidate.params) - accepted)
    if unknown:
        raise TrainingError(
            f"{where}: unknown parameter(s) {', '.join(map(repr, unknown))} in model.candidates params; "
            f"{cls.__name__} accepts: {', '.join(sorted(accepted))}"
        )
    params = dict(candidate.params)
    if "random_state" in accepted and "random_state" not in params:
        params["random_state"] = config.seed
    estimator = cls(**params)
    _validate_params(estimator, where)
    return estimator


def _validate_params(estimator: Any, where: str) -> None:
    """Check parameter values now (scikit-learn would only do it inside fit)."""
    from sklearn.utils._param_validation import InvalidParameterError

    validate = getattr(estimator, "_validate_params", None)  # scikit-learn >= 1.2
    if validate is None:
        return
    try:
        validate()
    except InvalidParameterError as exc:
        raise TrainingError(f"{where}: invalid parameter value: {exc}") from None


# --------------------------------------------------------------------------- metrics


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
        "recall": lambda: m.recall_score(y_true, y_pred, labels=None if binary else labels, zero_division=0, **averaging),
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


# --------------------------------------------------------------------------- data checks


def check_training_data(df: pd.DataFrame, config: PipelineConfig) -> None:
    """Fail early, with a message saying what to do, when `df` cannot train this pipeline."""
    where = f"{config.path}: pipeline {config.name!r}"
    if df is None or len(df) == 0:
        raise TrainingError(
            f"{where}: the training data has no rows; check source.path ({config.source.path}) "
            f"and that the window (source.window_days) covers days with data"
        )
    needed = [*config.feature_names, config.target]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        kinds = ["target" if c == config.target else "feature" for c in missing]
        listed = ", ".join(f"{k} {c!r}" for k, c in zip(kinds, missing, strict=True))
        raise TrainingError(
            f"{where}: the training data lacks column(s) {listed}; present: {', '.join(map(str, df.columns))}. "
            f"Fix the config's features/target or the source data"
        )
    _check_numeric_features(df, config, where)
    y = df[config.target]
    n_missing = int(y.isna().sum())
    if n_missing:
        raise TrainingError(
            f"{where}: target column {config.target!r} has {n_missing} missing value(s) (NaN) in {len(df)} rows; "
            f"labels must be complete: drop or fix those rows upstream (the expectation suite should catch them)"
        )
    if config.is_classification:
        counts = y.value_counts()
        if len(counts) < 2:
            only = _scalar(counts.index[0])
            raise TrainingError(
                f"{where}: target column {config.target!r} has a single class ({only!r}) in all {len(df)} rows; "
                f"a classifier needs at least two classes: widen the training window (source.window_days) "
                f"or check the labels"
            )
        if config.task == "binary_classification" and len(counts) > 2:
            raise TrainingError(
                f"{where}: target column {config.target!r} has {len(counts)} classes "
                f"({', '.join(repr(_scalar(k)) for k in counts.index[:10])}) but target.task is binary_classification; "
                f"use multiclass_classification or fix the labels"
            )
    else:
        from pandas.api.types import is_numeric_dtype

        if not is_numeric_dtype(y):
            raise TrainingError(
                f"{where}: target column {config.target!r} has dtype {y.dtype}, but a regression target "
                f"must be numeric; fix the column or the task"
            )


def _check_numeric_features(df: pd.DataFrame, config: PipelineConfig, where: str) -> None:
    """A numeric feature holding text fails here, naming it, not inside scikit-learn's imputer."""
    import pandas as pd

    for name in config.numeric_features:
        col = df[name]
        if pd.api.types.is_numeric_dtype(col):
            continue
        values = col.dropna()
        bad = values[pd.to_numeric(values, errors="coerce").isna()]
        if bad.empty:
            raise TrainingError(
                f"{where}: numeric feature {name!r} is stored as text (dtype {col.dtype}) though its values read as "
                f"numbers; declare it float (or int) in source.dtypes"
            )
        shown = ", ".join(repr(v) for v in list(dict.fromkeys(bad.tolist()))[:3])
        raise TrainingError(
            f"{where}: numeric feature {name!r} holds text (dtype {col.dtype}): {len(bad)} of {len(col)} value(s) are "
            f"not numbers, e.g. {shown}; fix the export, read blanks as missing with source.na_values, or declare "
            f"the column in source.dtypes (the expectation suite should catch this with "
            f"expect_column_values_to_be_in_type_list)"
        )


def _scalar(value: Any) -> Any:
    """A numpy scalar as the plain Python value (so messages say 1, not np.int64(1))."""
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------- training


def fit_candidate(train: pd.DataFrame, config: PipelineConfig, candidate_name: str) -> tuple[Pipeline, float]:
    """The candidate's pipeline fitted on `train`, and the seconds the fit took."""
    candidate = config.candidate(candidate_name)
    pipeline = build_pipeline(config, candidate)
    log.info(
        "%s: fit started (%s, %d train rows, %d features)",
        candidate.name, candidate.estimator, len(train), len(config.features),
    )
    started = time.perf_counter()
    try:
        pipeline.fit(train[config.feature_names], train[config.target])
    except (ValueError, TypeError) as exc:  # bad data or parameter values: a retry cannot help
        raise TrainingError(f"candidate {candidate.name!r} ({candidate.estimator}): fit failed: {exc}") from exc
    seconds = time.perf_counter() - started
    log.info("%s: fit done in %.2f s", candidate.name, seconds)
    return pipeline, seconds


def model_metrics(model: Any, rows: pd.DataFrame, config: PipelineConfig, names: Sequence[str] | None = None) -> dict[str, float]:
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
) -> dict:
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
                split.train, source=data_uri, name=f"{config.name}-train", digest=_dataset_digest(data_digest),
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


def log_sklearn_model(pipeline: Pipeline, config: PipelineConfig, input_example: pd.DataFrame, y: Any) -> Any:
    """Log a fitted pipeline as `model` to the active run: skops, explicit signature and pinned requirements.

    Nothing is inferred: no pip-requirement inference (a subprocess that reloads the model) and
    no signature inference (a predict on the example). Returns MLflow's ModelInfo.
    """
    import mlflow.sklearn

    gate = _DeserializationGateFilter()
    model_logger = logging.getLogger("mlflow.models.model")
    model_logger.addFilter(gate)
    try:
        return mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format="skops",
            skops_trusted_types=TRUSTED_TYPES,
            signature=model_signature(config, input_example, y),
            input_example=input_example,
            pip_requirements=pinned_requirements(),
        )
    finally:
        model_logger.removeFilter(gate)


class _DeserializationGateFilter(logging.Filter):
    """Drop MLflow's "failed to validate serving input" warning when the only cause is our own policy.

    With MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false, MLflow's serving-input check cannot reload the
    model through pyfunc and warns at every log_model; the skops round trip itself is already
    checked by mlflow.sklearn (dump, then load with TRUSTED_TYPES). Any other validation failure
    is still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("serving input" in message and "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" in message)


def model_signature(config: PipelineConfig, x: pd.DataFrame, y: Any) -> ModelSignature:
    """The model's signature, from the config's feature types and the training columns' dtypes.

    Categorical features are strings; numeric ones are `long` when trained on integers and
    `double` otherwise (MLflow refuses int64 -> double at predict time, so the dtype matters).
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs: list[Any] = []
    for f in config.features:
        dtype = x[f.name].dtype if f.name in x.columns else None
        kind = _mlflow_type(dtype, default="double" if f.type == "numeric" else "string")
        if f.type == "numeric" and kind not in ("long", "double"):
            kind = "double"
        inputs.append(ColSpec(kind, f.name))
    output = "double" if not config.is_classification else _mlflow_type(getattr(y, "dtype", None), default="string")
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec(output)]))


def _mlflow_type(dtype: Any, *, default: str) -> str:
    from pandas.api.types import is_bool_dtype, is_float_dtype, is_integer_dtype

    if dtype is None:
        return default
    if is_bool_dtype(dtype):
        return "boolean"
    if is_integer_dtype(dtype):
        return "long"
    if is_float_dtype(dtype):
        return "double"
    return "string"


def pinned_requirements() -> list[str]:
    """`pkg==version` for the packages the model needs, read from the running environment."""
    pins = []
    for dist in MODEL_REQUIREMENTS:
        try:
            pins.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(dist)
    return pins


# --------------------------------------------------------------------------- selection and loading


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


def load_model(model_uri: str, dst_path: str | None = None, *, allow_pickle: bool = False) -> Any:
    """Load a logged scikit-learn model: skops trusting only this package's TRUSTED_TYPES.

    Not ``mlflow.sklearn.load_model``: that trusts the ``skops_trusted_types`` written in the
    model's own MLmodel file (and is gated by MLFLOW_ALLOW_PICKLE_DESERIALIZATION for that reason).
    A pickle/cloudpickle model file can run any code while loading: it is refused unless
    ``allow_pickle`` (the pipeline config's ``security.allow_pickle_models``) says otherwise.
    """
    import mlflow.artifacts
    import skops.io
    from mlflow.models import Model
    from skops.io.exceptions import UntrustedTypesFoundException

    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=dst_path)
    flavor = Model.load(os.path.join(local, "MLmodel")).flavors.get("sklearn")
    fmt = None if flavor is None else flavor.get("serialization_format", "pickle")
    if flavor is not None and fmt in PICKLE_FORMATS:
        if not allow_pickle:
            raise UntrustedModelError(
                f"{model_uri}: the model file is serialized with {fmt}, which can run arbitrary code while loading; "
                f"refused. Re-log the model with serialization_format='skops', or, if you trust where it comes "
                f"from, set security.allow_pickle_models: true in the pipeline config"
            )
        log.warning("%s: loading a %s model because security.allow_pickle_models is true", model_uri, fmt)
        return _unpickle(os.path.join(local, flavor["pickled_model"]), fmt)
    if flavor is None or fmt != "skops":
        raise UntrustedModelError(
            f"{model_uri}: not a skops-serialized scikit-learn model (format {fmt!r}); "
            f"airflow-mlops only loads skops models, which cannot run code while loading"
        )
    declared = flavor.get("skops_trusted_types") or []
    extra = sorted(set(declared) - set(TRUSTED_TYPES))
    if extra:
        log.warning("%s: ignoring trusted types declared in the model file that we do not trust: %s", model_uri, extra)
    path = os.path.join(local, flavor["pickled_model"])
    try:
        return skops.io.load(path, trusted=TRUSTED_TYPES)
    except UntrustedTypesFoundException as exc:
        raise UntrustedModelError(
            f"{model_uri}: the model references types outside airflow_mlops.core.skops_types.TRUSTED_TYPES: {exc}. "
            f"Review them and add them there if they are safe"
        ) from None


def _unpickle(path: str, fmt: str) -> Any:
    """Only reached when the pipeline config explicitly allows pickled models."""
    import pickle

    with open(path, "rb") as fh:
        if fmt == "cloudpickle":
            import cloudpickle

            return cloudpickle.load(fh)
        return pickle.load(fh)
