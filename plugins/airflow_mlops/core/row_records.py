"""Rows records: the hashes of the rows a model saw (training_rows.parquet) or was judged on
(test_rows.parquet), with what makes them checkable: the hashed columns, the hash scheme, the row
count, the split and the date of every row. core.rows makes them; the gate and the audit read them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.row_identity import SCHEME, legacy_row_hashes, row_hashes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

TRAINING_ROWS_ARTIFACT = "training_rows.parquet"
TEST_ROWS_ARTIFACT = "test_rows.parquet"
#: Parquet metadata keys: the (sorted) columns a record's hashes were computed over, the hash scheme
#: (core.row_identity.SCHEME; absent: scheme 1), the rows it holds, the split that chose them, its date column.
_HASH_COLUMNS_KEY = b"airflow_mlops.hash_columns"
_SCHEME_KEY = b"airflow_mlops.hash_scheme"
_ROWS_KEY = b"airflow_mlops.rows"
_STRATEGY_KEY = b"airflow_mlops.split"
_DATE_COLUMN_KEY = b"airflow_mlops.date_column"
_DOWNLOAD_TRIES = 3


@dataclass(frozen=True)
class RowsRecord:
    """Row hashes of a model's rows, the columns they were computed over, and where they came from."""

    hashes: np.ndarray
    columns: list[str]
    origin: str
    scheme: int = SCHEME  # core.row_identity.SCHEME the hashes were made with (1: before it)
    strategy: str | None = None  # the split that chose the rows (time | random), when recorded
    days: frozenset[str] | None = field(default=None, repr=False)  # the days the rows cover (YYYY-MM-DD), if dated

    def hashes_of(self, frame: pd.DataFrame) -> np.ndarray:
        """`frame`'s row hashes as this record made its own (same columns, same scheme)."""
        return row_hashes(frame, self.columns) if self.scheme >= SCHEME else legacy_row_hashes(frame, self.columns)


def record_table(
    frame: pd.DataFrame,
    roles: Any,
    date_column: str | None,
    columns: list[str] | None = None,
    hashes: np.ndarray | None = None,
    strategy: str | None = None,
) -> pa.Table:
    """The Parquet table of a rows record: row_hash, role and the date of every row (schema metadata:
    the hashed columns, the hash scheme, the row count, the split). `roles` is one role for every row
    or one per row; `hashes`, when already computed over `columns`, are used as they are."""
    import pyarrow as pa

    columns = sorted(map(str, frame.columns)) if columns is None else columns
    hashes = row_hashes(frame, columns) if hashes is None else hashes
    data: dict[str, Any] = {"row_hash": pa.array(hashes, pa.uint64())}
    data["role"] = pa.array(
        [roles] * len(frame) if isinstance(roles, str) else list(roles), pa.string()
    ).dictionary_encode()
    dated = date_column if date_column and date_column in frame.columns else None
    if dated:
        data[dated] = pa.array(frame[dated].astype(str).tolist(), pa.string()).dictionary_encode()
    meta = {
        _HASH_COLUMNS_KEY: json.dumps(columns).encode(),
        _SCHEME_KEY: str(SCHEME).encode(),
        _ROWS_KEY: str(len(frame)).encode(),
    }
    if strategy:
        meta[_STRATEGY_KEY] = strategy.encode()
    if dated:
        meta[_DATE_COLUMN_KEY] = dated.encode()
    return pa.table(data).replace_schema_metadata(meta)


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


def read_record_table(table: pa.Table, origin: str) -> RowsRecord:
    """A RowsRecord from an already read table (see read_record); ValueError when it is not a sound one."""
    import numpy as np

    meta = table.schema.metadata or {}
    try:
        columns = json.loads(meta[_HASH_COLUMNS_KEY])
        scheme = int(meta.get(_SCHEME_KEY, b"1"))
    except (KeyError, ValueError):
        raise ValueError("its hashed-column list or hash scheme (Parquet metadata) is missing or unreadable") from None
    if "row_hash" not in table.column_names or not isinstance(columns, list) or not columns:
        raise ValueError("it has no row_hash column or no hashed columns")
    if scheme > SCHEME:
        raise ValueError(f"its rows were hashed with scheme {scheme}, newer than this airflow-mlops knows ({SCHEME})")
    declared = meta.get(_ROWS_KEY)
    if declared is not None and int(declared) != table.num_rows:
        raise ValueError(f"it declares {int(declared):,} rows but holds {table.num_rows:,} (truncated)")
    date_column = meta.get(_DATE_COLUMN_KEY, b"").decode()
    days = None
    if date_column and date_column in table.column_names:
        days = frozenset(str(d)[:10] for d in table.column(date_column).unique().to_pylist() if d)
    strategy = meta.get(_STRATEGY_KEY, b"").decode() or None
    hashes = np.asarray(table.column("row_hash").to_numpy(), dtype=np.uint64)
    return RowsRecord(
        hashes=hashes, columns=[str(c) for c in columns], origin=origin, scheme=scheme, strategy=strategy, days=days
    )


def run_record(client: MlflowClient, run_id: str | None) -> tuple[RowsRecord | None, str | None]:
    """A model's rows record from its training run (the champion's, for the gate), or (None, why not).

    A download that fails is tried again (three times in all) before it counts as unreadable; a record
    whose row count differs from the train + validation rows its run logged (n_rows.*) is not trusted.
    """
    import tempfile
    import time

    from mlflow.exceptions import MlflowException

    if not run_id:
        return None, "the model version names no training run"
    origin = f"{TRAINING_ROWS_ARTIFACT} of run {run_id}"
    listed = {a.path for a in client.list_artifacts(run_id)}
    if TRAINING_ROWS_ARTIFACT not in listed:
        return None, f"its training run {run_id} has no {TRAINING_ROWS_ARTIFACT} (trained before rows were recorded)"
    with tempfile.TemporaryDirectory(prefix="mlops-rows-") as tmp:
        for attempt in range(1, _DOWNLOAD_TRIES + 1):
            try:
                local = client.download_artifacts(run_id, TRAINING_ROWS_ARTIFACT, tmp)
                break
            except (MlflowException, OSError) as exc:
                log.warning("downloading %s failed (try %d of %d): %s", origin, attempt, _DOWNLOAD_TRIES, exc)
                if attempt == _DOWNLOAD_TRIES:
                    return None, f"its {origin} could not be downloaded after {_DOWNLOAD_TRIES} tries ({exc})"
                time.sleep(attempt)
        try:
            record = read_record(local, origin)
        except ValueError as exc:
            log.warning("%s is corrupt: %s", origin, exc)
            return None, f"its {origin} is corrupt: {exc}"
    params = client.get_run(run_id).data.params
    try:
        logged = int(params["n_rows.train"]) + int(params["n_rows.validation"])
    except (KeyError, ValueError):
        return record, None  # a run that logged no counts: nothing to check against
    if logged != len(record.hashes):
        return None, (
            f"its {origin} holds {len(record.hashes):,} rows but the run logged {logged:,} train + "
            f"validation rows (n_rows.train, n_rows.validation): the record is not the model's"
        )
    return record, None
