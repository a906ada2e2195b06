"""The snapshot: read the source window, combine the daily files, filter by date and write it once as
``<snapshot_root>/<pipeline>/<digest>.parquet`` (the content digest is the data version); read it back."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops import settings
from airflow_mlops.core import fsutil
from airflow_mlops.core.data.checks import MAX_LISTED, parse_dates
from airflow_mlops.core.data.files import source_files, span, window_start
from airflow_mlops.core.data.objects import read_object_source
from airflow_mlops.core.data.readers import read_file
from airflow_mlops.core.data.sql import SqlDatabase, read_sql_window
from airflow_mlops.core.errors import ConfigError, DataSourceError
from airflow_mlops.core.paths import ObjectURI, is_object_uri, resolve_source, source_path, source_roots

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.data.files import SourceFile
    from airflow_mlops.core.payloads import SnapshotSummary

PIPELINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


# --------------------------------------------------------------------------- snapshot


def take_snapshot(
    config: PipelineConfig,
    *,
    source: str | None = None,
    window_end: dt.date | None = None,
    snapshot_root: Path | None = None,
    allowed_roots: list[Path] | None = None,
    writer: str | None = None,
    database: SqlDatabase | None = None,
    open_store: Callable[[ObjectURI], Any] | None = None,
    allowed_prefixes: list[str] | None = None,
) -> SnapshotSummary:
    """Read the source window and write it once to ``<snapshot_root>/<pipeline>/<digest>.parquet``.

    ``source`` overrides ``config.source.path`` (relative paths are relative to the project
    root). It must resolve (symlinks and ``..`` followed) inside ``allowed_roots``, by default
    ``paths.source_roots(config)``; nothing is read before that check. With ``window_end``, rows
    dated after it are dropped and, with ``source.window_days``, rows on or before
    ``window_end - window_days`` too (by ``source.date_column``; daily files outside the window
    are not even read).
    An object-store source (``s3://CONN_ID@bucket/prefix/``) must lie under ``allowed_prefixes`` (default: the URI
    entries of ``source.allowed_roots`` and $AIRFLOW_MLOPS_DATA_ROOTS) and is read through ``open_store`` (the
    snapshot task's: the filesystem of the URI's Airflow connection; core.data.objects).
    A SQL source (``source.kind: sql``, unless ``source`` names a file) is read from ``database`` (the snapshot
    task's: the Airflow connection ``source.conn_id``; core.data.sql).
    Returns a JSON-able summary: uri, digest, rows, columns, source, files, window_start, window_end (and for SQL,
    ``sql``: the connection id, the query and its window).
    """
    if not PIPELINE_NAME.fullmatch(config.name):
        raise ConfigError(
            f"{config.path}: pipeline: {config.name!r} cannot name a snapshot folder; "
            f"use letters, digits, '_', '-' and '.'"
        )
    if source is None and config.source.kind == "sql":  # a run's `source` param names a file instead
        end = window_end.date() if isinstance(window_end, dt.datetime) else window_end
        root = Path(snapshot_root or settings.snapshot_root())
        return _sql_snapshot(
            config, database, window_start(end, config.source.window_days), end, root / config.name, writer
        )
    given = str(source or config.source.path)  # refused files are named as the user named them
    if isinstance(window_end, dt.datetime):
        window_end = window_end.date()
    start = window_start(window_end, config.source.window_days)

    path: Path | ObjectURI
    files: Sequence[SourceFile]
    if is_object_uri(given):
        path, files, frames = read_object_source(
            config, given, start, window_end, open_store=open_store, allowed_prefixes=allowed_prefixes
        )
    else:
        roots = allowed_roots or source_roots(config)
        path = resolve_source(source_path(config, given), roots)
        files = source_files(path, config.source.format, start, window_end, given=given, config_file=config.path)
        for file in files:  # a symlink inside an allowed folder may point elsewhere
            resolve_source(file, roots)
        frames = [read_file(f, config, shown=given if f == path else str(Path(given) / f.name)) for f in files]
    _check_same_columns(frames, files)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    n_read = len(frame)
    if window_end is not None and config.source.date_column:
        frame = _filter_window(frame, config.source.date_column, start, window_end, path, files)
    if frame.empty:
        raise DataSourceError(
            f"{path}: no rows with {config.source.date_column} in the window {span(start, window_end)} "
            f"({n_read} rows read from {len(files)} file(s)); check window_end and source.window_days, "
            f"or that the upstream export ran for these days"
        )
    table, frame = _as_table(frame, path)
    with ThreadPoolExecutor(max_workers=1) as pool:  # Arrow encodes the Parquet file while pandas hashes the rows
        encoded = pool.submit(_parquet_bytes, table)
        digest = content_digest(frame)
        folder = Path(snapshot_root or settings.snapshot_root()) / config.name
        uri = _write_once(encoded.result(), folder, digest, writer)
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


def _sql_snapshot(
    config: PipelineConfig,
    database: SqlDatabase | None,
    start: dt.date | None,
    end: dt.date | None,
    folder: Path,
    writer: str | None,
) -> SnapshotSummary:
    """A SQL source's window (core.data.sql), written as a file source's is, its digest taken whatever the rows' order
    (the same rows, the same data version, the same file: the first one written); the summary records the connection
    id, the query and its window (``sql``), never a credential."""
    if database is None:
        raise DataSourceError(
            f"{config.path}: source.kind sql: the snapshot needs the database of connection {config.source.conn_id!r} "
            f"(the snapshot task resolves it through Airflow; without Airflow pass database=SqlDatabase(...))"
        )
    window = read_sql_window(config, database, start, end)
    with ThreadPoolExecutor(max_workers=1) as pool:  # Arrow encodes the Parquet file while pandas hashes the rows
        encoded = pool.submit(_parquet_bytes, window.table)
        digest = content_digest(window.frame, ordered=False)
        uri = _write_once(encoded.result(), folder, digest, writer)
    return {
        "uri": str(uri),
        "digest": digest,
        "rows": int(window.table.num_rows),
        "columns": [str(c) for c in window.table.column_names],
        "source": f"SQL connection {database.conn_id!r}",
        "files": 0,
        "window_start": start.isoformat() if start else None,
        "window_end": end.isoformat() if end else None,
        "sql": window.origin(database.conn_id),
    }


def _parquet_bytes(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue()


def content_digest(df: pd.DataFrame, *, ordered: bool = True) -> str:
    """``sha256:<hex>`` of column names, dtypes and values in row order (not of any file's bytes).

    ``ordered=False`` (a SQL source: a query's rows come in no particular order) digests the rows whatever their
    order: the same rows, the same digest; it is marked so that it never equals an ordered digest."""
    h = hashlib.sha256()
    h.update(f"{len(df)} rows\n".encode() if ordered else f"{len(df)} rows, any order\n".encode())
    for name, dtype in df.dtypes.items():
        h.update(f"{name!s}\x1f{dtype!s}\x1e".encode())
    if len(df.columns) and len(df):
        rows = _row_hashes(df)
        h.update((rows if ordered else np.sort(rows)).tobytes())
    return f"sha256:{h.hexdigest()}"


def _row_hashes(df: pd.DataFrame) -> np.ndarray:
    """``pd.util.hash_pandas_object(df, index=False)``, bit for bit, column by column: a column of distinct values
    (an id) with no missing value is hashed value by value rather than through its categories, which gives the same
    hashes (pandas hashes each category the same way) in half the time; the columns are combined as pandas does."""
    mult, out = np.uint64(1000003), np.full(len(df), 0x345678, dtype=np.uint64)
    n = len(df.columns)
    with np.errstate(over="ignore"):
        for i, (_, col) in enumerate(df.items()):
            head = col.iloc[:1000]
            categorize = bool(col.hasnans) or head.nunique(dropna=False) * 2 <= len(head)
            out ^= pd.util.hash_pandas_object(col, index=False, categorize=categorize).to_numpy()
            out *= mult
            mult += np.uint64(82520 + 2 * (n - i))
    return out + np.uint64(97531)


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


# --------------------------------------------------------------------------- combining, filtering, writing


def _check_same_columns(frames: list[pd.DataFrame], files: Sequence[SourceFile]) -> None:
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
    frame: pd.DataFrame,
    column: str,
    start: dt.date | None,
    end: dt.date,
    source: Path | ObjectURI,
    files: Sequence[SourceFile],
) -> pd.DataFrame:
    """Rows with start <= date <= end; unreadable dates are an error (their window is unknown)."""
    raw = frame[column]
    dates = parse_dates(raw)
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


def _as_table(frame: pd.DataFrame, source: Path | ObjectURI) -> tuple[pa.Table, pd.DataFrame]:
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


def _write_once(table: pa.Table | pa.Buffer, folder: Path, digest: str, writer: str | None = None) -> Path:
    """Write atomically to ``<folder>/<hex>.parquet`` unless it exists (same digest, same content); `writer` (the
    task instance) lets its retry remove the temp file a killed try left. `table` may be its Parquet bytes."""
    target = folder / f"{digest.split(':', 1)[1]}.parquet"
    if target.exists():
        return target
    if isinstance(table, pa.Buffer):
        return fsutil.write_atomically(target, lambda fh: fh.write(memoryview(table)), writer=writer)
    return fsutil.write_atomically(target, lambda fh: pq.write_table(table, fh), writer=writer)
