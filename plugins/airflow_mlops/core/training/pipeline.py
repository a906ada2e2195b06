"""Model spec -> scikit-learn Pipeline: preprocessing by feature type, then the candidate's estimator (an
allowed scikit-learn class, its parameters checked before any fit)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.config import ALLOWED_ESTIMATOR_PREFIX, Candidate, PipelineConfig
from airflow_mlops.core.errors import TrainingError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


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
