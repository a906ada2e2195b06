"""The day's file of records to score: where it is, its digest, and its rows in chunks of bounded size.

``batch_file`` finds ``<scoring.source>/<pipeline>_YYYY-MM-DD.csv`` (or ``.parquet``) inside the allowed
folders; ``scan`` streams the file once for its ``sha256:`` digest (of the bytes: the same file, the same
digest) and, for a CSV, the checks ``data.read_csv`` makes on a whole file (UTF-8, NUL bytes, header,
delimiter, ragged or truncated rows), in constant memory; ``read_chunks`` yields frames of
``scoring.chunk_rows`` rows read as the snapshot reads them; ``UniqueIds`` checks ids across chunks.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops.core.data import EXAMPLES, SUFFIXES, check_csv_records
from airflow_mlops.core.errors import ConfigError, DataSourceError
from airflow_mlops.core.paths import check_path_text, resolve_source, source_roots

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from airflow_mlops.core.config import PipelineConfig

_HASH_BLOCK = 1 << 20


def batch_file(
    config: PipelineConfig, day: dt.date, *, source: str | None = None, allowed_roots: list[Path] | None = None
) -> Path:
    """The file holding `day`'s records: `source` (a file, or a folder of daily files), else
    ``<scoring.source>/<pipeline>_YYYY-MM-DD.csv`` (or ``.parquet``), resolved inside the allowed folders."""
    roots = allowed_roots or source_roots(config)
    where = source or config.scoring.source
    if not where:
        raise ConfigError(
            f"{config.path}: scoring.source: not set, so there is no batch to score; set it to the folder of daily "
            f"files ({config.name}_YYYY-MM-DD.csv), or pass source"
        )
    check_path_text(str(where), "scoring source")
    base = resolve_source(config.resolve(where), roots)
    if base.is_dir():
        formats = [config.source.format, *(f for f in SUFFIXES if f != config.source.format)]
        names = [f"{config.name}_{day.isoformat()}{SUFFIXES[f]}" for f in formats]
        found = [base / n for n in names if (base / n).is_file()]
        if not found:
            raise DataSourceError(
                f"{base}: no batch for {day.isoformat()} (looked for {' or '.join(names)}); check that the upstream "
                f"export ran for that day, or pass the file as source"
            )
        if len(found) > 1:
            raise DataSourceError(
                f"{base}: two batches for {day.isoformat()} ({', '.join(f.name for f in found)}); which one to "
                f"score is ambiguous: remove one"
            )
        return resolve_source(found[0], roots)  # a symlink inside an allowed folder may point elsewhere
    if not base.is_file():
        raise DataSourceError(f"{base}: scoring source not found; check the path, or that the upstream export ran")
    return base


def check_size(path: Path, config: PipelineConfig) -> None:
    """An empty file, or one over ``source.max_file_mb``, is refused unread."""
    size, max_mb = path.stat().st_size, config.source.max_file_mb
    if size == 0:
        raise DataSourceError(f"{path}: file is empty (0 bytes); re-export it")
    if size > max_mb * 1024 * 1024:
        raise DataSourceError(
            f"{path}: file is too large ({size / 1024 / 1024:.1f} MB > source.max_file_mb {max_mb:g}); raise "
            f"source.max_file_mb (scoring reads it in chunks of scoring.chunk_rows, so memory stays bounded) or "
            f"split the batch"
        )


class UniqueIds:
    """Every row has an id and no id occurs twice in the file (across chunks: 64-bit hashes of the ids seen)."""

    def __init__(self, columns: list[str], path: Path) -> None:
        self.columns, self.path = columns, path
        self.seen = np.empty(0, dtype=np.uint64)  # sorted

    def add(self, frame: pd.DataFrame) -> None:
        ids = frame[self.columns]
        which = f"id column{'s' if len(self.columns) > 1 else ''} {', '.join(map(repr, self.columns))}"
        missing = ids.isna().any(axis=1).to_numpy()
        if missing.any():
            rows = (frame.index[missing][:EXAMPLES] + 1).tolist()
            raise DataSourceError(
                f"{self.path}: {which} (source.id_columns) missing in {int(missing.sum())} row(s), e.g. data row(s) "
                f"{', '.join(map(str, rows))}; every record needs its id (predictions are joined with the labels on "
                f"it): fix the export. Nothing was written"
            )
        hashes = pd.util.hash_pandas_object(ids, index=False).to_numpy()
        duplicated = ids.duplicated(keep=False).to_numpy()
        if len(self.seen):
            at = np.minimum(np.searchsorted(self.seen, hashes), len(self.seen) - 1)
            duplicated = duplicated | (self.seen[at] == hashes)  # pandas' arrays are read-only
        if duplicated.any():
            values = ids[duplicated]
            shown = list(
                dict.fromkeys(
                    values.iloc[:, 0].tolist()
                    if len(self.columns) == 1
                    else [tuple(r) for r in values.itertuples(index=False)]
                )
            )
            examples = ", ".join(repr(v) for v in shown[:EXAMPLES]) + (", ..." if len(shown) > EXAMPLES else "")
            last = int(frame.index[-1]) + 1
            raise DataSourceError(
                f"{self.path}: {which} (source.id_columns) has duplicates: {int(duplicated.sum())} row(s) in the "
                f"first {last:,} data rows share their id with another row, e.g. {examples}; each record must be "
                f"scored once (predictions are joined with the labels on the id): de-duplicate the export. Nothing "
                f"was written"
            )
        self.seen = np.sort(np.concatenate([self.seen, np.sort(hashes)]), kind="stable")  # merges two sorted runs


class _HashingReader(io.RawIOBase):
    """A binary file read through: sha256 of every byte, NUL bytes refused, the last byte remembered."""

    def __init__(self, raw: BinaryIO, path: Path) -> None:
        self.raw, self.path = raw, path
        self.sha = hashlib.sha256()
        self.last = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        if not data:
            return 0
        if b"\x00" in data:
            raise DataSourceError(
                f"{self.path}: corrupted CSV: binary content (NUL bytes); re-export the file as UTF-8 text"
            )
        self.sha.update(data)
        self.last = data[-1:]
        buffer[: len(data)] = data
        return len(data)


def scan(path: Path, fmt: str) -> str:
    """``sha256:<hex>`` of the file's bytes; a CSV is also checked whole in one streaming pass (UTF-8, header,
    delimiter, ragged or truncated rows: what pandas would let through), never held in memory."""
    if fmt != "csv":
        sha = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(_HASH_BLOCK):
                sha.update(block)
        return f"sha256:{sha.hexdigest()}"
    with path.open("rb", buffering=0) as raw:
        reader = _HashingReader(raw, path)
        text = io.TextIOWrapper(io.BufferedReader(reader, _HASH_BLOCK), encoding="utf-8-sig", newline="")
        try:
            blank: list[str] = []  # leading blank lines (a whitespace-only file is empty)
            while (line := text.readline()) and not line.strip():
                blank.append(line)
            if not line:
                raise DataSourceError(f"{path}: file is empty (only whitespace); re-export it")
            lines = itertools.chain(blank, [line], text)
            check_csv_records(path, lines, lambda: reader.last in (b"\n", b"\r"))
        except UnicodeDecodeError as exc:
            raise DataSourceError(
                f"{path}: corrupted CSV: not UTF-8 text ({exc.reason}); re-export the file as UTF-8"
            ) from None
    return f"sha256:{reader.sha.hexdigest()}"


def read_chunks(path: Path, fmt: str, config: PipelineConfig) -> Iterator[pd.DataFrame]:
    """The file in frames of ``scoring.chunk_rows`` rows, indexed by data row number (from 0); a last chunk under
    half of that joins the one before, so no chunk is too small for the suite's aggregate rules (distinct counts)."""
    chunk_rows = config.scoring.chunk_rows
    raw = _csv_chunks(path, config, chunk_rows) if fmt == "csv" else _parquet_chunks(path, chunk_rows)
    return _merge_short_tail(raw, chunk_rows)


def _csv_chunks(path: Path, config: PipelineConfig, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The CSV in frames of `chunk_rows` rows, read as the snapshot reads it (na_values, text columns)."""
    text_columns = [c for c, dtype in config.source.dtypes.items() if dtype == "string"]
    try:
        with pd.read_csv(
            path,
            chunksize=chunk_rows,
            encoding="utf-8-sig",
            na_values=list(config.source.na_values) or None,
            dtype=dict.fromkeys(text_columns, "str") or None,
        ) as chunks:
            yield from chunks
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"{path}: corrupted CSV, cannot be parsed ({exc}); fix or re-export the file") from None


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The Parquet file in frames of exactly `chunk_rows` rows (the last one: the rest), indexed by row number."""
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(f"{path}: corrupted Parquet, cannot be read ({exc}); re-export the file") from None
    names = file.schema_arrow.names
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise DataSourceError(
            f"{path}: duplicated column name(s): {', '.join(map(repr, dupes))}; every column needs "
            f"a unique name, fix the export"
        )
    if file.metadata.num_rows == 0:
        raise DataSourceError(f"{path}: file has zero rows; re-export it")
    start = 0

    def frame(table: pa.Table) -> pd.DataFrame:
        try:
            out = table.to_pandas()
        except (pa.ArrowException, ValueError) as exc:
            raise DataSourceError(f"{path}: Parquet data cannot be converted ({exc}); re-export the file") from None
        out.index = pd.RangeIndex(start, start + len(out))
        return out

    pending: list[pa.RecordBatch] = []
    n_pending = 0
    try:
        for batch in file.iter_batches(batch_size=chunk_rows):
            pending.append(batch)
            n_pending += batch.num_rows
            while n_pending >= chunk_rows:
                table = pa.Table.from_batches(pending, schema=file.schema_arrow)
                yield frame(table.slice(0, chunk_rows))
                start += chunk_rows
                rest = table.slice(chunk_rows)
                pending, n_pending = rest.to_batches(), rest.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(f"{path}: corrupted Parquet, cannot be read ({exc}); re-export the file") from None
    if n_pending:
        yield frame(pa.Table.from_batches(pending, schema=file.schema_arrow))


def _merge_short_tail(chunks: Iterable[pd.DataFrame], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The chunks as they come, but a last one under half of `chunk_rows` joins the one before (every chunk but
    the last is full), so no chunk is too small for the suite's aggregate rules (distinct counts)."""
    pending = None
    for chunk in chunks:
        if pending is not None and len(chunk) < chunk_rows // 2:
            pending = pd.concat([pending, chunk])
            continue
        if pending is not None:
            yield pending
        pending = chunk
    if pending is not None:
        yield pending
