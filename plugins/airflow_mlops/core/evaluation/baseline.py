"""``evaluation.baseline_guard``: the guard rails judged against the model's first champion too.

Each promotion may regress a guard-rail metric by a little within its tolerance; compared with the
first champion as well, those small steps cannot add up. The first champion is named by the registry
ledger's first move of ``champion``: the version it moved from (a champion set before the ledger began), or
else the one it moved to. It is scored on the clean test rows minus the rows it saw (its
``training_rows.parquet``). Whatever cannot be found, loaded or read makes the guard unverified: a REJECT.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import registry, training
from airflow_mlops.core import rows as rows_mod
from airflow_mlops.core.errors import EvaluationError, MlopsError
from airflow_mlops.core.evaluation.bootstrap import paired_bootstraps
from airflow_mlops.core.evaluation.decision import BaselineEvidence
from airflow_mlops.core.evaluation.models import Loaded, align_classes, load, score

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Baseline:
    """The model's first champion as the registry knows it: loaded with its rows record, or why it cannot be."""

    version: str | None
    model: Loaded | None = None
    record: rows_mod.RowsRecord | None = None
    why: str | None = None  # set: the baseline cannot be checked (the guard fails closed)
    is_champion: bool = False  # the first champion is the current champion: nothing more to compare


def first_champion_version(client: MlflowClient, name: str) -> tuple[str | None, str | None]:
    """(the model's first champion, None) or (None, why it cannot be told): the first ledger move of ``champion``
    names it, as the version it moved from (a champion set before the ledger began) or else the one it moved to."""
    from mlflow.exceptions import MlflowException

    try:
        moves = registry.history(client, name)
    except (MlopsError, MlflowException, OSError, ValueError) as exc:
        return None, f"the registry ledger of {name!r} cannot be read ({exc})"
    for entry in moves:
        if entry.get("alias") == registry.CHAMPION and (entry.get("from") or entry.get("to")):
            return str(entry.get("from") or entry["to"]), None
    return None, (
        f"the registry ledger of {name!r} records no move of the champion alias, so its first champion is unknown "
        f"(a champion set outside airflow-mlops?); promote through airflow-mlops, or turn evaluation.baseline_guard off"
    )


def find_baseline(client: MlflowClient, config: PipelineConfig, champion: Loaded) -> Baseline:
    """The first champion of `config`'s model, loaded, with its rows record; never raises for what is missing."""
    from mlflow.exceptions import MlflowException

    name = config.model_name
    version, why = first_champion_version(client, name)
    if version is None:
        return Baseline(None, why=why)
    uri = f"models:/{name}/{version}"
    if champion.uri.rstrip("/") == uri:
        return Baseline(version, is_champion=True)
    try:
        model = load(client, uri, "first champion", allow_pickle=config.security.allow_pickle_models)
    except (MlopsError, MlflowException, OSError, ValueError) as exc:
        return Baseline(version, why=f"the first champion {uri} cannot be loaded ({exc})")
    if model.run_id is not None and model.run_id == champion.run_id:
        return Baseline(version, model=model, is_champion=True)
    try:
        record, no_record = rows_mod.run_record(client, model.run_id)
    except (MlopsError, MlflowException, OSError) as exc:
        record, no_record = None, f"its training run's rows record cannot be read ({exc})"
    if record is None:
        return Baseline(version, model=model, why=f"the first champion {uri}: {no_record}; the rows it saw are unknown")
    return Baseline(version, model=model, record=record)


def baseline_evidence(
    config: PipelineConfig,
    baseline: Baseline,
    frame: pd.DataFrame,
    challenger_scores: np.ndarray,
    challenger_pred: np.ndarray,
    labels: list[Any] | None,
    positive: Any,
) -> BaselineEvidence:
    """Score the first champion on `frame` (the clean test rows) minus the rows it saw and bootstrap the
    challenger's gain over it on every guard-rail metric (no MLflow I/O)."""
    import numpy as np

    if baseline.why is not None or baseline.is_champion:
        return BaselineEvidence(baseline.version, why=baseline.why, is_champion=baseline.is_champion)
    if baseline.model is None or baseline.record is None:
        return BaselineEvidence(baseline.version, why="the first champion was not loaded with its rows record")
    ev = config.evaluation
    record = baseline.record
    missing = [c for c in record.columns if c not in frame.columns]
    if missing:
        return BaselineEvidence(
            baseline.version,
            why=f"the first champion's rows were hashed over column(s) "
            f"{', '.join(map(repr, missing))} that the test rows lack",
        )
    seen = np.isin(record.hashes_of(frame), record.hashes)
    rows = frame[~seen]
    n_rows, excluded = len(rows), int(seen.sum())
    y = rows[config.target].to_numpy()
    if n_rows < ev.min_test_rows:
        return BaselineEvidence(
            baseline.version,
            n_rows=n_rows,
            excluded=excluded,
            why=(
                f"only {n_rows:,} clean test row(s) remain after dropping the {excluded:,} the first champion (version "
                f"{baseline.version}) saw, fewer than evaluation.min_test_rows ({ev.min_test_rows:,})"
            ),
        )
    if labels is not None:
        counts = {c: int(np.sum(y == c)) for c in labels}
        short = [c for c, k in counts.items() if k < ev.min_test_events]
        if short:
            return BaselineEvidence(
                baseline.version,
                n_rows=n_rows,
                excluded=excluded,
                why=(
                    f"the test rows the first champion (version {baseline.version}) never saw hold fewer than "
                    f"evaluation.min_test_events ({ev.min_test_events:,}) of class(es) {', '.join(map(repr, short))} "
                    f"({', '.join(f'{c!r} {k:,}' for c, k in counts.items())})"
                ),
            )
    names = list(ev.guard_rails)
    keep = ~seen
    challenger_rows = challenger_scores[keep]
    try:
        raw, pred, its_labels = score(baseline.model, rows, config, role="first champion")
        diff: list[str] = []
        scores = align_classes(raw, its_labels, labels, diff) if labels is not None and its_labels is not None else raw
        if scores is None:
            return BaselineEvidence(baseline.version, why=f"the first champion cannot be compared: {'; '.join(diff)}")
        metrics = training.compute_metrics(config.task, y, pred, scores, names, labels=labels, positive=positive)
        challenger = training.compute_metrics(
            config.task, y, np.asarray(challenger_pred)[keep], challenger_rows, names, labels=labels, positive=positive
        )
        intervals = (
            paired_bootstraps(
                y,
                challenger_rows,
                scores,
                names,
                task=config.task,
                labels=labels,
                n=ev.bootstrap_samples,
                seed=config.seed,
                confidence=ev.confidence,
                positive=positive,
            )
            if names
            else {}
        )
    except EvaluationError as exc:
        return BaselineEvidence(baseline.version, why=f"the first champion cannot score the test rows: {exc}")
    log.info(
        "baseline guard: first champion version %s on %d test rows (%d it saw dropped)",
        baseline.version,
        n_rows,
        excluded,
    )
    return BaselineEvidence(
        baseline.version,
        metrics=metrics,
        challenger=challenger,
        intervals=intervals,
        n_rows=n_rows,
        excluded=excluded,
    )
