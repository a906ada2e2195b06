"""Fetching a SQL source's rows in chunks of typed Arrow columns (bounded memory: one chunk of raw rows at a time).

PostgreSQL (psycopg 3 or psycopg2 on a server that has ``COPY (query) TO STDOUT``): COPY, parsed by Arrow
(``sql_copy``). Any other DB-API driver: the statement is executed with its parameters (bound by the driver) and
read with ``fetchmany(chunk_rows)`` (a server-side cursor on PostgreSQL). PostgreSQL sessions are read only, in UTC,
with ISO dates and exact floats. Each column is conformed to its role as it arrives (``sql_types``).

The connection comes from the caller (``SqlDatabase.connect``: the operator layer resolves an Airflow connection);
core never sees a URI or a password, and every driver message is scrubbed of the connection's secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.data.sql_copy import copy_rows
from airflow_mlops.core.data.sql_types import conform
from airflow_mlops.core.errors import DataSourceError, SourceUnavailableError
from airflow_mlops.core.redaction import MASK, redact

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import pyarrow as pa

    from airflow_mlops.core.data.sql_query import SqlStatement

#: Words of a driver's connect error that mean the server refused these credentials or this database (no retry
#: helps); anything else (refused port, timeout, unknown host) is the server being unreachable (a retry may).
REFUSED = (
    "fatal",
    "authentication",
    "password",
    "permission denied",
    "access denied",
    "not permitted",
    "does not exist",
)
#: The session a PostgreSQL snapshot runs in: read only (an autocommit connection too), and the text forms the CSV
#: parser expects.
PG_SESSION = (
    "SET default_transaction_read_only = on",
    "SET DateStyle = 'ISO, YMD'",
    "SET TimeZone = 'UTC'",
    "SET extra_float_digits = 3",
)


@dataclass(frozen=True)
class SqlDatabase:
    """A database a snapshot reads: the Airflow connection id it is named by, and a function returning a new DB-API
    connection to it (closed after use). `secrets` (the connection's password) are scrubbed from every message;
    `quote` is the identifier quote character of its SQL dialect (a backtick for MySQL); `fetch`: ``auto`` (COPY on
    PostgreSQL, else the cursor), or ``copy`` / ``cursor`` to force one (tests, benchmarks/sql_snapshot.py)."""

    conn_id: str
    connect: Callable[[], Any]
    secrets: tuple[str, ...] = ()
    quote: str = '"'
    fetch: str = "auto"

    def scrub(self, text: str) -> str:
        """`text` without the connection's secrets, URL credentials or password=... pairs."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, MASK)
        return redact(text)


@dataclass
class Fetched:
    """The rows fetched: one Arrow table per chunk, the result's column names, and how they were fetched."""

    tables: list[pa.Table]
    names: list[str]
    method: str  # copy | cursor


def fetch(
    database: SqlDatabase,
    statement: SqlStatement,
    roles: Mapping[str, str],
    because: Mapping[str, str],
    *,
    chunk_rows: int,
    where: str,
    check_names: Callable[[list[str]], None],
) -> Fetched:
    """Run `statement` and fetch its rows, each column conformed to its role (`roles`; `because` says why).

    `check_names(names)` sees the result's columns before any row is fetched; `where` names the connection and the
    query in messages; ``database.fetch`` may force COPY or the cursor.
    """
    conn = _connect(database)
    try:
        use_copy = database.fetch == "copy" or (database.fetch == "auto" and _copy_capable(conn))
        if use_copy and not _postgres_driver(conn):
            raise DataSourceError(f"{where}: COPY needs a PostgreSQL connection (psycopg)")
        if _postgres_driver(conn):
            _postgres_session(conn)
        try:
            if use_copy:
                driver = str(_postgres_driver(conn))
                tables, names = copy_rows(conn, driver, statement, roles, because, chunk_rows, where, check_names)
            else:
                tables, names = _cursor(conn, statement, roles, because, chunk_rows, where, check_names)
        except (DataSourceError, SourceUnavailableError):
            raise
        except Exception as exc:
            raise _query_error(exc, database, where) from None
        return Fetched(tables, names, "copy" if use_copy else "cursor")
    finally:
        try:
            conn.rollback()  # read only: nothing to keep; ends the transaction before closing
        except Exception:  # noqa: S110 - a broken connection cannot roll back; closing it is all that is left
            pass
        conn.close()


# --------------------------------------------------------------------------- connecting


def _connect(database: SqlDatabase) -> Any:
    try:
        return database.connect()
    except Exception as exc:
        text = database.scrub(_first_line(exc))
        if any(word in text.lower() for word in REFUSED):
            raise DataSourceError(
                f"connection {database.conn_id!r}: the database refused it ({text}); check the connection's login, "
                f"password and database (airflow connections get {database.conn_id}), and that the login may connect"
            ) from None
        raise SourceUnavailableError(
            f"connection {database.conn_id!r}: the database cannot be reached ({text}); check the connection's host "
            f"and port and that the database is up (Airflow retries the task)"
        ) from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _query_error(exc: BaseException, database: SqlDatabase, where: str) -> Exception:
    """A driver's error while querying: bad SQL, a missing table or column, no permission -> DataSourceError; the
    connection lost or the server shutting down -> SourceUnavailableError (a retry may help)."""
    text = database.scrub(_first_line(exc))
    kinds = {k.__name__ for k in type(exc).__mro__}
    if kinds & {"OperationalError", "InterfaceError"} and not kinds & {"QueryCanceled", "QueryCanceledError"}:
        return SourceUnavailableError(
            f"{where}: the connection failed while reading ({text}); Airflow retries the task"
        )
    return DataSourceError(f"{where}: the database refused the query ({text}); fix source.query or source.table")


def _postgres_driver(conn: Any) -> str | None:
    """``psycopg`` (3) or ``psycopg2`` when `conn` is one of theirs, else None."""
    module = type(conn).__module__
    return "psycopg2" if module.startswith("psycopg2") else "psycopg" if module.startswith("psycopg") else None


def _copy_capable(conn: Any) -> bool:
    """PostgreSQL 9+ through psycopg (Redshift speaks the protocol but reports 8.0 and has no COPY TO STDOUT)."""
    driver = _postgres_driver(conn)
    if driver is None:
        return False
    version = conn.info.server_version if driver == "psycopg" else conn.server_version
    return int(version or 0) >= 90000


def _postgres_session(conn: Any) -> None:
    """Read only (a source never writes), UTC, ISO dates, floats that round-trip."""
    if _postgres_driver(conn) == "psycopg":
        conn.read_only = True
    else:
        conn.set_session(readonly=True)
    with conn.cursor() as cur:
        for setting in PG_SESSION:
            cur.execute(setting)


# --------------------------------------------------------------------------- any DB-API driver: the cursor


def _cursor(
    conn: Any,
    statement: SqlStatement,
    roles: Mapping[str, str],
    because: Mapping[str, str],
    chunk_rows: int,
    where: str,
    check_names: Callable[[list[str]], None],
) -> tuple[list[pa.Table], list[str]]:
    import pyarrow as pa

    server_side = _postgres_driver(conn) is not None and not getattr(conn, "autocommit", False)
    cur = conn.cursor(name="mlops_source") if server_side else conn.cursor()
    try:
        cur.arraysize = chunk_rows
        if server_side and hasattr(cur, "itersize"):
            cur.itersize = chunk_rows
        if statement.params:
            cur.execute(statement.text, statement.params)
        else:
            cur.execute(statement.plain())
        names = [str(d[0]) for d in cur.description]
        check_names(names)
        tables = []
        while rows := cur.fetchmany(chunk_rows):
            columns = list(zip(*rows, strict=True))
            arrays = [
                conform(_py_array(values), roles.get(n), n, because.get(n, ""), where)
                for n, values in zip(names, columns, strict=True)
            ]
            tables.append(pa.table(arrays, names=names))
        return tables, names
    finally:
        cur.close()


def _py_array(values: tuple[Any, ...]) -> pa.Array:
    """A column of Python values as Arrow; a column of mixed types (SQLite's, say) as text, for `conform` to judge."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
