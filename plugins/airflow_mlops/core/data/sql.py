"""A SQL source's window, read into the same checked frame a file source gives (``source.kind: sql``).

``read_sql_window`` builds the statement (``sql_query``: the config's query or a SELECT from its table, the window
bound by the driver), fetches it in chunks typed by the config's declarations (``sql_fetch``, ``sql_types``), drops
rows outside the window, and passes the frame through the file sources' own checks (``checks.check_frame``). The
rows keep the order the database returned them in (a query's rows have none unless it says ORDER BY): the snapshot's
digest is taken whatever their order (``content_digest(..., ordered=False)``). Every
problem names the connection id, the query and its window, and what to do; no credential ever reaches this module
(the operator layer hands it a ``SqlDatabase``). ``snapshot.take_snapshot`` then writes the snapshot as for files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from airflow_mlops.core.data.checks import MAX_LISTED, check_frame
from airflow_mlops.core.data.sql_fetch import SqlDatabase, fetch
from airflow_mlops.core.data.sql_query import SqlStatement, build_statement
from airflow_mlops.core.data.sql_types import roles, why
from airflow_mlops.core.errors import DataSourceError

if TYPE_CHECKING:
    import datetime as dt
    from pathlib import Path

    import pandas as pd
    import pyarrow as pa

    from airflow_mlops.core.config import PipelineConfig

__all__ = ["SqlDatabase", "SqlWindow", "read_sql_window"]


@dataclass
class SqlWindow:
    """The window as read: the Arrow table to write, the same rows as a frame (as they read back from the snapshot),
    the statement run, and how the rows were fetched (copy | cursor)."""

    table: pa.Table
    frame: pd.DataFrame
    statement: SqlStatement
    method: str

    def origin(self, conn_id: str) -> dict[str, object]:
        """Where the snapshot came from, for its record: the connection id, the query and its window (no credential:
        the connection's details stay in Airflow)."""
        return {
            "conn_id": conn_id,
            "query": self.statement.text,
            "params": {k: v.isoformat() for k, v in self.statement.params.items()},
            "fetch": self.method,
        }


def read_sql_window(
    config: PipelineConfig,
    database: SqlDatabase,
    start: dt.date | None,
    end: dt.date | None,
) -> SqlWindow:
    """The rows of `config`'s SQL source in start..end, typed, checked, and not empty."""
    import pyarrow as pa

    statement = build_statement(config, start, end, quote=database.quote)
    where = f"connection {database.conn_id!r}, query {statement.shown()}"
    column_roles = roles(config)
    because = {c: why(config, c) for c in column_roles}

    def check_names(names: list[str]) -> None:
        _check_names(names, config, where)

    fetched = fetch(
        database,
        statement,
        column_roles,
        because,
        chunk_rows=config.source.chunk_rows,
        where=where,
        check_names=check_names,
    )
    table = pa.concat_tables(fetched.tables, promote_options="permissive") if fetched.tables else None
    fetched.tables.clear()
    n_read = 0 if table is None else table.num_rows
    if table is not None and end is not None and config.source.date_column:
        table = _in_window(table, config.source.date_column, start, end, where)
    if table is None or table.num_rows == 0:
        outside = f" ({n_read} row(s) returned, none dated inside it)" if n_read else ""
        raise DataSourceError(
            f"connection {database.conn_id!r}: no rows in the window {statement.window()}{outside}; nothing was "
            f"written. Query: {statement.shown()}. Check that the data for these days has landed, the run's day "
            f"(as_of) and source.window_days"
        )
    frame = table.to_pandas(split_blocks=True)  # the same frame as read back from the snapshot, without a copy
    checked = check_frame(frame, config, cast("Path", where))  # only named in its messages
    if checked is not frame:  # source.dtypes changed a column: the snapshot holds the declared types
        table = pa.Table.from_pandas(checked, preserve_index=False)
        frame = table.to_pandas(split_blocks=True)
    return SqlWindow(table, frame, statement, fetched.method)


def _check_names(names: list[str], config: PipelineConfig, where: str) -> None:
    """The result's columns: unique, and every column the config names among them (before a row is fetched)."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataSourceError(
            f"{where}: the query returns the column name(s) {', '.join(map(repr, dupes))} more than once; alias them "
            f"(SELECT a.id AS a_id, ...)"
        )
    missing = [c for c in roles(config) if c not in names]
    if missing:
        listed = ", ".join(f"{c!r} ({why(config, c)})" for c in missing)
        present = ", ".join(map(repr, names[: MAX_LISTED * 4]))
        raise DataSourceError(
            f"{where}: the result lacks column(s) {listed}; it has {present}. Select them in source.query (or add "
            f"them to source.table), or fix the config's features/target/date_column/id_columns"
        )


def _in_window(table: pa.Table, column: str, start: dt.date | None, end: dt.date, where: str) -> pa.Table:
    """Rows dated start..end (a query may return more than its window); a missing date is an error."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dates = table.column(column)
    if dates.null_count:
        raise DataSourceError(
            f"{where}: date column {column!r} has {dates.null_count} missing value(s); every row needs its day to be "
            f"placed in the window: filter them out in the query, or fix the data"
        )
    days = pc.cast(dates, pa.date32()) if pa.types.is_timestamp(dates.type) else dates
    keep = pc.less_equal(days, pa.scalar(end, pa.date32()))
    if start is not None:
        keep = pc.and_(keep, pc.greater_equal(days, pa.scalar(start, pa.date32())))
    if pc.all(keep).as_py():
        return table
    return table.filter(keep)
