"""What every frame read from a source passes: required columns, declared types (``source.dtypes``),
numeric features, finite numbers and no dates in the future."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

import pandas as pd

from airflow_mlops.core.errors import DataSourceError

if TYPE_CHECKING:
    from collections.abc import Collection

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.data.files import SourceFile

MAX_LISTED = 5  # how many bad lines / values an error message quotes
EXAMPLES = 3  # how many values that are not numbers (or not true/false) an error message quotes
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})  # what a `bool` column reads as True (any case) ...
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})  # ... and as False


def required_columns(config: PipelineConfig) -> dict[str, str]:
    """Every column the config names -> the (first) config key that names it, for the error message."""
    src = config.source
    named: dict[str, str] = {}
    for column, key in [
        *((c, "features") for c in config.feature_names),
        (config.target, "target"),
        (src.date_column, "source.date_column"),
        *((c, "source.id_columns") for c in src.id_columns),
        *((c, "source.dtypes") for c in src.dtypes),
    ]:
        if column:
            named.setdefault(column, key)
    return named


def check_frame(
    frame: pd.DataFrame, config: PipelineConfig, path: SourceFile, *, without: Collection[str] = ()
) -> pd.DataFrame:
    """What every frame read from a source passes: the columns the config names are there (but `without`,
    e.g. the target of an unlabeled batch), declared types, no blanks in numeric features, finite numbers,
    no dates in the future. Returns the frame with ``source.dtypes`` applied; each problem is a DataSourceError."""
    source = config.source
    required = {c: key for c, key in required_columns(config).items() if c not in without}
    missing = [c for c in required if c not in frame.columns]
    if missing:
        listed = ", ".join(f"{c!r} ({required[c]})" for c in missing)
        # The header is shown only when it is recognisably this data's header (it names a required column).
        present = (
            f"present: {', '.join(map(str, frame.columns))}"
            if len(missing) < len(required)
            else "none of the required columns is there (the header is not shown)"
        )
        raise DataSourceError(
            f"{path}: missing required column(s) {listed}; {present}. "
            f"Fix the export or the config's features/target/source.date_column/id_columns/dtypes"
        )
    dtypes = {c: t for c, t in source.dtypes.items() if c not in without}
    frame = _apply_dtypes(frame, dtypes, path, na_values=source.na_values)
    _check_numeric_features(frame, config, path)
    check_finite(frame, path)
    if source.date_column and source.date_column not in without:
        _check_not_future(frame, source.date_column, path)
    return frame


# --------------------------------------------------------------------------- column types


def _apply_dtypes(
    frame: pd.DataFrame, dtypes: dict[str, str], path: SourceFile, *, na_values: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Force the types declared in ``source.dtypes`` (CSV text columns are already read as text).

    ``float`` -> float64; ``int`` -> pandas' nullable Int64 whether or not this file has missing
    values, so the type (and the model's signature, ``long``) does not change from day to day; the
    pipeline's numeric branch imputes missing values with the median (scikit-learn reads pd.NA as
    NaN). ``bool`` -> nullable boolean (true/false, yes/no, y/n, t/f, 1/0 in any case); ``string``
    -> text. A value that does not fit is an error naming the column and the values.
    """
    if not dtypes:
        return frame
    frame = frame.copy()
    for column, dtype in dtypes.items():
        col = frame[column]
        declared = f"is declared {dtype} in source.dtypes"
        if dtype == "string":
            frame[column] = col.astype("str")  # missing values stay missing
        elif dtype == "bool":
            frame[column] = _as_bool(col, path, column, declared)
        else:
            numbers = _as_numbers(col, path, column, declared, na_values)
            if dtype == "int":
                fraction = numbers[numbers.notna() & (numbers % 1 != 0)]
                if len(fraction):
                    shown = _examples(fraction)
                    raise DataSourceError(
                        f"{path}: column {column!r} {declared}, but {len(fraction)} of {len(col)} value(s) are not "
                        f"whole numbers, e.g. {shown}; declare it float, or fix the export"
                    )
                numbers = numbers.astype("Int64")
            frame[column] = numbers
    return frame


def _as_numbers(col: pd.Series, path: SourceFile, column: str, what: str, na_values: tuple[str, ...]) -> pd.Series:
    """The column as float64; values that are not numbers (other than missing ones) are an error."""
    if pd.api.types.is_numeric_dtype(col):  # numbers and booleans: nothing to parse
        return col.astype("float64")
    numbers = pd.to_numeric(col, errors="coerce")
    bad = col[col.notna() & numbers.isna()]
    if len(bad):
        raise _not_numbers(path, column, what, bad, len(col), na_values)
    return numbers.astype("float64")


def _not_numbers(
    path: SourceFile, column: str, what: str, bad: pd.Series, total: int, na_values: tuple[str, ...]
) -> DataSourceError:
    """The error for values that are not numbers: which, how many, and the option that fixes them."""
    values = list(dict.fromkeys(bad.tolist()))
    blanks = [v for v in values if _is_blank(v)]
    # The YAML to paste, e.g. [" "], with what is already there: na_values match whole cells exactly.
    option = json.dumps(list(dict.fromkeys([*na_values, *blanks])))
    if len(blanks) == len(values):
        advice = (
            f"they are blank: read them as missing with source.na_values: {option} "
            f"(missing numbers are imputed with the median)"
        )
    elif blanks:
        advice = (
            f"read the blank ones as missing with source.na_values: {option}, and fix the export for the others "
            f"(or declare the column string in source.dtypes and make it a categorical feature)"
        )
    else:
        advice = "fix the export, or declare the column string in source.dtypes and make it a categorical feature"
    return DataSourceError(
        f"{path}: column {column!r} {what}, but {len(bad)} of {total} value(s) are not numbers, "
        f"e.g. {_examples(bad)}; {advice}"
    )


def _as_bool(col: pd.Series, path: SourceFile, column: str, what: str) -> pd.Series:
    """The column as pandas' nullable boolean; anything but true/false words, 1/0 or missing is an error."""
    if pd.api.types.is_bool_dtype(col):
        return col.astype("boolean")
    words = col.map(lambda v: v if pd.isna(v) else str(v).strip().lower())
    words = words.map(lambda w: "1" if w == "1.0" else "0" if w == "0.0" else w)  # a number column read as float
    known = words.isin(TRUE_WORDS | FALSE_WORDS)
    bad = col[col.notna() & ~known]
    if len(bad):
        raise DataSourceError(
            f"{path}: column {column!r} {what}, but {len(bad)} of {len(col)} value(s) are not true/false, "
            f"e.g. {_examples(bad)}; accepted (any case): true/false, yes/no, y/n, t/f, 1/0. Fix the export, "
            f"or declare the column string in source.dtypes"
        )
    return words.map(lambda w: pd.NA if pd.isna(w) else w in TRUE_WORDS).astype("boolean")


def _check_numeric_features(frame: pd.DataFrame, config: PipelineConfig, path: SourceFile) -> None:
    """A numeric feature read as text because of blank cells (" ") fails here: only source.na_values fixes
    that. Other words in a number column are left to the expectation suite (the batch is kept for
    inspection) and to training's own check."""
    for column in config.numeric_features:
        col = frame[column]
        if pd.api.types.is_numeric_dtype(col):
            continue
        if config.source.dtypes.get(column) == "string":
            raise DataSourceError(
                f"{path}: column {column!r} is a numeric feature but is declared string in source.dtypes; "
                f"declare it float (or int), or make the feature categorical"
            )
        bad = col[col.notna() & pd.to_numeric(col, errors="coerce").isna()]
        if len(bad) and all(_is_blank(v) for v in bad):
            raise _not_numbers(path, column, "is a numeric feature", bad, len(col), config.source.na_values)


def _is_blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def _examples(values: pd.Series) -> str:
    """Up to EXAMPLES distinct values, repr'd (so a blank ' ' shows)."""
    distinct = list(dict.fromkeys(values.tolist()))
    return ", ".join(repr(v) for v in distinct[:EXAMPLES]) + (", ..." if len(distinct) > EXAMPLES else "")


def check_finite(frame: pd.DataFrame, path: SourceFile) -> None:
    """No model can learn from an infinite number (pandas reads 'inf' and '-inf' as floats)."""
    problems = []
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_float_dtype(col):
            rows = col.index[col.isin([float("inf"), float("-inf")])]
            if len(rows):
                shown = ", ".join(str(i + 1) for i in rows[:MAX_LISTED]) + (", ..." if len(rows) > MAX_LISTED else "")
                problems.append(f"column {name!r} has {len(rows)} infinite value(s) (data row(s) {shown})")
    if problems:
        raise DataSourceError(
            f"{path}: {'; '.join(problems)}; numbers must be finite: fix the export (a division by zero upstream?)"
        )


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def parse_dates(values: pd.Series) -> pd.Series:
    """``pd.to_datetime(values, errors="coerce", format="ISO8601")``, the same values and dtype, parsing each distinct
    value once: a date column holds a few dozen days in a million rows (4x faster on the churn window's 1M rows)."""
    codes, uniques = pd.factorize(values)
    distinct = pd.Series(uniques, dtype=values.dtype if len(uniques) == 0 else None)
    parsed = pd.to_datetime(distinct, errors="coerce", format="ISO8601")
    return pd.Series(parsed.array.take(codes, allow_fill=True), index=values.index, name=values.name)


def _check_not_future(frame: pd.DataFrame, column: str, path: SourceFile) -> None:
    """Rows dated after tomorrow (UTC, one day of slack for time zones) come from a broken clock or format."""
    dates = parse_dates(frame[column])
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    latest_ok = _today() + dt.timedelta(days=1)
    future = dates[dates.dt.normalize() > pd.Timestamp(latest_ok)]
    if len(future):
        days = sorted({d.date().isoformat() for d in future})
        shown = ", ".join(days[:MAX_LISTED]) + (f" and {len(days) - MAX_LISTED} more" if len(days) > MAX_LISTED else "")
        raise DataSourceError(
            f"{path}: date column {column!r} has {len(future)} row(s) dated in the future (after {latest_ok}): "
            f"{shown}; fix the upstream clock or date format, or drop those rows"
        )
