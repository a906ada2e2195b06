"""Champion and challenger as loaded models: registry checks, scoring, signatures."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import tracking, training
from airflow_mlops.core.errors import EvaluationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)

_NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


@dataclass
class Loaded:
    """A model ready to score: its URI, the fitted estimator, its MLflow signature and its run."""

    uri: str
    model: Any
    signature: Any
    run_id: str | None = None  # the training run (where training_rows.parquet is)


def _parse_models_uri(uri: str) -> tuple[str, str | None, str | None] | None:
    """models:/name/version -> (name, version, None); models:/name@alias -> (name, None, alias)."""
    if not uri.startswith("models:/"):
        return None
    rest = uri[len("models:/") :].strip("/")
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        return name, None, alias
    name, _, version = rest.rpartition("/")
    return (name, version, None) if name else None


def load(client: MlflowClient, uri: str, role: str, *, allow_pickle: bool = False) -> Loaded:
    """The model behind `uri`, after checking in the registry that its version exists and is READY."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    parsed = _parse_models_uri(uri)
    run_id = None
    if parsed is not None:
        name, version, alias = parsed
        try:
            mv = (
                client.get_model_version_by_alias(name, alias)
                if alias
                else client.get_model_version(name, str(version))
            )
        except MlflowException as exc:
            if exc.error_code not in _NOT_FOUND_CODES:
                raise
            what = f"alias {alias!r}" if alias else f"version {version}"
            raise EvaluationError(
                f"{role} {uri}: {what} of registered model {name!r} does not exist (deleted?); nothing was "
                f"evaluated or moved. Point the {role} alias at an existing version, or register a new one"
            ) from None
        if mv.status != "READY":
            raise EvaluationError(f"{role} {uri}: version {mv.version} of {name!r} is {mv.status}, not READY")
        run_id = mv.run_id
    tracking.configure(client)  # `models:/` URIs resolve through MLflow's global registry URI
    try:
        model = training.load_model(uri, allow_pickle=allow_pickle)
        signature = get_model_info(uri).signature
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND_CODES:
            raise
        raise EvaluationError(f"{role} {uri}: the model's files cannot be found: {exc.message}") from None
    return Loaded(uri=uri, model=model, signature=signature, run_id=run_id)


def score(
    loaded: Loaded, rows: pd.DataFrame, config: PipelineConfig, *, role: str
) -> tuple[np.ndarray, np.ndarray, list[Any] | None]:
    """(scores, predictions, class labels) of one model: predict_proba for classifiers, predict for regressors."""
    import numpy as np

    columns = _input_columns(loaded.signature) or config.feature_names
    missing = [c for c in columns if c not in rows.columns]
    if missing:
        raise EvaluationError(
            f"{role} {loaded.uri} needs column(s) {', '.join(map(repr, missing))} that the test rows lack"
        )
    x = rows[columns]
    model = loaded.model
    try:
        pred = np.asarray(model.predict(x))
        if not config.is_classification:
            return pred.astype(float), pred, None
        labels = list(model.classes_)
        if hasattr(model, "predict_proba"):
            return np.asarray(model.predict_proba(x), dtype=float), pred, labels
        if hasattr(model, "decision_function") and len(labels) == 2:
            decision = np.asarray(model.decision_function(x), dtype=float)
            return 1.0 / (1.0 + np.exp(-decision)), pred, labels  # monotone: same ranks, same 0.5 cut
    except (ValueError, TypeError, KeyError) as exc:
        raise EvaluationError(f"{role} {loaded.uri} cannot score the test rows: {exc}") from exc
    raise EvaluationError(f"{role} {loaded.uri}: a multiclass model without predict_proba cannot be evaluated")


def _input_columns(signature: Any) -> list[str]:
    if signature is None or signature.inputs is None:
        return []
    return [c["name"] for c in signature.inputs.to_dict() if "name" in c]


def align_classes(scores: np.ndarray, have: list[Any], want: list[Any], diff: list[str]) -> np.ndarray | None:
    """The champion's probability columns in the challenger's class order; None (and a diff) if the classes differ."""
    if set(have) != set(want):
        diff.append(f"classes differ: champion {have}, challenger {want}")
        return None
    if scores.ndim == 1 or have == want:
        return scores
    return scores[:, [have.index(c) for c in want]]


def compare_signatures(champion: Any, challenger: Any) -> list[str]:
    """The differences between two MLflow model signatures, in words ([] when they match)."""
    if champion is None or challenger is None:
        who = "champion" if champion is None else "challenger"
        log.warning("the %s has no model signature; input columns cannot be compared", who)
        return []
    old = {c.get("name"): c.get("type") for c in champion.inputs.to_dict()}
    new = {c.get("name"): c.get("type") for c in challenger.inputs.to_dict()}
    diff = []
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    if added:
        diff.append(f"new column(s) {', '.join(map(repr, added))} the champion does not take")
    if removed:
        diff.append(f"missing column(s) {', '.join(map(repr, removed))} the champion takes")
    for n in new:
        if n in old and new[n] != old[n]:
            diff.append(f"column {n!r} changed type {old[n]} -> {new[n]}")
    if champion.outputs is not None and challenger.outputs is not None:
        before = [c.get("type") for c in champion.outputs.to_dict()]
        after = [c.get("type") for c in challenger.outputs.to_dict()]
        if before != after:
            diff.append(f"output type changed {before} -> {after}")
    return diff
