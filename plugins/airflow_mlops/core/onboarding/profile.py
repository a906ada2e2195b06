"""Profile a sample file: what each column holds, read as the pipeline will read it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataSourceError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    import pandas as pd

MAX_SET_VALUES = 20  # at most this many distinct values: a value-set rule (and a class count for a target)
ISO_DAY = r"^\d{4}-\d{2}-\d{2}"
#: the names a row number gets (pandas writes its index as "Unnamed: 0")
ROW_NUMBER_NAME = re.compile(r"(?i)unnamed: ?\d+|index|row|row_?(?:number|num|no|nr)|#|")


@dataclass(frozen=True)
class Column:
    """What one column of the sample holds."""

    name: str
    kind: str  # number | text | bool | datetime | empty
    rows: int
    nulls: int
    distinct: int
    values: tuple[Any, ...] = ()  # the distinct values, sorted, when there are at most MAX_SET_VALUES
    minimum: float | None = None
    maximum: float | None = None
    whole: bool = False  # numbers: every value a whole number
    blanks: tuple[str, ...] = ()  # blank strings read as missing (a numeric column exported with " ")
    dates: bool = False  # every value is an ISO date (or the column is a datetime)
    iso_text: bool = False  # text whose every value starts YYYY-MM-DD
    days: tuple[str, ...] = ()  # dates: the distinct days, sorted (ISO)

    @property
    def unique(self) -> bool:
        return self.nulls == 0 and self.distinct == self.rows

    @property
    def row_number(self) -> bool:
        """A row number's name, and whole numbers one per row with no gap (0..n-1, 1..n): not a measurement."""
        return (
            bool(ROW_NUMBER_NAME.fullmatch(self.name))
            and self.kind == "number"
            and self.whole
            and self.unique
            and self.minimum is not None
            and self.maximum is not None
            and self.maximum - self.minimum == self.rows - 1
        )


@dataclass
class Sample:
    """The sample as the pipeline will read it (blank strings missing), and its columns' profiles."""

    path: Path
    format: str
    frame: pd.DataFrame
    columns: dict[str, Column]

    @property
    def rows(self) -> int:
        return len(self.frame)


def read_sample(path: Path) -> tuple[pd.DataFrame, str]:
    """The sample file as a frame and its format (csv | parquet), through the project's own readers."""
    from airflow_mlops.core import data
    from airflow_mlops.core.paths import check_path_text

    check_path_text(str(path), "sample file")
    if not path.exists():
        raise DataSourceError(f"{path}: sample file not found; give the path of a CSV or Parquet file of the data")
    if not path.is_file():
        raise DataSourceError(f"{path}: not a file; give one sample file (e.g. one day's export), not a folder")
    fmt = {".csv": "csv", ".parquet": "parquet"}.get(path.suffix.lower())
    if fmt is None:
        raise DataSourceError(
            f"{path}: unknown format {path.suffix or '(no extension)'!r}; init reads .csv (comma-separated UTF-8) "
            f"and .parquet files: export the sample as one of them"
        )
    if path.stat().st_size == 0:
        raise DataSourceError(f"{path}: file is empty (0 bytes); give a sample with a header and data rows")
    frame = data.read_csv(path) if fmt == "csv" else data.read_parquet(path)
    frame.columns = [str(c) for c in frame.columns]
    return frame, fmt


def profile_sample(path: Path) -> Sample:
    """Read the sample and profile every column; blank strings in otherwise numeric columns become missing."""
    from airflow_mlops.core import data

    frame, fmt = read_sample(path)
    if frame.shape[1] < 2:
        raise DataSourceError(
            f"{path}: the sample has a single column {frame.columns[0]!r}; a pipeline needs a target column and "
            f"at least one feature: export more columns (CSV must be comma-separated)"
        )
    frame = frame.copy()
    columns = {}
    for name in frame.columns:
        values, blanks = _blanks_as_missing(frame[name])
        if blanks:
            frame[name] = values
        columns[name] = _profile_column(name, frame[name], blanks)
    data.check_finite(frame, path)
    return Sample(path=path, format=fmt, frame=frame, columns=columns)


def _blanks_as_missing(col: pd.Series) -> tuple[pd.Series, tuple[str, ...]]:
    """A text column of numbers and blank strings (" "): as numbers with the blanks missing, and the blanks."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col):
        return col, ()
    present = col.dropna()
    if not all(isinstance(v, str) for v in present):
        return col, ()
    blank = present.str.strip() == ""
    if not blank.any() or blank.all() or pd.to_numeric(present[~blank], errors="coerce").isna().any():
        return col, ()
    blanks = tuple(sorted(set(present[blank])))
    return pd.to_numeric(col.mask(col.isin(blanks)), errors="coerce").astype("float64"), blanks


def _profile_column(name: str, col: pd.Series, blanks: tuple[str, ...]) -> Column:
    import pandas as pd

    present = col.dropna()
    column = partial(
        Column, name=name, rows=len(col), nulls=len(col) - len(present), distinct=int(present.nunique()), blanks=blanks
    )
    if present.empty:
        return column(kind="empty")
    values = tuple(ordered_values(plain_value(v) for v in present.unique()))
    values = values if len(values) <= MAX_SET_VALUES else ()
    if pd.api.types.is_bool_dtype(col):
        return column(kind="bool", values=values)
    if pd.api.types.is_datetime64_any_dtype(col):
        return column(kind="datetime", dates=True, days=_days(present))
    if pd.api.types.is_numeric_dtype(col):
        return column(
            kind="number",
            values=values,
            minimum=float(present.min()),
            maximum=float(present.max()),
            whole=bool((present % 1 == 0).all()),
        )
    text = present.astype(str)
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
    if parsed.notna().all() and text.str.contains(r"\d{4}|\d[-/]\d", regex=True).all():
        iso = bool(text.str.match(ISO_DAY).all())
        return column(kind="text", values=values, dates=True, iso_text=iso, days=_days(parsed))
    return column(kind="text", values=values)


def _days(dates: pd.Series) -> tuple[str, ...]:
    return tuple(sorted({d.date().isoformat() for d in naive_dates(dates).dropna().dt.normalize()}))


def naive_dates(values: pd.Series) -> pd.Series:
    """`values` read as ISO dates (unreadable ones missing), without a time zone."""
    import pandas as pd

    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed


def plain_value(value: Any) -> Any:
    """A numpy scalar as the plain Python value; whole floats stay floats (a float column's set is floats)."""
    return value.item() if hasattr(value, "item") else value


def ordered_values(values: Iterable[Any]) -> list[Any]:
    """Values of mixed types sorted by type name, then value."""
    return sorted(values, key=lambda v: (type(v).__name__, v))


def number_text(value: float | None) -> str:
    """A number as short text for the config and the suite: whole floats without ".0", else 6 digits."""
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def examples_text(column: Column, limit: int = 3) -> str:
    """The column's first few values, for a comment: "(a, b, c, ...)"."""
    shown = list(column.values[:limit])
    more = ", ..." if column.distinct > limit or not column.values else ""
    return "(" + ", ".join(number_text(v) if isinstance(v, float) else repr(v) for v in shown) + more + ")"
