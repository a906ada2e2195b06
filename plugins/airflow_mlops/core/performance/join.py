"""Predictions joined with their delayed labels, with accounting that is never silent.

Every row is accounted for: predictions matched by a label, predictions without a label yet, labels
without a prediction, duplicate label rows, and predictions made by another model version than the
day's main one (counted per version). Duplicate labels: identical repeats of an id are collapsed to one
row (counted); an id whose repeats disagree on the outcome is dropped altogether (counted), because
keeping "the first" would let file order pick the truth. Its prediction then counts as unlabelled, so
the join rate shows it.

Ids are compared under one dtype on both sides (``canonical_ids``): the one ``source.dtypes`` declares for
the id column, else text. When no row joins although both sides have rows, the likely cause (leading zeros,
letter case, numbers on one side and text on the other) is named with a few ids of each side.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import PerformanceError

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Mapping, Sequence

    import pandas as pd

#: The outcome's column in the joined frame (the target's name could clash with a prediction column).
ACTUAL = "actual"
MAX_LISTED = 5
#: Ids of each side shown when nothing joined (ids are not secrets, but a message stays short).
MAX_ID_EXAMPLES = 3

log = logging.getLogger(__name__)


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
    hint: str = ""  # when nothing joined although both sides have rows: the likely cause, with ids of each side

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
            "hint": self.hint,
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
    id_dtypes: Mapping[str, str] | None = None,
) -> JoinResult:
    """Join the day's predictions with its labels on `id_columns`, counting every row (see the module doc).

    Both sides' ids are cast to one dtype per column (``canonical_ids``): `id_dtypes` (``source.dtypes``)
    when it declares the column, else text. Duplicate prediction ids are an error: scoring writes one
    prediction per record. Nothing joined while both sides have rows: `hint` names the likely cause (logged).
    """
    import numpy as np
    import pandas as pd

    ids = list(id_columns)
    if not ids:
        raise PerformanceError("predictions and labels are joined on source.id_columns, which is empty")
    where = f" of {day}" if day else ""
    declared = dict(id_dtypes or {})
    raw_preds = predictions[[*ids, "score", "predicted", "model_version"]]
    raw_labs = labels[[*ids, target]].rename(columns={target: ACTUAL})
    preds = raw_preds.assign(
        **{c: canonical_ids(raw_preds[c], declared.get(c), column=c, side=f"predictions{where}") for c in ids}
    )
    labs = raw_labs.assign(
        **{c: canonical_ids(raw_labs[c], declared.get(c), column=c, side=f"labels{where}") for c in ids}
    )
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
    hint = ""
    if not both.any() and len(preds) and len(labs):
        hint = _no_match_hint(raw_preds, raw_labs, preds, labs, ids, declared)
        log.warning("no prediction%s joined a label: %s", where, hint)
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
        hint=hint,
    )


def canonical_ids(values: pd.Series, dtype: str | None = None, *, column: str = "id", side: str = "") -> pd.Series:
    """`values` of one id column in the dtype both sides are compared under.

    - ``int`` / ``float`` (declared in ``source.dtypes``): numbers; text is stripped and parsed, so "00123"
      is 123. A value that is not such a number is a PerformanceError naming the column, the side and values.
    - otherwise (``string``, ``bool`` or undeclared): text. A whole number is written without decimals or
      exponent (123, 123.0 and "123" are one id), another number as Python prints it (1.5), text is
      stripped of surrounding spaces; nothing else changes: letter case and leading zeros count ("00123"
      is not 123: declare ``int`` when the ids are numbers). Missing ids stay missing.
    """
    import pandas as pd

    if dtype in ("int", "float"):
        text = values.map(lambda v: v.strip() if isinstance(v, str) else v)
        numbers = pd.to_numeric(text, errors="coerce")
        bad = numbers.isna() & values.notna()
        if dtype == "int":
            bad |= numbers.notna() & (numbers % 1 != 0)
        if bad.any():
            shown = ", ".join(repr(v) for v in values[bad].drop_duplicates().head(MAX_ID_EXAMPLES).tolist())
            raise PerformanceError(
                f"{side or 'ids'}: id column {column!r} holds {int(bad.sum())} value(s) that are not "
                f"{'whole numbers' if dtype == 'int' else 'numbers'} (e.g. {shown}) although source.dtypes declares "
                f"it {dtype!r}: fix the export, or declare the column 'string'"
            )
        return numbers.astype("Int64" if dtype == "int" else "Float64")
    if pd.api.types.is_integer_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("str")
    if isinstance(values.dtype, pd.StringDtype):
        return values.str.strip().astype("str")
    return values.map(_id_text, na_action="ignore").astype("str")


def _id_text(value: Any) -> str:
    """One id as text (see ``canonical_ids``)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not hasattr(value, "__float__"):
        return str(value).strip()
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, int):
        return str(value)
    number = float(value)
    return str(int(number)) if math.isfinite(number) and number.is_integer() else repr(number)


def _no_match_hint(
    raw_preds: pd.DataFrame,
    raw_labs: pd.DataFrame,
    preds: pd.DataFrame,
    labs: pd.DataFrame,
    ids: list[str],
    declared: dict[str, str],
) -> str:
    """Why no id matched, in words, with at most MAX_ID_EXAMPLES ids of each side."""
    import pandas as pd

    def examples(frame: pd.DataFrame, column: str) -> str:
        return ", ".join(repr(v) for v in frame[column].dropna().drop_duplicates().head(MAX_ID_EXAMPLES).tolist())

    def numeric(frame: pd.DataFrame, column: str) -> bool:
        return pd.api.types.is_numeric_dtype(frame[column].dtype) and not pd.api.types.is_bool_dtype(
            frame[column].dtype
        )

    column = next((c for c in ids if not set(preds[c].dropna()) & set(labs[c].dropna())), ids[0])
    p_ids, l_ids = set(preds[column].dropna().astype(str)), set(labs[column].dropna().astype(str))
    shown = (
        f"e.g. predictions {examples(raw_preds, column)} ({raw_preds[column].dtype}), labels "
        f"{examples(raw_labs, column)} ({raw_labs[column].dtype})"
    )
    compared = f"declared {declared[column]!r} in source.dtypes" if column in declared else "text"

    def unzeroed(values: set[str]) -> set[str]:
        return {v.lstrip("0") or "0" for v in values}

    if p_ids != unzeroed(p_ids) or l_ids != unzeroed(l_ids):
        if unzeroed(p_ids) & unzeroed(l_ids):
            return (
                f"id column {column!r}: the ids differ by leading zeros ({shown}); they are compared as "
                f"{compared}, where '00123' is not 123: declare the column 'int' in source.dtypes if the ids "
                f"are numbers, else fix the export that drops or adds the zeros"
            )
    if {v.lower() for v in p_ids} & {v.lower() for v in l_ids}:
        return (
            f"id column {column!r}: the ids differ in letter case only ({shown}); they are compared as "
            f"{compared}, where case counts: fix the export that changes it"
        )
    if numeric(raw_preds, column) != numeric(raw_labs, column):
        return (
            f"id column {column!r}: numbers on one side, text on the other, and no id in common once compared "
            f"as {compared} ({shown}): check the id format of both exports"
        )
    return (
        f"id column {column!r}: no id in common ({shown}): are the labels of the same records and day as the "
        f"predictions? compare the two exports"
    )


def check_join_rate(
    result: JoinResult, min_join_rate: float, *, predictions_path: str = "", labels_path: str = ""
) -> None:
    """A PerformanceError with every count when fewer than `min_join_rate` of the predictions matched a label."""
    if result.predictions and result.join_rate >= min_join_rate:
        return
    files = f" (predictions {predictions_path}, labels {labels_path})" if predictions_path or labels_path else ""
    raise PerformanceError(
        f"join of {result.day or 'the day'} under monitoring.performance.min_join_rate ({min_join_rate:.0%}): "
        f"{result.describe()}{files}. {f'Likely cause: {result.hint}. ' if result.hint else ''}No verdict was "
        f"made: check that the labels are of the same records (ids, their format) and complete, or lower "
        f"min_join_rate if labels arrive partially by design"
    )


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)
