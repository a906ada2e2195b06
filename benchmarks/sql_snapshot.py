"""1M rows from PostgreSQL into the snapshot vs ``COPY ... TO STDOUT`` into pandas, side by side in one run.

Goal (docs/benchmarks.md, issue 25): our snapshot of a SQL source (``source.kind: sql``) <= 1.5x PostgreSQL's
fastest way into pandas.

The churn stream's 28 days (--rows in all, ~1M) are loaded once into a table of the PostgreSQL on loopback
(database ``mlops_bench_sql``, kept between runs; --reload rebuilds it), with the types a warehouse would have:
integer, numeric(8,2), double precision, date, text. Then, alternating, --repeat times each, every measurement in
a fresh Python process (its peak RSS is its own) that first runs its side once on the last day (imports, the first
connection: what a long-running worker has already paid), then times the whole window:

- copy: psycopg's ``COPY (SELECT the columns ... WHERE the window) TO STDOUT WITH (FORMAT csv, HEADER)`` into a
  buffer, then ``pandas.read_csv`` (what the psycopg and pandas docs show);
- ours: ``take_snapshot`` of the pipeline's SQL source (the table, its 28-day window): the statement, COPY parsed
  by Arrow in chunks of ``source.chunk_rows``, the column types from the config, the checks, the content digest and
  the Parquet snapshot written to a fresh folder each time (nothing reused);
- cursor: the same snapshot with the DB-API cursor path (a server-side cursor, ``fetchmany(chunk_rows)``), which
  any other database gets: shown to say why PostgreSQL gets COPY;
- fetch: ours up to the checked pandas frame (``read_sql_window``: COPY, Arrow, the types, the window, the order,
  the checks), without the content digest and the Parquet file: where the time goes.

The ratio is the median of the paired ratios ours / copy (and fetch / copy, cursor / copy).

With --shuffled the same rows are read from a copy of the table in random order (a table loaded in no particular
order): the snapshot's digest does not depend on the rows' order, so this costs nothing more.

    python benchmarks/sql_snapshot.py [--rows 1000000] [--days 28] [--repeat 5] [--reload] [--shuffled] [--server ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

DATABASE = "mlops_bench_sql"
SERVER = "host=127.0.0.1 port=5432 user=postgres"
START = dt.date(2026, 1, 1)
SIDES = ("copy", "ours", "fetch", "cursor")
TABLE = """CREATE TABLE churn (
    customer_id text, event_date date, tenure_months integer, monthly_charges numeric(8, 2),
    support_calls integer, data_usage_gb double precision, contract text, payment_method text, region text,
    churned smallint)"""
COLUMNS = [
    "customer_id",
    "event_date",
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "data_usage_gb",
    "contract",
    "payment_method",
    "region",
    "churned",
]


def load(server: str, rows: int, days: int, reload: bool) -> int:
    """The churn table in DATABASE with `rows` rows over `days` days (built once; the row count is checked)."""
    import psycopg

    spec = importlib.util.spec_from_file_location("churn_stream", ROOT / "include" / "churn_stream.py")
    stream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stream)
    with psycopg.connect(f"{server} dbname=postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if exists and reload:
            admin.execute(f"DROP DATABASE {DATABASE} WITH (FORCE)")
            exists = None
        if not exists:
            admin.execute(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(f"{server} dbname={DATABASE}") as conn:
        have = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'churn'").fetchone()[0]
        if have and conn.execute("SELECT count(*) FROM churn").fetchone()[0] == rows:
            return rows
        conn.execute("DROP TABLE IF EXISTS churn")
        conn.execute(TABLE)
        per_day = rows // days
        for i in range(days):
            day = START + dt.timedelta(days=i)
            frame = stream.daily_batch(day, rows=per_day + (1 if i < rows % days else 0))
            frame = frame.astype({"tenure_months": "int64", "churned": "int64"})
            text = io.StringIO()
            frame[COLUMNS].to_csv(text, index=False, header=False)
            with conn.cursor().copy("COPY churn FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(text.getvalue())
        conn.execute("ANALYZE churn")
    return rows


def shuffled(server: str) -> None:
    """`churn_shuffled`: the same rows in random order (a table loaded in no particular order)."""
    import psycopg

    with psycopg.connect(f"{server} dbname={DATABASE}") as conn:
        if not conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'churn_shuffled'").fetchone()[0]:
            conn.execute("SELECT setseed(0.25)")
            conn.execute("CREATE TABLE churn_shuffled AS SELECT * FROM churn ORDER BY random()")
            conn.execute("ANALYZE churn_shuffled")


def bench_config(days: int, table: str = "churn"):
    import yaml

    from airflow_mlops.core.config import parse_config

    raw = yaml.safe_load((ROOT / "include" / "pipelines" / "churn.yaml").read_text())
    raw["source"] = {
        "kind": "sql",
        "conn_id": "bench_pg",
        "table": f"public.{table}",
        "date_column": "event_date",
        "window_days": days,
        "id_columns": ["customer_id"],
    }
    return parse_config(raw, file=str(ROOT / "include" / "pipelines" / "churn.yaml"))


def run_side(side: str, dsn: str, days: int, end: dt.date, out: Path, table: str = "churn") -> int:
    """One side over the `days` days up to `end` (the benchmark's config with a `days`-day window); its rows."""
    import pandas as pd
    import psycopg

    from airflow_mlops.core.data import SqlDatabase, take_snapshot
    from airflow_mlops.core.data.sql import read_sql_window
    from airflow_mlops.core.data.sql_query import build_statement

    config = bench_config(days, table)
    start = end - dt.timedelta(days=days - 1)
    if side == "copy":
        statement = build_statement(config, start, end)
        with psycopg.connect(dsn) as conn:
            query = psycopg.ClientCursor(conn).mogrify(statement.text, statement.params)
            buffer = io.BytesIO()
            with conn.cursor().copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
                for block in copy:
                    buffer.write(block)
        buffer.seek(0)
        return len(pd.read_csv(buffer))
    fetch = "cursor" if side == "cursor" else "auto"
    database = SqlDatabase("bench_pg", lambda: psycopg.connect(dsn), fetch=fetch)
    if side == "fetch":
        return len(read_sql_window(config, database, start, end).frame)
    summary = take_snapshot(config, window_end=end, snapshot_root=out, database=database)
    assert summary["sql"]["fetch"] == ("cursor" if side == "cursor" else "copy"), summary["sql"]
    return summary["rows"]


def one(side: str, dsn: str, days: int, table: str) -> dict:
    """One measurement in this (fresh) process: a warm-up on the last day (imports, the first connection), then
    the clock on the whole window; seconds, rows, peak RSS."""
    import resource

    with tempfile.TemporaryDirectory(prefix="sql-bench-snap-") as out:
        last = START + dt.timedelta(days=days - 1)  # the table's last day
        run_side(side, dsn, 1, last, Path(out) / "warm-up", table)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        began = time.perf_counter()
        rows = run_side(side, dsn, days, last, Path(out), table)
        seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": round(peak), "rss_after_warm_up_mb": round(rss_before)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reload", action="store_true", help="rebuild the table")
    parser.add_argument("--server", default=SERVER, help="libpq keywords of the server (without dbname)")
    parser.add_argument("--shuffled", action="store_true", help="read a copy of the table in random row order")
    parser.add_argument("--one", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    dsn = f"{args.server} dbname={DATABASE}"
    if args.one:
        print(json.dumps(one(args.one, dsn, args.days, "churn_shuffled" if args.shuffled else "churn")))
        return

    began = time.perf_counter()
    rows = load(args.server, args.rows, args.days, args.reload)
    if args.shuffled:
        shuffled(args.server)
    print(f"table ready: {rows:,} rows ({time.perf_counter() - began:.1f} s)", file=sys.stderr)

    def run(side: str) -> dict:
        command = [sys.executable, __file__, "--one", side, "--days", str(args.days), "--server", args.server]
        command += ["--shuffled"] if args.shuffled else []
        return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)

    results: dict[str, list[dict]] = {side: [] for side in SIDES}
    for i in range(args.repeat):
        for side in SIDES if i % 2 == 0 else ("ours", "copy", "fetch", "cursor"):
            results[side].append(run(side))
            print(f"{i + 1}/{args.repeat} {side}: {results[side][-1]}", file=sys.stderr)
    assert len({r["rows"] for rs in results.values() for r in rs}) == 1, results  # the same rows on every side

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    def ratio(side: str) -> float:
        pairs = zip(results[side], results["copy"], strict=True)
        return statistics.median(s["seconds"] / c["seconds"] for s, c in pairs)

    print(
        json.dumps(
            {
                "rows": results["ours"][0]["rows"],
                "table": "churn_shuffled (random row order)" if args.shuffled else "churn (loaded day by day)",
                "repeat": args.repeat,
                "copy_to_pandas_s": round(median("copy", "seconds"), 3),
                "ours_s": round(median("ours", "seconds"), 3),
                "fetch_s": round(median("fetch", "seconds"), 3),
                "cursor_s": round(median("cursor", "seconds"), 3),
                "ratio": round(ratio("ours"), 2),
                "fetch_ratio": round(ratio("fetch"), 2),
                "cursor_ratio": round(ratio("cursor"), 2),
                "goal": "ratio <= 1.5",
                "peak_rss_mb": {side: median(side, "peak_rss_mb") for side in results},
                "rss_after_warm_up_mb": {side: median(side, "rss_after_warm_up_mb") for side in results},
                "all_s": {side: [round(r["seconds"], 3) for r in rs] for side, rs in results.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
