"""Logging a fitted pipeline to MLflow (skops, explicit signature, pinned requirements) and loading it back
trusting only this package's TRUSTED_TYPES (pickled models only when the config allows them)."""

from __future__ import annotations

import importlib.metadata
import logging
import os
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.skops_types import TRUSTED_TYPES, UntrustedModelError

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import ModelSignature
    from sklearn.pipeline import Pipeline

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)

#: The packages the logged model needs at serving time, pinned to the versions it was trained with.
MODEL_REQUIREMENTS = ("scikit-learn", "skops", "pandas", "numpy", "scipy", "mlflow")
#: MLflow sklearn serialization formats that unpickle (and so can run code) when loaded.
PICKLE_FORMATS = frozenset({"pickle", "cloudpickle"})


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
