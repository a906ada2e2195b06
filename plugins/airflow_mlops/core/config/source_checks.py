"""The parse-time checks of a pipeline's `source` section: a file source has a path, a SQL source a connection
and exactly one of `query` / `table`, and a query binds the window with the parameters it needs.

A query's window parameters are DB-API "pyformat" placeholders, bound by the driver (never formatted into the
text): ``%(start)s`` the window's first day, ``%(end)s`` its last day, ``%(after_end)s`` the day after it (for a
timestamp column: ``ts >= %(start)s AND ts < %(after_end)s``). A literal ``%`` is written ``%%``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_mlops.core.config.reader import Reader
    from airflow_mlops.core.config.sections import SourceConfig

#: The window's parameters a query may use, and what each holds.
WINDOW_PARAMETERS = {
    "start": "the window's first day",
    "end": "the window's last day",
    "after_end": "the day after the window's last day",
}
#: A pyformat placeholder %(name)s, a literal %% and any other % (the driver would refuse it).
PLACEHOLDER = re.compile(r"%\((?P<name>[^)]*)\)s|%%|%(?P<other>.?)", re.DOTALL)
#: Keys only a SQL source has (chunk_rows is harmless elsewhere: a file is read whole).
SQL_KEYS = ("conn_id", "query", "table")
MAX_CHUNK_ROWS = 10_000_000


def query_parameters(query: str) -> list[str]:
    """The names of the %(name)s placeholders of `query`, in order of first use."""
    return list(dict.fromkeys(m.group("name") for m in PLACEHOLDER.finditer(query) if m.group("name") is not None))


def check_source(src: Reader, source: SourceConfig) -> None:
    """Each problem of the `source` section as a ConfigError naming the key (``src.fail``)."""
    if source.kind == "file":
        if not source.path.strip():
            given = "is empty" if "path" in src.data else "is missing"
            src.fail(f"required key {given}: a file or a folder of daily files (or set kind: sql)", "path")
        for key in SQL_KEYS:
            if key in src.data:
                src.fail(f"only a SQL source has it; add kind: sql, or remove {key}", key)
        return
    if "path" in src.data:
        src.fail(
            "a SQL source reads its rows from conn_id's database, not a file: remove path (or use kind: file). "
            "A run may still train on a file with the DAG's `source` param",
            "path",
        )
    if not (isinstance(source.conn_id, str) and source.conn_id.strip()):
        src.fail("a SQL source needs the Airflow connection id of its database (e.g. conn_id: churn_db)", "conn_id")
    conn_id = str(source.conn_id)
    if any(c.isspace() or not c.isprintable() for c in conn_id):
        src.fail(f"{conn_id!r} cannot be an Airflow connection id: no spaces or control characters", "conn_id")
    if (source.query is None) == (source.table is None):
        both = "both are given" if source.query is not None else "neither is given"
        src.fail(f"a SQL source needs exactly one of query (your SELECT) or table (a table's name); {both}", "query")
    if not 1 <= source.chunk_rows <= MAX_CHUNK_ROWS:
        src.fail(f"must be between 1 and {MAX_CHUNK_ROWS:,}, got {source.chunk_rows}", "chunk_rows")
    if source.table is not None:
        _check_table(src, source.table)
    else:
        _check_query(src, source)


def _check_table(src: Reader, table: str) -> None:
    parts = table.split(".")
    if not table.strip() or len(parts) > 3 or not all(p.strip() for p in parts):
        src.fail(f"{table!r} is not a table name: use table or schema.table", "table")
    if any(not c.isprintable() for c in table):
        src.fail(f"{table!r} holds a control character: not a table name", "table")


def _check_query(src: Reader, source: SourceConfig) -> None:
    query = str(source.query)
    if not query.strip().rstrip(";").strip():
        src.fail("is empty: write the SELECT that returns the rows", "query")
    names: list[str] = []
    for match in PLACEHOLDER.finditer(query):
        name, other = match.group("name"), match.group("other")
        if name is not None:
            names.append(name)
        elif other is not None:
            hint = "use %(start)s / %(end)s, not %s" if other == "s" else "a literal % is written %% (DB-API pyformat)"
            near = " ".join(query[max(match.start() - 15, 0) : match.start() + 15].split())
            src.fail(f"has a % that is not a parameter at character {match.start()} (near {near!r}): {hint}", "query")
    allowed = ", ".join(f"%({n})s ({what})" for n, what in WINDOW_PARAMETERS.items())
    unknown = sorted({n for n in names if n not in WINDOW_PARAMETERS})
    if unknown:
        listed = ", ".join(f"%({n})s" for n in unknown)
        src.fail(f"unknown parameter(s) {listed}; the window's parameters are {allowed}", "query")
    used = set(names)
    if "start" in used and source.window_days is None:
        src.fail("uses %(start)s but source.window_days is not set: the window has no first day", "query")
    if source.date_column:
        missing = []
        if not used & {"end", "after_end"}:
            missing.append("%(end)s (or %(after_end)s)")
        if source.window_days is not None and "start" not in used:
            missing.append("%(start)s")
        if missing:
            where = (
                f"source.date_column {source.date_column!r} and source.window_days {source.window_days}"
                if source.window_days is not None
                else f"source.date_column {source.date_column!r}"
            )
            example = (
                f"WHERE {source.date_column} >= %(start)s AND {source.date_column} <= %(end)s"
                if source.window_days is not None
                else f"WHERE {source.date_column} <= %(end)s"
            )
            src.fail(
                f"with {where} the query must select the window's rows: missing {' and '.join(missing)}, "
                f"e.g. {example}",
                "query",
            )
