"""Which row plays which role, and which rows a model saw.

A snapshot's rows have three roles: **train** (fit), **validation** (rank the candidates) and
**test** (the champion/challenger gate only). With a date column the split is out of time: the
newest days are the test rows, the days before them validation, the rest training. Without one a
row's role is a seeded hash of its key (``split.key``, else ``source.id_columns``, else its
features) into buckets: a row keeps its role as the data grows, rows sharing a key share a role.

Every model version's training run keeps ``training_rows.parquet``: an 8-byte content hash of
each row it was trained or selected on. The gate drops from its test rows every row whose hash
is in the serving champion's record, whatever split or config made either model, so the
champion is never scored on rows it was fitted on. A champion without a record (registered
before records existed, or with a corrupt one) falls back to dropping every row dated up to the
end of its training window, and the verdict says so. So does a record that disagrees with its run
(another row count than the run logged) or with the dates (a time-split champion whose days hold
more test rows than the hashes matched). Hashes are core.row_identity's canonical ones.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import SplitError
from airflow_mlops.core.row_identity import row_hashes
from airflow_mlops.core.row_records import (  # noqa: F401  (the records' names, as core.rows always offered them)
    TEST_ROWS_ARTIFACT,
    TRAINING_ROWS_ARTIFACT,
    RowsRecord,
    read_record,
    read_record_table,
    record_table,
    run_record,
    write_record,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)

ROLES = ("train", "validation", "test")
NO_CHAMPION = "no champion"
_BUCKETS = 1 << 53  # a row's key hash -> a number in [0, 1) at this resolution


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


def split_key(config: PipelineConfig, df: pd.DataFrame) -> list[str]:
    """The columns naming a row for the random split: split.key, else source.id_columns, else the features."""
    key = list(config.split.key or config.source.id_columns or config.feature_names)
    missing = [c for c in key if c not in df.columns]
    if missing:
        which = "split.key" if config.split.key else "source.id_columns" if config.source.id_columns else "features"
        raise SplitError(
            f"{_where(config, df)}: the random split's key ({which}) names column(s) {', '.join(map(repr, missing))} "
            f"that the data lacks; present: {', '.join(map(str, df.columns))}"
        )
    return key


def _random_split(df: pd.DataFrame, config: PipelineConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Each row's role from a seeded hash of its key: the same row (or key) gets the same role in every snapshot."""
    import numpy as np

    spl = config.split
    hashes = row_hashes(df, split_key(config, df), seed=config.seed)
    position = (hashes >> np.uint64(11)).astype(np.float64) / _BUCKETS
    test = position < spl.test_size
    validation = ~test & (position < spl.test_size + spl.validation_size)
    return df[~test & ~validation], df[validation], df[test]


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
                "lengthen split.test_days (or split.test_size)"
                if role == "test"
                else "lengthen split.validation_days (or split.validation_size)"
                if role == "validation"
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


# --------------------------------------------------------------------------- rows records (core.row_records)


def training_record(split: Split) -> pa.Table:
    """The record of the rows a model trained on this split saw: its train and validation rows."""
    import pandas as pd

    roles = pd.Series(["train"] * len(split.train) + ["validation"] * len(split.validation))
    return record_table(split.seen, roles, split.date_column, strategy=split.strategy)


def record_of(split: Split, origin: str = "this split") -> RowsRecord:
    """The in-memory record of the rows a model trained on `split` saw (what training_record writes)."""
    table = training_record(split)
    return read_record_table(table, origin)


# --------------------------------------------------------------------------- the gate's rows


@dataclass(frozen=True)
class TestRows:
    """The rows the gate judges on, after dropping every row the champion saw, and the account of it."""

    candidate_frame: pd.DataFrame = field(repr=False)  # the split's test rows, before the exclusion
    kept: np.ndarray = field(repr=False)  # bool per candidate row: seen by neither model
    hashes: np.ndarray = field(repr=False)  # per candidate row, over `hash_columns`
    hash_columns: list[str]
    method: str  # how the champion's rows were found, in words
    strategy: str = ""  # the split strategy that chose the test rows
    date_column: str | None = None
    seen_by_champion: int = 0  # candidate rows dropped as the champion's
    own_duplicates: int = 0  # further rows dropped as exact copies of the challenger's own train/validation rows

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
            "excluded_seen_by_champion": self.seen_by_champion,
            "excluded_copies_of_challenger_rows": self.own_duplicates,
            "exclusion": self.method,
            "first_day": span[0] if span else None,
            "last_day": span[1] if span else None,
            "split": self.strategy,
        }

    def describe(self) -> str:
        span = self.span
        dated = f" dated {span[0]}..{span[1]}" if span else ""
        judged = f"judged on {self.n_rows:,} test rows{dated} ({self.strategy} split)"
        copies = (
            f"; {self.own_duplicates:,} more were exact copies of the challenger's own training rows"
            if self.own_duplicates
            else ""
        )
        if self.method == NO_CHAMPION:
            return f"{judged}; no champion yet: no rows to exclude{copies}"
        return (
            f"{judged}; {self.seen_by_champion:,} of the {len(self.kept):,} test rows were excluded as seen by the "
            f"champion ({self.method}){copies}"
        )

    def record(self) -> pa.Table:
        """test_rows.parquet: every candidate test row's hash, its date and whether it was scored."""
        import pyarrow as pa

        table = record_table(
            self.candidate_frame, "test", self.date_column, self.hash_columns, self.hashes, strategy=self.strategy
        )
        return table.append_column("scored", pa.array(self.kept))


def gate_rows(
    test: pd.DataFrame,
    config: PipelineConfig,
    *,
    champion: RowsRecord | None,
    has_champion: bool,
    champion_window_end: str | None = None,
    why_no_record: str | None = None,
    own: RowsRecord | None = None,
) -> TestRows:
    """The test rows minus every row the champion was trained or selected on, and minus exact copies of
    the challenger's own train and validation rows (`own`, its record).

    With the champion's record: by canonical row hash over the record's columns, checked against the
    dates (a time-split record's days must match as many test rows by hash as they hold). Without a
    record it can trust: every row dated up to the champion's training window end is dropped, and the
    method says why. Raises SplitError when neither is possible.
    """
    import numpy as np

    date_column = config.source.date_column
    if champion is not None:
        missing = [c for c in champion.columns if c not in test.columns]
        if missing:
            why_no_record = (
                f"the champion's rows were hashed over column(s) {', '.join(map(repr, missing))} that this data lacks"
            )
            champion = None
    columns = champion.columns if champion is not None else sorted(map(str, test.columns))
    hashes = champion.hashes_of(test) if champion is not None else row_hashes(test, columns)
    if not has_champion:
        kept, method = np.ones(len(test), dtype=bool), NO_CHAMPION
    else:
        trusted = _kept_by_hash(test, config, champion, hashes) if champion is not None else why_no_record
        if isinstance(trusted, tuple):
            kept, method = trusted
        else:
            kept, method = _kept_by_date(test, config, champion_window_end, trusted)
    seen_by_champion = int((~kept).sum())
    own_duplicates = 0
    if own is not None:
        copies = np.isin(own.hashes_of(test), own.hashes) & kept
        own_duplicates = int(copies.sum())
        kept = kept & ~copies
    return TestRows(
        candidate_frame=test,
        kept=np.asarray(kept, dtype=bool),
        hashes=hashes,
        hash_columns=columns,
        method=method,
        strategy=config.split_strategy,
        date_column=date_column,
        seen_by_champion=seen_by_champion,
        own_duplicates=own_duplicates,
    )


def _kept_by_hash(
    test: pd.DataFrame, config: PipelineConfig, champion: RowsRecord, hashes: np.ndarray
) -> tuple[np.ndarray, str] | str:
    """(rows the champion's record does not hold, how) or, when the dates say the hashes are off, why not."""
    import numpy as np

    kept = ~np.isin(hashes, champion.hashes)
    disagreement = _dates_disagree(test, config.source.date_column, champion, found=int((~kept).sum()))
    if disagreement:
        log.warning("%s: %s", config.name, disagreement)
        return disagreement
    return kept, f"by row hash, {champion.origin}"


def _dates_disagree(test: pd.DataFrame, date_column: str | None, champion: RowsRecord, *, found: int) -> str | None:
    """Why the hash matches cannot be trusted, or None: a time-split champion saw every row of its days, so
    each test row dated on one of them must match by hash (when none does, the hashes are off, e.g. dtypes drifted)."""
    if champion.strategy != "time" or not champion.days or not date_column or date_column not in test.columns:
        return None
    days = _days(test[date_column]).dt.strftime("%Y-%m-%d")
    expected = int(days.isin(champion.days).sum())
    if found >= expected:
        return None
    return (
        f"{champion.origin} matched {found:,} test row(s) by hash, but {expected:,} test row(s) fall on days "
        f"the champion trained on: its hashes do not match this data"
    )


def _kept_by_date(
    test: pd.DataFrame, config: PipelineConfig, champion_window_end: str | None, why_no_record: str | None
) -> tuple[np.ndarray, str]:
    """Rows dated after the champion's training window end (the fallback without a trusted record)."""
    import pandas as pd

    date_column = config.source.date_column
    if not (date_column and champion_window_end and date_column in test.columns):
        raise SplitError(
            f"{config.path}: pipeline {config.name!r}: cannot tell which test rows the champion saw: "
            f"{why_no_record}, and there is no "
            f"{'training window end (tag data.window_end)' if date_column else 'date column'} "
            f"to fall back on. Retrain and promote a champion with this version of airflow-mlops "
            f"(its rows are recorded), or roll back to one that has its {TRAINING_ROWS_ARTIFACT}"
        )
    end = dt.date.fromisoformat(champion_window_end[:10])
    kept = (_days(test[date_column]) > pd.Timestamp(end)).to_numpy()
    return (
        kept,
        f"by date: every row up to the champion's training window end {end.isoformat()}, because {why_no_record}",
    )
