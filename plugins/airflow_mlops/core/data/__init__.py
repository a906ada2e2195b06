"""Load the training window and freeze it as an immutable Parquet snapshot (core.rows splits it).

The source is a CSV/Parquet file or a folder of daily files (``churn_YYYY-MM-DD.csv``), on the local disk or in an
object store (``s3://CONN_ID@bucket/prefix/``).
``take_snapshot`` refuses a source outside the allowed data folders (or inside the state folder, see
core.paths) and any file that is not a CSV or Parquet data file, by its name (.csv, .parquet) and by its
content (Parquet's PAR1 magic bytes; a CSV header naming the config's columns): nothing of a refused
file is quoted. Then it reads the window, checks the file is sound (size, encoding, delimiter, ragged rows, duplicated or missing columns, infinite numbers,
dates in the future) and writes ``<snapshot_root>/<pipeline>/<digest>.parquet``:
the content digest is the data version, so the same window always lands in the same file
and a retried task re-uses it. Every problem is a ``DataSourceError`` naming the file.

What real exports need (``source``): ``na_values`` are extra CSV cells read as missing (exact
matches, on top of pandas' defaults: ``" "`` matches a single space, not two); ``dtypes`` force a column's
type (see ``checks._apply_dtypes``); ``id_columns`` must be present and are kept (never features).
Otherwise types are not coerced: a number column holding words is the expectation suite's
business (the batch is kept for inspection), except blanks in a numeric feature, which only
``na_values`` can fix and so fail here, naming them.

Split by concern:

- ``snapshot``: `take_snapshot`, `read_snapshot`, `content_digest`; combining, filtering and writing;
- ``files``: locating a source's files in the window, and their format by name (`format_of`);
- ``objects``: an object-store source (``s3://CONN_ID@bucket/prefix/``, confined to allowed URI prefixes by
  core.paths): its objects in the window, sizes checked before download, fetched through the snapshot task's
  filesystem (hooks.objects) and read by the same readers;
- ``readers``: reading one CSV or Parquet file (`read_csv`, `read_parquet`, `check_csv_records`);
- ``checks``: what every frame passes (`check_frame`, `check_finite`): columns, types, numbers, dates;
- ``sql`` (`read_sql_window`, `SqlDatabase`), ``sql_query``, ``sql_fetch``, ``sql_types``: a SQL source
  (``source.kind: sql``): its statement with the window bound by the driver, fetched in chunks (COPY on
  PostgreSQL), typed by the config's declarations, then the same checks and snapshot as a file.
"""

from __future__ import annotations

from airflow_mlops.core.data.checks import (
    EXAMPLES,
    FALSE_WORDS,
    MAX_LISTED,
    TRUE_WORDS,
    check_finite,
    check_frame,
    required_columns,
)
from airflow_mlops.core.data.checks import _today as _today  # read by tests/unit/test_data.py
from airflow_mlops.core.data.files import DAILY_FILE, SUFFIXES, format_of, source_files, span, window_start
from airflow_mlops.core.data.readers import (
    DELIMITERS,
    PARQUET_MAGIC,
    check_csv_records,
    read_csv,
    read_file,
    read_parquet,
)
from airflow_mlops.core.data.snapshot import PIPELINE_NAME, content_digest, read_snapshot, take_snapshot
from airflow_mlops.core.data.sql import SqlDatabase, read_sql_window

__all__ = [
    "DAILY_FILE",
    "DELIMITERS",
    "EXAMPLES",
    "FALSE_WORDS",
    "MAX_LISTED",
    "PARQUET_MAGIC",
    "PIPELINE_NAME",
    "SUFFIXES",
    "SqlDatabase",
    "TRUE_WORDS",
    "check_csv_records",
    "check_finite",
    "check_frame",
    "content_digest",
    "format_of",
    "read_csv",
    "read_file",
    "read_parquet",
    "read_snapshot",
    "read_sql_window",
    "required_columns",
    "source_files",
    "span",
    "take_snapshot",
    "window_start",
]
