"""Predictions joined with their delayed labels, with accounting that is never silent.

Every row is accounted for: predictions matched by a label, predictions without a label yet, labels
without a prediction, duplicate label rows, and predictions made by another model version than the
day's main one (counted per version). Duplicate labels: identical repeats of an id are collapsed to one
row (counted); an id whose repeats disagree on the outcome is dropped altogether (counted), because
keeping "the first" would let file order pick the truth. Its prediction then counts as unlabelled, so
the join rate shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import PerformanceError

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    import pandas as pd

#: The outcome's column in the joined frame (the target's name could clash with a prediction column).
ACTUAL = "actual"
MAX_LISTED = 5


@dataclass
class JoinResult:
    """The joined rows of one day and how every prediction and label row was accounted for."""

    day: dt.date | None
    predictions: int  # prediction rows of the day
    label_rows: int  # rows in the labels file
    matched: int  # predictions with exactly one known outcome
    predictions_without_labels: int  # not labelled (yet), or their label id was dropped as conflicting
    labels_without_predictions: int  # distinct labelled ids that nobody scored that day
    duplicate_label_rows: int  # label rows repeating an id already seen (identical or conflicting)
    conflicting_label_ids: int  # ids whose label rows disagree: dropped
    main_version: str  # the model version that scored most of the day's rows
    predictions_by_version: dict[str, int]
    matched_by_version: dict[str, int]
    joined: pd.DataFrame = field(repr=False)  # id columns, score, predicted, model_version, actual

    @property
    def join_rate(self) -> float:
        """Matched predictions / predictions (0 when there are none)."""
        return self.matched / self.predictions if self.predictions else 0.0

    @property
    def other_versions(self) -> dict[str, int]:
        """Prediction rows scored by another version than the day's main one, per version."""
        return {v: n for v, n in self.predictions_by_version.items() if v != self.main_version}

    def counts(self) -> dict[str, Any]:
        """The accounting as plain values (JSON, XCom, MLflow)."""
        return {
            "day": self.day.isoformat() if self.day else None,
            "predictions": self.predictions,
            "label_rows": self.label_rows,
            "matched": self.matched,
            "join_rate": round(self.join_rate, 6),
            "predictions_without_labels": self.predictions_without_labels,
            "labels_without_predictions": self.labels_without_predictions,
            "duplicate_label_rows": self.duplicate_label_rows,
            "conflicting_label_ids": self.conflicting_label_ids,
            "main_version": self.main_version,
            "predictions_by_version": dict(self.predictions_by_version),
            "matched_by_version": dict(self.matched_by_version),
            "other_version_rows": sum(self.other_versions.values()),
        }

    def describe(self) -> str:
        """One line with every count, e.g. for an error message or the task log."""
        others = ", ".join(f"v{v}: {n:,}" for v, n in sorted(self.other_versions.items())) or "none"
        return (
            f"{self.matched:,} of {self.predictions:,} prediction(s) matched a label (join rate {self.join_rate:.1%}); "
            f"{self.predictions_without_labels:,} prediction(s) without a label yet, "
            f"{self.labels_without_predictions:,} label(s) without a prediction, "
            f"{self.duplicate_label_rows:,} duplicate label row(s) ({self.conflicting_label_ids:,} id(s) with "
            f"conflicting outcomes dropped), {self.label_rows:,} label row(s) in all; main model version "
            f"v{self.main_version}, rows scored by other versions: {others}"
        )


def join_day(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    id_columns: Sequence[str],
    target: str,
    *,
    day: dt.date | None = None,
) -> JoinResult:
    """Join the day's predictions with its labels on `id_columns`, counting every row (see the module doc).

    Ids are compared as text when the two sides store them with different types (an id read as a number
    on one side and as text on the other). Duplicate prediction ids are an error: scoring writes one
    prediction per record.
    """
    import numpy as np
    import pandas as pd

    ids = list(id_columns)
    if not ids:
        raise PerformanceError("predictions and labels are joined on source.id_columns, which is empty")
    where = f" of {day}" if day else ""
    preds = predictions[[*ids, "score", "predicted", "model_version"]]
    labs = labels[[*ids, target]].rename(columns={target: ACTUAL})
    if any(preds[c].dtype != labs[c].dtype for c in ids):
        preds = preds.assign(**{c: preds[c].astype(str) for c in ids})
        labs = labs.assign(**{c: labs[c].astype(str) for c in ids})
    dup_preds = preds.duplicated(ids, keep=False)
    if dup_preds.any():
        shown = preds.loc[dup_preds, ids].drop_duplicates().head(MAX_LISTED).astype(str).agg("/".join, axis=1)
        raise PerformanceError(
            f"the predictions{where} hold {int(dup_preds.sum())} rows with a repeated id ({', '.join(ids)}: "
            f"{', '.join(shown)}): scoring writes one prediction per record, so the partition is corrupt; re-score it"
        )

    label_rows = len(labs)
    repeated = labs.duplicated(ids, keep="first")
    duplicate_rows = int(repeated.sum())
    conflicting = 0
    if duplicate_rows:
        in_groups = labs[labs.duplicated(ids, keep=False)]
        outcomes = in_groups.groupby(ids, sort=False, dropna=False)[ACTUAL].nunique(dropna=False)
        bad_ids = outcomes[outcomes > 1].index
        conflicting = len(bad_ids)
        labs = labs[~repeated]
        if conflicting:
            key = pd.MultiIndex.from_frame(labs[ids]) if len(ids) > 1 else pd.Index(labs[ids[0]])
            labs = labs[~key.isin(bad_ids)]

    merged = preds.merge(labs, on=ids, how="outer", indicator=True, sort=False)
    side = merged["_merge"].to_numpy()
    both = side == "both"
    joined = merged.loc[both, [*ids, "score", "predicted", "model_version", ACTUAL]].reset_index(drop=True)
    joined["model_version"] = joined["model_version"].astype(str)
    by_version = preds["model_version"].astype(str).value_counts()
    matched_by_version = joined["model_version"].value_counts()
    # the main version: the most rows; a tie goes to the newest version number
    main = max(by_version.index, key=lambda v: (by_version[v], _version_key(v))) if len(by_version) else ""
    return JoinResult(
        day=day,
        predictions=len(preds),
        label_rows=label_rows,
        matched=int(both.sum()),
        predictions_without_labels=int(np.sum(side == "left_only")),
        labels_without_predictions=int(np.sum(side == "right_only")),
        duplicate_label_rows=duplicate_rows,
        conflicting_label_ids=conflicting,
        main_version=str(main),
        predictions_by_version={str(k): int(v) for k, v in by_version.items()},
        matched_by_version={str(k): int(v) for k, v in matched_by_version.items()},
        joined=joined,
    )


def check_join_rate(result: JoinResult, min_join_rate: float, *, predictions_path: str = "",
                    labels_path: str = "") -> None:
    """A PerformanceError with every count when fewer than `min_join_rate` of the predictions matched a label."""
    if result.predictions and result.join_rate >= min_join_rate:
        return
    files = f" (predictions {predictions_path}, labels {labels_path})" if predictions_path or labels_path else ""
    raise PerformanceError(
        f"join of {result.day or 'the day'} under monitoring.performance.min_join_rate ({min_join_rate:.0%}): "
        f"{result.describe()}{files}. No verdict was made: check that the labels are of the same records "
        f"(ids, their format) and complete, or lower min_join_rate if labels arrive partially by design"
    )


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)
