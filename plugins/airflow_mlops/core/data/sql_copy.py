"""PostgreSQL's fastest way out: ``COPY (statement) TO STDOUT`` as CSV, parsed by Arrow every ``chunk_rows`` rows.

The statement's window is bound client side by the driver's own quoting (``mogrify``: COPY takes no server-side
parameters), the result's column types are read first (``LIMIT 0``), so each column is parsed as its database type
(or as text when its role is text), never guessed. Parsing a chunk runs in one worker thread while the next chunk's
rows arrive (Arrow releases the GIL); at most ``MAX_PENDING`` chunks of raw rows wait, so memory stays bounded.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.data.sql_types import TEXT, conform

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from concurrent.futures import Future, ThreadPoolExecutor

    import pyarrow as pa

    from airflow_mlops.core.data.sql_query import SqlStatement

#: PostgreSQL type oids -> the Arrow type COPY's CSV text is parsed as (any other type is read as text).
PG_TYPES = {
    16: "bool",
    20: "int64",
    21: "int64",
    23: "int64",
    26: "int64",
    700: "float64",
    701: "float64",
    1700: "float64",
    1082: "date32",
    1114: "timestamp",
    1184: "timestamptz",
}
#: Chunks of raw rows that may wait for the parser: the reader blocks beyond this.
MAX_PENDING = 2


def copy_rows(
    conn: Any,
    driver: str,
    statement: SqlStatement,
    roles: Mapping[str, str],
    because: Mapping[str, str],
    chunk_rows: int,
    where: str,
    check_names: Callable[[list[str]], None],
) -> tuple[list[pa.Table], list[str]]:
    """The statement's rows through COPY (`driver`: psycopg or psycopg2), one conformed Arrow table per chunk."""
    from concurrent.futures import ThreadPoolExecutor

    bound = mogrify(conn, driver, statement)
    with conn.cursor() as cur:  # the result's columns and types, before a row is read
        cur.execute(f"SELECT * FROM (\n{bound}\n) AS mlops_source LIMIT 0")
        names = [str(d[0]) for d in cur.description]
        oids = [int(d[1]) for d in cur.description]
    check_names(names)
    copy = f"COPY (\n{bound}\n) TO STDOUT WITH (FORMAT csv)"
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-sql-parse") as pool:
        chunks = CsvChunks(names, oids, roles, because, chunk_rows, where, pool)
        try:
            with conn.cursor() as cur:
                if driver == "psycopg":
                    with cur.copy(copy) as stream:
                        _stream_rows(stream.read, chunks)
                else:
                    cur.copy_expert(copy, chunks)
                    chunks.flush()
            return chunks.finish(), names
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def mogrify(conn: Any, driver: str, statement: SqlStatement) -> str:
    """The statement with its parameters bound by the driver's own quoting (client side: COPY takes no parameters)."""
    if not statement.params:
        return statement.plain()
    if driver == "psycopg":
        import psycopg

        return psycopg.ClientCursor(conn).mogrify(statement.text, statement.params)
    import psycopg2.extensions

    with conn.cursor() as cur:
        bound = cur.mogrify(statement.text, statement.params)
    return bound.decode(psycopg2.extensions.encodings.get(conn.encoding, "utf-8"))


def _stream_rows(read: Callable[[], Any], chunks: CsvChunks) -> None:
    """psycopg's COPY rows (one per read) into `chunks`: the loop every row passes, so kept to the bare minimum."""
    buffer, rows, every = bytearray(), 0, chunks.chunk_rows
    while block := read():
        buffer += block
        rows += 1
        if rows == every:
            chunks.add(buffer)
            buffer, rows = bytearray(), 0
    chunks.add(buffer)


class CsvChunks:
    """COPY's CSV rows, parsed and conformed in `pool` every `chunk_rows` rows; ``finish()`` gives the tables in order."""

    def __init__(
        self,
        names: list[str],
        oids: list[int],
        roles: Mapping[str, str],
        because: Mapping[str, str],
        chunk_rows: int,
        where: str,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.names, self.roles, self.because, self.where = names, roles, because, where
        self.chunk_rows, self.pool = chunk_rows, pool
        self.buffer, self.rows = bytearray(), 0
        self.tables: list[pa.Table] = []
        self.pending: collections.deque[Future[pa.Table]] = collections.deque()
        self.types = {}
        for name, oid in zip(names, oids, strict=True):
            natural = PG_TYPES.get(oid, "string")
            if roles.get(name) == TEXT and natural != "bool":  # text as the database writes it
                natural = "string"
            self.types[name] = _arrow_type(natural)

    def write(self, data: Any) -> None:
        """psycopg2's ``copy_expert`` writes each row here."""
        self.buffer += data.encode() if isinstance(data, str) else data
        self.rows += 1
        if self.rows >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        self.add(self.buffer)
        self.buffer, self.rows = bytearray(), 0

    def add(self, rows: bytearray) -> None:
        """Hand one chunk of CSV rows to the parser (waiting for the oldest when MAX_PENDING are queued)."""
        if not rows:
            return
        if len(self.pending) >= MAX_PENDING:
            self.tables.append(self.pending.popleft().result())
        self.pending.append(self.pool.submit(self._table, rows))

    def finish(self) -> list[pa.Table]:
        while self.pending:
            self.tables.append(self.pending.popleft().result())
        return self.tables

    def _table(self, rows: bytearray) -> pa.Table:
        import pyarrow as pa

        data = pa.py_buffer(rows)
        try:
            table = self._parse(data, self.types)
        except pa.ArrowInvalid:  # a value the type's text form did not foresee ('infinity' dates): read as text
            table = self._parse(data, dict.fromkeys(self.names, pa.string()))
        arrays = [
            conform(table.column(i).combine_chunks(), self.roles.get(n), n, self.because.get(n, ""), self.where)
            for i, n in enumerate(self.names)
        ]
        return pa.table(arrays, names=self.names)

    def _parse(self, data: pa.Buffer, types: dict[str, pa.DataType]) -> pa.Table:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        return pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(column_names=self.names, block_size=max(len(data), 1 << 20)),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                null_values=[""],  # COPY writes NULL as an empty unquoted field, '' as ""
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )


def _arrow_type(name: str) -> pa.DataType:
    import pyarrow as pa

    return {
        "bool": pa.bool_(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "date32": pa.date32(),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", "UTC"),
    }.get(name, pa.string())
