"""Load the training window and freeze it as an immutable Parquet snapshot (core.rows splits it).

The source is a CSV/Parquet file or a folder of daily files (``churn_YYYY-MM-DD.csv``).
``take_snapshot`` refuses a source outside the allowed data folders (or inside the state folder, see
core.paths) and any file that is not a CSV or Parquet data file, by its name (.csv, .parquet) and by its
content (Parquet's PAR1 magic bytes; a CSV header naming the config's columns): nothing of a refused
file is quoted. Then it reads the window, checks the file is sound (size, encoding, delimiter, ragged rows, duplicated or missing columns, infinite numbers,
dates in the future) and writes ``<snapshot_root>/<pipeline>/<digest>.parquet``:
the content digest is the data version, so the same window always lands in the same file
and a retried task re-uses it. Every problem is a ``DataSourceError`` naming the file.

What real exports need (``source``): ``na_values`` are extra CSV cells read as missing (exact
matches, on top of pandas' defaults: ``" "`` matches a single space, not two); ``dtypes`` force a column's
type (see ``_apply_dtypes``); ``id_columns`` must be present and are kept (never features).
Otherwise types are not coerced: a number column holding words is the expectation suite's
business (the batch is kept for inspection), except blanks in a numeric feature, which only
``na_values`` can fix and so fail here, naming them.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops import settings
from airflow_mlops.core import fsutil
from airflow_mlops.core.errors import ConfigError, DataSourceError
from airflow_mlops.core.paths import resolve_source, source_roots

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable

    from airflow_mlops.core.config import PipelineConfig

SUFFIXES = {"csv": ".csv", "parquet": ".parquet"}
DAILY_FILE = re.compile(r"_(\d{4}-\d{2}-\d{2})\.[A-Za-z]+$")
PIPELINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_LISTED = 5  # how many bad lines / values an error message quotes
EXAMPLES = 3  # how many values that are not numbers (or not true/false) an error message quotes
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})  # what a `bool` column reads as True (any case) ...
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})  # ... and as False
DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}  # what a one-column header may really be split by


# --------------------------------------------------------------------------- snapshot


def take_snapshot(
    config: PipelineConfig,
    *,
    source: str | None = None,
    window_end: dt.date | None = None,
    snapshot_root: Path | None = None,
    allowed_roots: list[Path] | None = None,
    writer: str | None = None,
) -> dict:
    """Read the source window and write it once to ``<snapshot_root>/<pipeline>/<digest>.parquet``.

    ``source`` overrides ``config.source.path`` (relative paths are relative to the project
    root). It must resolve (symlinks and ``..`` followed) inside ``allowed_roots``, by default
    ``paths.source_roots(config)``; nothing is read before that check. With ``window_end``, rows
    dated after it are dropped and, with ``source.window_days``, rows on or before
    ``window_end - window_days`` too (by ``source.date_column``; daily files outside the window
    are not even read).
    Returns a JSON-able summary: uri, digest, rows, columns, source, files, window_start, window_end.
    """
    if not PIPELINE_NAME.fullmatch(config.name):
        raise ConfigError(
            f"{config.path}: pipeline: {config.name!r} cannot name a snapshot folder; "
            f"use letters, digits, '_', '-' and '.'"
        )
    roots = allowed_roots or source_roots(config)
    given = str(source or config.source.path)  # refused files are named as the user named them
    path = resolve_source(config.resolve(given), roots)
    if isinstance(window_end, dt.datetime):
        window_end = window_end.date()
    start = _window_start(window_end, config.source.window_days)

    files = _source_files(path, config.source.format, start, window_end, given=given, config_file=config.path)
    for file in files:  # a symlink inside an allowed folder may point elsewhere
        resolve_source(file, roots)
    frames = [_read_file(f, config, shown=given if f == path else str(Path(given) / f.name)) for f in files]
    _check_same_columns(frames, files)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    n_read = len(frame)
    if window_end is not None and config.source.date_column:
        frame = _filter_window(frame, config.source.date_column, start, window_end, path, files)
    if frame.empty:
        raise DataSourceError(
            f"{path}: no rows with {config.source.date_column} in the window {_span(start, window_end)} "
            f"({n_read} rows read from {len(files)} file(s)); check window_end and source.window_days, "
            f"or that the upstream export ran for these days"
        )
    table, frame = _as_table(frame, path)
    digest = content_digest(frame)
    uri = _write_once(table, Path(snapshot_root or settings.snapshot_root()) / config.name, digest, writer)
    return {
        "uri": str(uri),
        "digest": digest,
        "rows": int(len(frame)),
        "columns": [str(c) for c in frame.columns],
        "source": str(path),
        "files": len(files),
        "window_start": start.isoformat() if start else None,
        "window_end": window_end.isoformat() if window_end else None,
    }


def content_digest(df: pd.DataFrame) -> str:
    """``sha256:<hex>`` of column names, dtypes and values in row order (not of any file's bytes)."""
    h = hashlib.sha256()
    h.update(f"{len(df)} rows\n".encode())
    for name, dtype in df.dtypes.items():
        h.update(f"{name!s}\x1f{dtype!s}\x1e".encode())
    if len(df.columns) and len(df):
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return f"sha256:{h.hexdigest()}"


def read_snapshot(uri: str | Path) -> pd.DataFrame:
    """Load a snapshot written by ``take_snapshot`` (a path or a ``file://`` URI)."""
    text = str(uri)
    path = Path(unquote(urlparse(text).path)) if text.startswith("file:") else Path(text)
    if not path.is_file():
        raise DataSourceError(
            f"{path}: snapshot not found; it is written by the snapshot task: re-run it, "
            f"or check that workers share the snapshot folder ({settings.HOME_ENV})"
        )
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(
            f"{path}: snapshot is not a readable Parquet file ({exc}); re-run the snapshot task"
        ) from None


# --------------------------------------------------------------------------- locating files


def _window_start(window_end: dt.date | None, window_days: int | None) -> dt.date | None:
    """The first day inside the window, or None when the window has no lower bound."""
    if window_end is None or window_days is None:
        return None
    return window_end - dt.timedelta(days=window_days - 1)


def _span(start: dt.date | None, end: dt.date | None) -> str:
    return f"{start.isoformat() if start else '...'}..{end.isoformat() if end else '...'}"


def _source_files(
    path: Path,
    fmt: str,
    start: dt.date | None,
    end: dt.date | None,
    *,
    given: str | None = None,
    config_file: str | None = None,
) -> list[Path]:
    """The file itself (a .csv or .parquet file: anything else is refused unread, named as `given`), or the
    folder's files of this format inside the window (sorted by name)."""
    if path.is_file():
        format_of(path, shown=given)
        return [path]
    if not path.exists():
        raise DataSourceError(
            f"{path}: source not found (no such file or folder); check source.path in "
            f"{config_file or 'the pipeline config'}, or that the upstream export ran"
        )
    if not path.is_dir():
        raise DataSourceError(f"{path}: source is neither a regular file nor a folder")
    suffix = SUFFIXES[fmt]
    found = sorted(p for p in path.iterdir() if p.suffix == suffix and p.is_file() and not p.name.startswith("."))
    if not found:
        raise DataSourceError(f"{path}: folder has no {suffix} files; check source.path and source.format ({fmt})")
    inside = [p for p in found if _in_window(_file_day(p), start, end)]
    if not inside:
        days = [d for d in map(_file_day, found) if d]
        have = f" from {min(days)} to {max(days)}" if days else ""
        raise DataSourceError(
            f"{path}: no {suffix} files in the window {_span(start, end)} (found {len(found)} file(s){have}); "
            f"check window_end and source.window_days, or that the upstream export ran for these days"
        )
    return inside


def _file_day(path: Path) -> dt.date | None:
    """The day in a daily file's name (``*_YYYY-MM-DD.csv``), else None."""
    match = DAILY_FILE.search(path.name)
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


def _in_window(day: dt.date | None, start: dt.date | None, end: dt.date | None) -> bool:
    """Undated files are always read (their rows are filtered by the date column)."""
    if day is None:
        return True
    return (start is None or day >= start) and (end is None or day <= end)


def format_of(path: Path, *, shown: str | Path | None = None) -> str:
    """``csv`` or ``parquet`` by the file's name; a DataSourceError (naming `shown`, else `path`, and quoting
    nothing of the file) for any other name: a source is a data file, never a config, key or secrets file."""
    for fmt, suffix in SUFFIXES.items():
        if path.suffix.lower() == suffix:
            return fmt
    ends = f"its name ends in {path.suffix!r}" if path.suffix else "its name has no extension"
    raise DataSourceError(
        f"{shown or path}: not a CSV/Parquet data file ({ends}, not .csv or .parquet); it was not read. "
        f"Pass a CSV or Parquet export of the data (or a folder of them)"
    )


def _required_columns(config: PipelineConfig) -> dict[str, str]:
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


# --------------------------------------------------------------------------- reading one file


def _read_file(path: Path, config: PipelineConfig, *, shown: str | None = None) -> pd.DataFrame:
    """One source file as a frame, after format (name and content: a refused file is named `shown`), size,
    shape, column, type, number and date checks."""
    fmt = format_of(path, shown=shown)
    source = config.source
    max_mb = source.max_file_mb
    size = path.stat().st_size
    if size > max_mb * 1024 * 1024:
        raise DataSourceError(
            f"{path}: file is too large ({size / 1024 / 1024:.1f} MB > source.max_file_mb {max_mb:g}); "
            f"split it into daily files or raise source.max_file_mb"
        )
    if size == 0:
        raise DataSourceError(f"{path}: file is empty (0 bytes); re-export it or remove it from the source")
    if fmt == "csv":
        text_columns = [c for c, dtype in source.dtypes.items() if dtype == "string"]
        frame = read_csv(
            path, na_values=source.na_values, text_columns=text_columns, columns=_required_columns(config),
            shown=shown,
        )
    else:
        frame = read_parquet(path, shown=shown)
    return check_frame(frame, config, path)


def check_frame(
    frame: pd.DataFrame, config: PipelineConfig, path: Path, *, without: Collection[str] = ()
) -> pd.DataFrame:
    """What every frame read from a source passes: the columns the config names are there (but `without`,
    e.g. the target of an unlabeled batch), declared types, no blanks in numeric features, finite numbers,
    no dates in the future. Returns the frame with ``source.dtypes`` applied; each problem is a DataSourceError."""
    source = config.source
    required = {c: key for c, key in _required_columns(config).items() if c not in without}
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
    frame: pd.DataFrame, dtypes: dict[str, str], path: Path, *, na_values: tuple[str, ...] = ()
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


def _as_numbers(col: pd.Series, path: Path, column: str, what: str, na_values: tuple[str, ...]) -> pd.Series:
    """The column as float64; values that are not numbers (other than missing ones) are an error."""
    if pd.api.types.is_numeric_dtype(col):  # numbers and booleans: nothing to parse
        return col.astype("float64")
    numbers = pd.to_numeric(col, errors="coerce")
    bad = col[col.notna() & numbers.isna()]
    if len(bad):
        raise _not_numbers(path, column, what, bad, len(col), na_values)
    return numbers.astype("float64")


def _not_numbers(
    path: Path, column: str, what: str, bad: pd.Series, total: int, na_values: tuple[str, ...]
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


def _as_bool(col: pd.Series, path: Path, column: str, what: str) -> pd.Series:
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


def _check_numeric_features(frame: pd.DataFrame, config: PipelineConfig, path: Path) -> None:
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


def check_finite(frame: pd.DataFrame, path: Path) -> None:
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


def _check_not_future(frame: pd.DataFrame, column: str, path: Path) -> None:
    """Rows dated after tomorrow (UTC, one day of slack for time zones) come from a broken clock or format."""
    dates = pd.to_datetime(frame[column], errors="coerce", format="ISO8601")
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


def read_csv(
    path: Path,
    *,
    na_values: tuple[str, ...] = (),
    text_columns: list[str] | None = None,
    columns: Collection[str] | None = None,
    shown: str | None = None,
) -> pd.DataFrame:
    """The CSV as a frame: `na_values` read as missing on top of pandas' defaults, `text_columns` kept as
    text (a zip code keeps its leading zeros). A file not named .csv, or (given the data's `columns`) whose
    header names none of them, is refused naming `shown` (else `path`) and quoting nothing of it."""
    if format_of(path, shown=shown) != "csv":
        raise DataSourceError(f"{shown or path}: not a CSV data file (a .parquet file read as CSV)")
    data = path.read_bytes()
    if b"\x00" in data:
        raise DataSourceError(f"{path}: corrupted CSV: binary content (NUL bytes); re-export the file as UTF-8 text")
    try:
        text = data.decode("utf-8-sig")  # also strips a UTF-8 byte-order mark
    except UnicodeDecodeError as exc:
        raise DataSourceError(
            f"{path}: corrupted CSV: not UTF-8 text (byte {exc.start}: {exc.reason}); re-export the file as UTF-8"
        ) from None
    if not text.strip():
        raise DataSourceError(f"{path}: file is empty (only whitespace); re-export it or remove it from the source")
    if columns is not None:
        _recognise_csv(shown or path, text, columns)
    _check_csv_shape(path, text)
    try:
        frame = pd.read_csv(
            io.StringIO(text), low_memory=False, na_values=list(na_values) or None,
            dtype=dict.fromkeys(text_columns or (), "str") or None,
        )
    except (pd.errors.ParserError, ValueError, csv.Error) as exc:
        raise DataSourceError(f"{path}: corrupted CSV, cannot be parsed ({exc}); fix or re-export the file") from None
    if frame.empty:
        raise DataSourceError(f"{path}: file has a header but zero data rows; re-export it or remove it")
    return frame


def _recognise_csv(shown: str | Path, text: str, columns: Collection[str]) -> None:
    """A CSV data file of this pipeline: its first record names at least one of `columns` (comma-separated,
    or another delimiter, which `_check_delimiter` then names). Anything else is refused quoting nothing."""
    first = next((line for line in io.StringIO(text, newline="") if line.strip()), "")
    wanted = {str(c) for c in columns}
    for delimiter in (",", *DELIMITERS):
        try:
            fields = next(csv.reader([first], delimiter=delimiter), [])
        except csv.Error:
            fields = []
        if wanted.intersection(f.strip() for f in fields):
            return
    named = sorted(wanted)
    listed = ", ".join(named[:MAX_LISTED]) + (f" and {len(named) - MAX_LISTED} more" if len(named) > MAX_LISTED else "")
    raise DataSourceError(
        f"{shown}: not a CSV data file: its first line is not a header naming any of the columns the config "
        f"declares ({listed}); nothing of the file is shown. Pass this pipeline's CSV export (a header row, then "
        f"one row per record), or check source.path and the config's features/target"
    )


def _check_csv_shape(path: Path, text: str) -> None:
    """Header sound, every row as wide as the header (pandas would silently pad short rows with NaN)."""
    check_csv_records(path, io.StringIO(text, newline=""), lambda: text.endswith(("\n", "\r")))


def check_csv_records(path: Path, lines: Iterable[str], ends_with_newline: Callable[[], bool]) -> int:
    """`_check_csv_shape` over a stream of lines (read with ``newline=""``), in constant memory; returns the
    number of data rows. `ends_with_newline()` is asked at the end: whether the file's last byte ends a line.
    A file not named .csv is refused unread."""
    format_of(path)
    reader = csv.reader(lines, strict=True)
    ragged: list[tuple[int, int]] = []  # the first MAX_LISTED (line, fields) that do not fit the header ...
    n_ragged, last_ragged = 0, (0, 0)  # ... how many, and the last one (a truncated file's)
    n_rows = 0
    first_line = last_record = 1  # where the record being read starts (a quoted field may span lines)
    try:
        header = next(reader)
        _check_delimiter(path, header)
        first_line = reader.line_num + 1
        for row in reader:
            if row:  # blank lines are skipped, by pandas too
                n_rows += 1
                last_record = first_line
                if len(row) != len(header):
                    n_ragged, last_ragged = n_ragged + 1, (first_line, len(row))
                    if len(ragged) < MAX_LISTED:
                        ragged.append(last_ragged)
            first_line = reader.line_num + 1
    except csv.Error as exc:
        raise DataSourceError(
            f"{path}: corrupted CSV in the record starting at line {first_line} ({exc}; an unclosed or stray "
            f"quote?); fix or re-export the file"
        ) from None
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise DataSourceError(
            f"{path}: duplicated column name(s) in the header: {', '.join(map(repr, dupes))}; "
            f"every column needs a unique name, fix the export"
        )
    if n_rows == 0:
        raise DataSourceError(f"{path}: file has a header but zero data rows; re-export it or remove it")
    if ragged:
        width = len(header)
        listed = ", ".join(
            f"line {line} has {n} ({'missing' if n < width else 'extra'} fields)" for line, n in ragged
        )
        more = f" and {n_ragged - MAX_LISTED} more" if n_ragged > MAX_LISTED else ""
        cut = last_ragged[0] == last_record and last_ragged[1] < width and not ends_with_newline()
        advice = (
            "the file looks truncated (its last line is incomplete): re-export or re-copy it"
            if cut
            else "fix or drop those rows upstream (quote fields that contain commas)"
        )
        raise DataSourceError(
            f"{path}: {n_ragged} row(s) with missing or extra fields (the header has {width}): {listed}{more}; {advice}"
        )
    return n_rows


def _check_delimiter(path: Path, header: list[str]) -> None:
    """A one-column header that splits on another delimiter: say which, not "missing columns"."""
    if len(header) != 1:
        return
    counts = {sep: header[0].count(sep) for sep in DELIMITERS}
    sep = max(counts, key=lambda candidate: counts[candidate])
    if counts[sep]:
        raise DataSourceError(  # the header itself is not quoted: the file may not be data at all
            f"{path}: the header is a single column: the file looks {DELIMITERS[sep]}-delimited "
            f"({counts[sep] + 1} fields split on {sep!r}); CSV sources must be comma-separated: re-export with "
            f"delimiter ','"
        )


PARQUET_MAGIC = b"PAR1"  # a Parquet file begins and ends with these 4 bytes


def read_parquet(path: Path, *, shown: str | None = None) -> pd.DataFrame:
    """The Parquet file as a frame; a file not named .parquet, or without the PAR1 magic bytes at both ends,
    is refused naming `shown` (else `path`) and quoting nothing of it."""
    if format_of(path, shown=shown) != "parquet":
        raise DataSourceError(f"{shown or path}: not a Parquet data file (a .csv file read as Parquet)")
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(len(PARQUET_MAGIC))
        fh.seek(max(size - len(PARQUET_MAGIC), 0))
        tail = fh.read(len(PARQUET_MAGIC))
    if size < 3 * len(PARQUET_MAGIC) or head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
        raise DataSourceError(
            f"{shown or path}: not a Parquet data file: corrupted Parquet or another format (it does not begin and "
            f"end with the Parquet magic bytes PAR1); nothing of it is shown. Re-export the file as Parquet"
        )
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(f"{path}: corrupted Parquet, cannot be read ({exc}); re-export the file") from None
    names = table.column_names
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise DataSourceError(
            f"{path}: duplicated column name(s): {', '.join(map(repr, dupes))}; "
            f"every column needs a unique name, fix the export"
        )
    if table.num_rows == 0:
        raise DataSourceError(f"{path}: file has zero rows; re-export it or remove it from the source")
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError) as exc:
        raise DataSourceError(f"{path}: Parquet data cannot be converted ({exc}); re-export the file") from None


# --------------------------------------------------------------------------- combining, filtering, writing


def _check_same_columns(frames: list[pd.DataFrame], files: list[Path]) -> None:
    """Daily files must share one set of columns: concatenating would silently fill the gaps with NaN."""
    first = set(frames[0].columns)
    for frame, file in zip(frames[1:], files[1:], strict=True):
        cols = set(frame.columns)
        if cols != first:
            lacks = ", ".join(map(repr, sorted(first - cols, key=str))) or "-"
            adds = ", ".join(map(repr, sorted(cols - first, key=str))) or "-"
            raise DataSourceError(
                f"{file}: columns differ from {files[0].name} (missing: {lacks}; extra: {adds}); "
                f"all files of a source must share the same columns"
            )


def _filter_window(
    frame: pd.DataFrame, column: str, start: dt.date | None, end: dt.date, source: Path, files: list[Path]
) -> pd.DataFrame:
    """Rows with start <= date <= end; unreadable dates are an error (their window is unknown)."""
    raw = frame[column]
    dates = pd.to_datetime(raw, errors="coerce", format="ISO8601")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    bad = dates.isna()
    if bad.any():
        examples = ", ".join(repr(v) for v in raw[bad].head(MAX_LISTED).tolist())
        where = files[0] if len(files) == 1 else source
        raise DataSourceError(
            f"{where}: date column {column!r} has {int(bad.sum())} missing or unreadable value(s) "
            f"(e.g. {examples}); dates must be ISO (YYYY-MM-DD) so rows can be placed in the window"
        )
    days = dates.dt.normalize()
    keep = days <= pd.Timestamp(end)
    if start is not None:
        keep &= days >= pd.Timestamp(start)
    return frame.loc[keep].reset_index(drop=True)


def _as_table(frame: pd.DataFrame, source: Path) -> tuple[pa.Table, pd.DataFrame]:
    """The Arrow table to write, and the frame exactly as it reads back (so digests match the file)."""
    frame = frame.copy()
    for name in frame.columns:
        col = frame[name]
        # A column numeric in one daily file and text in another: keep it as text (validation flags it).
        if col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) in ("mixed", "mixed-integer"):
            frame[name] = col.map(lambda v: v if pd.isna(v) else str(v)).astype("str")
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise DataSourceError(f"{source}: the data cannot be stored as Parquet ({exc})") from None
    return table, table.to_pandas()


def _write_once(table: pa.Table, folder: Path, digest: str, writer: str | None = None) -> Path:
    """Write atomically to ``<folder>/<hex>.parquet`` unless it exists (same digest, same content); `writer` (the
    task instance) lets its retry remove the temp file a killed try left."""
    target = folder / f"{digest.split(':', 1)[1]}.parquet"
    if target.exists():
        return target
    return fsutil.write_atomically(target, lambda fh: pq.write_table(table, fh), writer=writer)
