"""Reading one source file: CSV (encoding, header, delimiter, ragged rows) and Parquet (magic bytes, duplicated
columns), refusing anything that is not this pipeline's data without quoting it."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops.core.data.checks import MAX_LISTED, check_frame, required_columns
from airflow_mlops.core.data.files import format_of
from airflow_mlops.core.errors import DataSourceError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.data.files import SourceFile

DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}  # what a one-column header may really be split by


def read_file(path: SourceFile, config: PipelineConfig, *, shown: str | None = None) -> pd.DataFrame:
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
            path,
            na_values=source.na_values,
            text_columns=text_columns,
            columns=required_columns(config),
            shown=shown,
        )
    else:
        frame = read_parquet(path, shown=shown)
    return check_frame(frame, config, path)


def read_csv(
    path: SourceFile,
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
            io.StringIO(text),
            low_memory=False,
            na_values=list(na_values) or None,
            dtype=dict.fromkeys(text_columns or (), "str") or None,
        )
    except (pd.errors.ParserError, ValueError, csv.Error) as exc:
        raise DataSourceError(f"{path}: corrupted CSV, cannot be parsed ({exc}); fix or re-export the file") from None
    if frame.empty:
        raise DataSourceError(f"{path}: file has a header but zero data rows; re-export it or remove it")
    return frame


def _recognise_csv(shown: str | SourceFile, text: str, columns: Collection[str]) -> None:
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


def _check_csv_shape(path: SourceFile, text: str) -> None:
    """Header sound, every row as wide as the header (pandas would silently pad short rows with NaN)."""
    check_csv_records(path, io.StringIO(text, newline=""), lambda: text.endswith(("\n", "\r")))


def check_csv_records(path: SourceFile, lines: Iterable[str], ends_with_newline: Callable[[], bool]) -> int:
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
        listed = ", ".join(f"line {line} has {n} ({'missing' if n < width else 'extra'} fields)" for line, n in ragged)
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


def _check_delimiter(path: SourceFile, header: list[str]) -> None:
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


def read_parquet(path: SourceFile, *, shown: str | None = None) -> pd.DataFrame:
    """The Parquet file as a frame; a file not named .parquet, or without the PAR1 magic bytes at both ends,
    is refused naming `shown` (else `path`) and quoting nothing of it."""
    if format_of(path, shown=shown) != "parquet":
        raise DataSourceError(f"{shown or path}: not a Parquet data file (a .csv file read as Parquet)")
    size = path.stat().st_size
    if isinstance(path, Path):
        with path.open("rb") as fh:
            head = fh.read(len(PARQUET_MAGIC))
            fh.seek(max(size - len(PARQUET_MAGIC), 0))
            tail = fh.read(len(PARQUET_MAGIC))
    else:  # a store's object, already in memory (core.data.objects)
        data = path.read_bytes()
        head, tail = data[: len(PARQUET_MAGIC)], data[-len(PARQUET_MAGIC) :]
    if size < 3 * len(PARQUET_MAGIC) or head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
        raise DataSourceError(
            f"{shown or path}: not a Parquet data file: corrupted Parquet or another format (it does not begin and "
            f"end with the Parquet magic bytes PAR1); nothing of it is shown. Re-export the file as Parquet"
        )
    try:  # a store's object: Arrow reads its bytes without a copy
        table = pq.read_table(path if isinstance(path, Path) else pa.BufferReader(path.read_bytes()))
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
