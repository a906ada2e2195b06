"""Which row plays which role, and which rows a model saw.

A snapshot's rows have three roles: **train** (fit), **validation** (rank the candidates) and
**test** (the champion/challenger gate only). With a date column the split is out of time: the
newest days are the test rows, the days before them validation, the rest training.

Every model version's training run keeps ``training_rows.parquet``: an 8-byte content hash of
each row it was trained or selected on. The gate drops from its test rows every row whose hash
is in the serving champion's record, whatever split or config made either model, so the
champion is never scored on rows it was fitted on. A champion without a record (registered
before records existed, or with a corrupt one) falls back to dropping every row dated up to the
end of its training window, and the verdict says so.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import SplitError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)

ROLES = ("train", "validation", "test")
TRAINING_ROWS_ARTIFACT = "training_rows.parquet"
TEST_ROWS_ARTIFACT = "test_rows.parquet"
#: Parquet metadata key: the (sorted) columns a record's hashes were computed over.
_HASH_COLUMNS_KEY = b"airflow_mlops.hash_columns"
NO_CHAMPION = "no champion"
_MISSING = "\x00<NA>"  # how a missing value enters a row hash (no real value looks like it)


# --------------------------------------------------------------------------- the three roles


@dataclass(frozen=True)
class Split:
    """A snapshot's rows by role, and how they were chosen."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    strategy: str  # time | random
    date_column: str | None = None

    @property
    def seen(self) -> pd.DataFrame:
        """The rows a model trained on this split was fitted or selected on (train + validation)."""
        import pandas as pd

        return pd.concat([self.train, self.validation])

    def describe(self) -> str:
        """E.g. 'time split: train 8,800 rows, 2026-01-14..2026-02-04; validation ...; test 1,200 rows, ...'."""
        parts = []
        for role in ROLES:
            frame = getattr(self, role)
            parts.append(f"{role} {len(frame):,} rows{_date_span_text(frame, self.date_column)}")
        return f"{self.strategy} split: " + "; ".join(parts)


def split_roles(df: pd.DataFrame, config: PipelineConfig) -> Split:
    """Split a snapshot into train, validation and test rows (deterministic: dates or ``config.seed``).

    Raises SplitError, naming the pipeline, the window and the keys to change, when the window
    cannot hold the three roles or a classifier's role lacks a class.
    """
    strategy = config.split_strategy
    train, validation, test = _time_split(df, config) if strategy == "time" else _random_split(df, config)
    split = Split(train, validation, test, strategy=strategy, date_column=config.source.date_column)
    _check_roles(split, config, df)
    return split


def _where(config: PipelineConfig, df: pd.DataFrame) -> str:
    """'<config file>: pipeline <name>, window <first day>..<last day>' (or its row count, undated)."""
    span = date_span(df, config.source.date_column)
    window = f"{span[0]}..{span[1]}" if span else f"of {len(df):,} rows"
    return f"{config.path}: pipeline {config.name!r}, window {window}"


def _time_split(df: pd.DataFrame, config: PipelineConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    import pandas as pd

    column = config.source.date_column
    assert column is not None  # config validation: a time split needs a date column
    if column not in df.columns:
        raise SplitError(f"{_where(config, df)}: the time split needs the date column {column!r}, which the data lacks")
    days = _days(df[column])
    if days.isna().any():
        examples = ", ".join(repr(v) for v in df.loc[days.isna(), column].head(3).tolist())
        raise SplitError(
            f"{_where(config, df)}: date column {column!r} has {int(days.isna().sum())} unreadable value(s) "
            f"(e.g. {examples}); the time split needs ISO dates (YYYY-MM-DD)"
        )
    distinct = sorted(days.unique())
    n = len(distinct)
    spl = config.split
    n_test = spl.test_days or max(1, math.ceil(spl.test_size * n))
    n_validation = spl.validation_days or max(1, math.ceil(spl.validation_size * n))
    if n < n_test + n_validation + 1:
        raise SplitError(
            f"{_where(config, df)}: {n} day(s) of data cannot hold {n_test} test day(s), {n_validation} validation "
            f"day(s) and at least one training day; widen the window (source.window_days) or lower "
            f"split.test_days / split.validation_days"
        )
    test_from = pd.Timestamp(distinct[n - n_test])
    validation_from = pd.Timestamp(distinct[n - n_test - n_validation])
    return df[days < validation_from], df[(days >= validation_from) & (days < test_from)], df[days >= test_from]


def _random_split(df: pd.DataFrame, config: PipelineConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    spl = config.split

    def stratify(frame: pd.DataFrame) -> Any:
        return frame[config.target] if config.is_classification and spl.stratify else None

    try:
        rest, test = train_test_split(df, test_size=spl.test_size, random_state=config.seed, stratify=stratify(df))
        share = spl.validation_size / (1.0 - spl.test_size)
        train, validation = train_test_split(rest, test_size=share, random_state=config.seed, stratify=stratify(rest))
    except ValueError as exc:
        raise SplitError(
            f"{_where(config, df)}: {len(df):,} rows cannot be split into train, a {spl.validation_size:.0%} "
            f"validation and a {spl.test_size:.0%} test share ({exc}); widen the window (source.window_days)"
        ) from None
    return train, validation, test


def _check_roles(split: Split, config: PipelineConfig, df: pd.DataFrame) -> None:
    target = config.target
    for role in ROLES:
        frame = getattr(split, role)
        if frame.empty:
            raise SplitError(f"{_where(config, df)}: the {role} rows are empty; widen the window (source.window_days)")
        if config.is_classification and target in frame.columns and frame[target].nunique() < 2:
            only = frame[target].iloc[0]
            only = only.item() if hasattr(only, "item") else only
            advice = (
                "lengthen split.test_days (or split.test_size)" if role == "test"
                else "lengthen split.validation_days (or split.validation_size)" if role == "validation"
                else "widen the window (source.window_days)"
            )
            raise SplitError(
                f"{_where(config, df)}: the {role} rows{_date_span_text(frame, split.date_column)} hold a single "
                f"class of {target!r} ({only!r}) in all {len(frame):,} rows: the models cannot be "
                f"{'trained' if role == 'train' else 'compared'} on them; {advice}"
            )


def _days(values: pd.Series) -> pd.Series:
    import pandas as pd

    days = pd.to_datetime(values, errors="coerce", format="ISO8601")
    if getattr(days.dt, "tz", None) is not None:
        days = days.dt.tz_localize(None)
    return days.dt.normalize()


def date_span(frame: pd.DataFrame, column: str | None) -> tuple[str, str] | None:
    """(first day, last day) of `frame` by `column`, ISO; None without a readable date column or rows."""
    if not column or column not in frame.columns or frame.empty:
        return None
    days = _days(frame[column]).dropna()
    if days.empty:
        return None
    return days.min().date().isoformat(), days.max().date().isoformat()


def _date_span_text(frame: pd.DataFrame, column: str | None) -> str:
    span = date_span(frame, column)
    return f", {span[0]}..{span[1]}" if span else ""


# --------------------------------------------------------------------------- row hashes


def row_hashes(frame: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
    """An 8-byte content hash per row over `columns` (default: all, sorted by name), as uint64.

    Values are canonical first, so a row hashes the same in every snapshot that holds it: numbers
    (integers, floats, booleans) as float64, everything else as text, missing values as one marker.
    A daily file's integer column that reads as float in a window with a blank cell still matches.
    """
    import pandas as pd

    columns = sorted(map(str, frame.columns)) if columns is None else columns
    canonical = {}
    for name in columns:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            canonical[name] = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        else:
            canonical[name] = col.map(lambda v: _MISSING if _is_missing(v) else str(v)).astype(object).to_numpy()
    table = pd.DataFrame(canonical, columns=columns)
    return pd.util.hash_pandas_object(table, index=False).to_numpy()


def _is_missing(value: Any) -> bool:
    try:
        return bool(value is None or value != value)  # NaN, NaT and pd.NA are not equal to themselves
    except (TypeError, ValueError):  # pd.NA's comparison is ambiguous
        return True


@dataclass(frozen=True)
class RowsRecord:
    """Row hashes of a model's rows, the columns they were computed over, and where they came from."""

    hashes: np.ndarray
    columns: list[str]
    origin: str


def record_table(
    frame: pd.DataFrame,
    roles: Any,
    date_column: str | None,
    columns: list[str] | None = None,
    hashes: np.ndarray | None = None,
) -> pa.Table:
    """The Parquet table of a rows record: row_hash, role and the date of every row (schema metadata:
    the hashed columns). `roles` is one role for every row or one per row; `hashes`, when already
    computed over `columns`, are used as they are."""
    import pyarrow as pa

    columns = sorted(map(str, frame.columns)) if columns is None else columns
    hashes = row_hashes(frame, columns) if hashes is None else hashes
    data: dict[str, Any] = {"row_hash": pa.array(hashes, pa.uint64())}
    data["role"] = pa.array([roles] * len(frame) if isinstance(roles, str) else list(roles), pa.string()).dictionary_encode()
    if date_column and date_column in frame.columns:
        data[date_column] = pa.array(frame[date_column].astype(str).tolist(), pa.string()).dictionary_encode()
    table = pa.table(data)
    return table.replace_schema_metadata({_HASH_COLUMNS_KEY: json.dumps(columns).encode()})


def training_record(split: Split) -> pa.Table:
    """The record of the rows a model trained on this split saw: its train and validation rows."""
    import pandas as pd

    roles = pd.Series(["train"] * len(split.train) + ["validation"] * len(split.validation))
    return record_table(split.seen, roles, split.date_column)


def write_record(table: pa.Table, path: str | Path) -> Path:
    import pyarrow.parquet as pq

    pq.write_table(table, str(path), compression="zstd")
    return Path(path)


def read_record(path: str | Path, origin: str) -> RowsRecord:
    """Read a rows record; ValueError (saying what is wrong) when it is not a sound one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not a readable Parquet file ({exc})") from None
    return read_record_table(table, origin)


def record_of(split: Split, origin: str = "this split") -> RowsRecord:
    """The in-memory record of the rows a model trained on `split` saw (what training_record writes)."""
    columns = sorted(map(str, split.seen.columns))
    return RowsRecord(hashes=row_hashes(split.seen, columns), columns=columns, origin=origin)


def run_record(client: MlflowClient, run_id: str | None) -> tuple[RowsRecord | None, str | None]:
    """A model's rows record from its training run (the champion's, for the gate), or (None, why not)."""
    import tempfile

    from mlflow.exceptions import MlflowException

    if not run_id:
        return None, "the model version names no training run"
    origin = f"{TRAINING_ROWS_ARTIFACT} of run {run_id}"
    listed = {a.path for a in client.list_artifacts(run_id)}
    if TRAINING_ROWS_ARTIFACT not in listed:
        return None, f"its training run {run_id} has no {TRAINING_ROWS_ARTIFACT} (trained before rows were recorded)"
    with tempfile.TemporaryDirectory(prefix="mlops-rows-") as tmp:
        try:
            local = client.download_artifacts(run_id, TRAINING_ROWS_ARTIFACT, tmp)
        except MlflowException as exc:
            return None, f"its {origin} cannot be downloaded ({exc.message})"
        try:
            return read_record(local, origin), None
        except ValueError as exc:
            log.warning("%s is corrupt: %s", origin, exc)
            return None, f"its {origin} is corrupt: {exc}"


# --------------------------------------------------------------------------- the gate's rows


@dataclass(frozen=True)
class TestRows:
    """The rows the gate judges on, after dropping every row the champion saw, and the account of it."""

    candidate_frame: pd.DataFrame = field(repr=False)  # the split's test rows, before the exclusion
    kept: np.ndarray = field(repr=False)  # bool per candidate row: not seen by the champion
    hashes: np.ndarray = field(repr=False)  # per candidate row, over `hash_columns`
    hash_columns: list[str]
    method: str  # how the champion's rows were found, in words
    strategy: str = ""  # the split strategy that chose the test rows
    date_column: str | None = None

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The kept test rows: what both models are scored on."""
        return self.candidate_frame[self.kept]

    @property
    def n_rows(self) -> int:
        return int(self.kept.sum())

    @property
    def excluded(self) -> int:
        return len(self.kept) - self.n_rows

    @cached_property
    def span(self) -> tuple[str, str] | None:
        return date_span(self.frame, self.date_column)

    def summary(self) -> dict[str, Any]:
        span = self.span
        return {
            "test_rows": self.n_rows,
            "candidate_rows": len(self.kept),
            "excluded_seen_by_champion": self.excluded,
            "exclusion": self.method,
            "first_day": span[0] if span else None,
            "last_day": span[1] if span else None,
            "split": self.strategy,
        }

    def describe(self) -> str:
        span = self.span
        dated = f" dated {span[0]}..{span[1]}" if span else ""
        judged = f"judged on {self.n_rows:,} test rows{dated} ({self.strategy} split)"
        if self.method == NO_CHAMPION:
            return f"{judged}; no champion yet: no rows to exclude"
        return (
            f"{judged}; {self.excluded:,} of the {len(self.kept):,} test rows were excluded as seen by the "
            f"champion ({self.method})"
        )

    def record(self) -> pa.Table:
        """test_rows.parquet: every candidate test row's hash, its date and whether it was scored."""
        import pyarrow as pa

        table = record_table(self.candidate_frame, "test", self.date_column, self.hash_columns, self.hashes)
        return table.append_column("scored", pa.array(self.kept))


def gate_rows(
    test: pd.DataFrame,
    config: PipelineConfig,
    *,
    champion: RowsRecord | None,
    has_champion: bool,
    champion_window_end: str | None = None,
    why_no_record: str | None = None,
) -> TestRows:
    """The test rows minus every row the champion was trained or selected on.

    With the champion's record: by row hash over the record's columns (exact). Without one (an
    older champion, or a corrupt record): every row dated up to the champion's training window
    end is dropped. Raises SplitError when neither is possible.
    """
    import numpy as np

    date_column = config.source.date_column
    columns = champion.columns if champion is not None else sorted(map(str, test.columns))
    missing = [c for c in columns if c not in test.columns]
    if champion is not None and missing:
        why_no_record = (
            f"the champion's rows were hashed over column(s) {', '.join(map(repr, missing))} that this data lacks"
        )
        champion, columns = None, sorted(map(str, test.columns))
    hashes = row_hashes(test, columns)
    if not has_champion:
        kept, method = np.ones(len(test), dtype=bool), NO_CHAMPION
    elif champion is not None:
        kept = ~np.isin(hashes, champion.hashes)
        method = f"by row hash, {champion.origin}"
    else:
        if not (date_column and champion_window_end and date_column in test.columns):
            raise SplitError(
                f"{config.path}: pipeline {config.name!r}: cannot tell which test rows the champion saw: "
                f"{why_no_record}, and there is no {'training window end (tag data.window_end)' if date_column else 'date column'} "
                f"to fall back on. Retrain and promote a champion with this version of airflow-mlops "
                f"(its rows are recorded), or roll back to one that has its {TRAINING_ROWS_ARTIFACT}"
            )
        import pandas as pd

        end = dt.date.fromisoformat(champion_window_end[:10])
        kept = (_days(test[date_column]) > pd.Timestamp(end)).to_numpy()
        method = f"by date: every row up to the champion's training window end {end.isoformat()}, because {why_no_record}"
    return TestRows(
        candidate_frame=test, kept=np.asarray(kept, dtype=bool), hashes=hashes, hash_columns=columns,
        method=method, strategy=config.split_strategy, date_column=date_column,
    )


# --------------------------------------------------------------------------- audit


def audit_verdict(client: MlflowClient, model_name: str, version: str) -> dict[str, Any]:
    """Re-check, from MLflow alone, that a version's verdict was judged on rows neither model saw.

    Reads the evaluation run's test_rows.parquet (tag evaluation.run_id), the champion's and the
    challenger's training_rows.parquet, and counts the scored test rows found in either.
    Returns {model, version, champion_version, scored, excluded, seen_by_champion,
    seen_by_challenger, ok, notes}; ok is False when a scored row was seen by either model.
    """
    import tempfile

    import pyarrow.parquet as pq

    from airflow_mlops.core.errors import EvaluationError

    mv = client.get_model_version(model_name, str(version))
    run_id = mv.tags.get("evaluation.run_id")
    if not run_id:
        raise EvaluationError(f"{model_name} version {version} has no evaluation (tag evaluation.run_id): nothing to audit")
    champion_version = mv.tags.get("evaluation.champion_version", "none")
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlops-audit-") as tmp:
        path = f"evaluation/{TEST_ROWS_ARTIFACT}"
        try:
            local = client.download_artifacts(run_id, path, tmp)
            table = pq.read_table(local)
        except Exception as exc:  # any failure here means: no usable record
            raise EvaluationError(
                f"{model_name} version {version}: evaluation run {run_id} has no readable {path} ({exc}); "
                f"it was evaluated before test rows were recorded"
            ) from None
    test = read_record_table(table, f"{path} of run {run_id}")
    import numpy as np

    scored = test.hashes[np.asarray(table.column("scored").to_pylist(), dtype=bool)]
    result: dict[str, Any] = {
        "model": model_name, "version": str(version), "champion_version": champion_version,
        "evaluation_run_id": run_id, "scored": len(scored), "excluded": len(test.hashes) - len(scored),
        "seen_by_champion": None, "seen_by_challenger": None, "notes": notes,
    }
    for role, who in (("challenger", str(version)), ("champion", champion_version)):
        if who == "none":
            notes.append(f"no {role}: nothing to compare")
            continue
        record, why = run_record(client, client.get_model_version(model_name, who).run_id)
        if record is None:
            notes.append(f"the {role} v{who}: {why}")
        elif record.columns != test.columns:
            notes.append(f"the {role} v{who}'s rows were hashed over other columns than the test rows")
        else:
            result[f"seen_by_{role}"] = int(np.isin(scored, record.hashes).sum())
    result["ok"] = not any(result[f"seen_by_{r}"] for r in ("champion", "challenger"))
    return result


def read_record_table(table: pa.Table, origin: str) -> RowsRecord:
    """A RowsRecord from an already read table (see read_record)."""
    import numpy as np

    meta = table.schema.metadata or {}
    try:
        columns = json.loads(meta[_HASH_COLUMNS_KEY])
    except (KeyError, ValueError):
        raise ValueError("its hashed-column list (Parquet metadata) is missing or unreadable") from None
    if "row_hash" not in table.column_names or not isinstance(columns, list) or not columns:
        raise ValueError("it has no row_hash column or no hashed columns")
    hashes = np.asarray(table.column("row_hash").to_numpy(), dtype=np.uint64)
    return RowsRecord(hashes=hashes, columns=[str(c) for c in columns], origin=origin)
