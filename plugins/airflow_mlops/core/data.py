"""Load the training window, freeze it as an immutable Parquet snapshot, split it.

The source is a CSV/Parquet file or a folder of daily files (``churn_YYYY-MM-DD.csv``).
``take_snapshot`` reads the window, checks the file is sound (size, encoding, ragged rows,
duplicated or missing columns) and writes ``<snapshot_root>/<pipeline>/<digest>.parquet``:
the content digest is the data version, so the same window always lands in the same file
and a retried task re-uses it. Column *types* are not coerced here: wrong types are the
expectation suite's business. Every problem is a ``DataSourceError`` naming the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops import settings
from airflow_mlops.core.errors import ConfigError, DataSourceError

if TYPE_CHECKING:
    from airflow_mlops.core.config import PipelineConfig

SUFFIXES = {"csv": ".csv", "parquet": ".parquet"}
DAILY_FILE = re.compile(r"_(\d{4}-\d{2}-\d{2})\.[A-Za-z]+$")
PIPELINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_LISTED = 5  # how many bad lines / values an error message quotes


# --------------------------------------------------------------------------- snapshot


def take_snapshot(
    config: PipelineConfig,
    *,
    source: str | None = None,
    window_end: dt.date | None = None,
    snapshot_root: Path | None = None,
    allowed_roots: list[Path] | None = None,
) -> dict:
    """Read the source window and write it once to ``<snapshot_root>/<pipeline>/<digest>.parquet``.

    ``source`` overrides ``config.source.path`` (relative paths are relative to the project
    root). With ``window_end``, rows dated after it are dropped and, with
    ``source.window_days``, rows on or before ``window_end - window_days`` too (by
    ``source.date_column``; daily files outside the window are not even read).
    Returns a JSON-able summary: uri, digest, rows, columns, source, files, window_start, window_end.
    """
    if not PIPELINE_NAME.fullmatch(config.name):
        raise ConfigError(
            f"{config.path}: pipeline: {config.name!r} cannot name a snapshot folder; "
            f"use letters, digits, '_', '-' and '.'"
        )
    path = _resolve_source(config.resolve(source or config.source.path), allowed_roots)
    if isinstance(window_end, dt.datetime):
        window_end = window_end.date()
    start = _window_start(window_end, config.source.window_days)

    files = _source_files(path, config.source.format, start, window_end)
    if allowed_roots:
        for file in files:  # a symlink inside an allowed folder may point elsewhere
            _resolve_source(file, allowed_roots)
    required = _required_columns(config)
    frames = [_read_file(f, _format_of(f, config.source.format), config.source.max_file_mb, required) for f in files]
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
    uri = _write_once(table, Path(snapshot_root or settings.snapshot_root()) / config.name, digest)
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


def split_frame(df: pd.DataFrame, config: PipelineConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train/holdout split, deterministic by ``config.seed``; stratified on the target for classifiers."""
    from sklearn.model_selection import train_test_split

    stratify = df[config.target] if config.is_classification and config.split.stratify else None
    train, holdout = train_test_split(df, test_size=config.split.test_size, random_state=config.seed, stratify=stratify)
    return train, holdout


# --------------------------------------------------------------------------- locating files


def _resolve_source(path: Path, allowed_roots: list[Path] | None) -> Path:
    """The real path (symlinks and ``..`` resolved); refused when outside every allowed root."""
    real = Path(os.path.realpath(path))
    if allowed_roots:
        roots = [Path(os.path.realpath(r)) for r in allowed_roots]
        if not any(real == r or real.is_relative_to(r) for r in roots):
            raise DataSourceError(
                f"{path}: source path is outside the allowed folders ({', '.join(map(str, roots))}); "
                f"it resolves to {real}. Move the data under an allowed folder or extend allowed_roots"
            )
    return real


def _window_start(window_end: dt.date | None, window_days: int | None) -> dt.date | None:
    """The first day inside the window, or None when the window has no lower bound."""
    if window_end is None or window_days is None:
        return None
    return window_end - dt.timedelta(days=window_days - 1)


def _span(start: dt.date | None, end: dt.date | None) -> str:
    return f"{start.isoformat() if start else '...'}..{end.isoformat() if end else '...'}"


def _source_files(path: Path, fmt: str, start: dt.date | None, end: dt.date | None) -> list[Path]:
    """The file itself, or the folder's files of this format inside the window (sorted by name)."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise DataSourceError(
            f"{path}: source not found (no such file or folder); check source.path in the pipeline config "
            f"or generate sample data with include/churn_stream.py"
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


def _format_of(path: Path, default: str) -> str:
    for fmt, suffix in SUFFIXES.items():
        if path.suffix.lower() == suffix:
            return fmt
    return default


def _required_columns(config: PipelineConfig) -> list[str]:
    cols = [*config.feature_names, config.target]
    if config.source.date_column and config.source.date_column not in cols:
        cols.append(config.source.date_column)
    return cols


# --------------------------------------------------------------------------- reading one file


def _read_file(path: Path, fmt: str, max_mb: float, required: list[str]) -> pd.DataFrame:
    """One source file as a frame, after size, shape and column checks."""
    size = path.stat().st_size
    if size > max_mb * 1024 * 1024:
        raise DataSourceError(
            f"{path}: file is too large ({size / 1024 / 1024:.1f} MB > source.max_file_mb {max_mb:g}); "
            f"split it into daily files or raise source.max_file_mb"
        )
    if size == 0:
        raise DataSourceError(f"{path}: file is empty (0 bytes); re-export it or remove it from the source")
    frame = _read_csv(path) if fmt == "csv" else _read_parquet(path)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataSourceError(
            f"{path}: missing required column(s) {', '.join(map(repr, missing))}; present: "
            f"{', '.join(map(str, frame.columns))}. Fix the export or the config's features/target/date_column"
        )
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
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
    _check_csv_shape(path, text)
    try:
        frame = pd.read_csv(io.StringIO(text), low_memory=False)
    except (pd.errors.ParserError, ValueError, csv.Error) as exc:
        raise DataSourceError(f"{path}: corrupted CSV, cannot be parsed ({exc}); fix or re-export the file") from None
    if frame.empty:
        raise DataSourceError(f"{path}: file has a header but zero data rows; re-export it or remove it")
    return frame


def _check_csv_shape(path: Path, text: str) -> None:
    """Header sound, every row as wide as the header (pandas would silently pad short rows with NaN)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    ragged: list[tuple[int, int]] = []
    n_rows = 0
    first_line = 1  # where the record being read starts (a quoted field may span lines)
    try:
        header = next(reader)
        first_line = reader.line_num + 1
        for row in reader:
            if row:  # blank lines are skipped, by pandas too
                n_rows += 1
                if len(row) != len(header):
                    ragged.append((first_line, len(row)))
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
            f"line {line} has {n} ({'missing' if n < width else 'extra'} fields)" for line, n in ragged[:MAX_LISTED]
        )
        more = f" and {len(ragged) - MAX_LISTED} more" if len(ragged) > MAX_LISTED else ""
        raise DataSourceError(
            f"{path}: {len(ragged)} row(s) with missing or extra fields (the header has {width}): "
            f"{listed}{more}; fix or drop those rows upstream (quote fields that contain commas)"
        )


def _read_parquet(path: Path) -> pd.DataFrame:
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


def _write_once(table: pa.Table, folder: Path, digest: str) -> Path:
    """Write atomically to ``<folder>/<hex>.parquet`` unless it exists (same digest, same content)."""
    target = folder / f"{digest.split(':', 1)[1]}.parquet"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
