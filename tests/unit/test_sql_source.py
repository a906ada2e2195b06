"""A SQL source (`source.kind: sql`) against the real PostgreSQL on loopback: the statement and its bound window, the
snapshot (types from the config, the same rows by COPY and by the cursor, the digest of what is written), the
config's checks, and the bad inputs: no rows, a column of the wrong type, a missing table, a connection id that does
not exist, SQL in a window value, credentials refused. Each leaves nothing written and no password in any message."""

from __future__ import annotations

import datetime as dt
import logging
import secrets

import pytest
import yaml
from conftest import CHURN_CONFIG, churn_stream
from postgres_db import Database, churn_days

from airflow_mlops.core.config import parse_config
from airflow_mlops.core.data import SqlDatabase, content_digest, read_snapshot, take_snapshot
from airflow_mlops.core.data.sql_query import SqlStatement, build_statement
from airflow_mlops.core.errors import ConfigError, DataSourceError

FIRST, DAYS, ROWS = dt.date(2026, 1, 1), 28, 100
END = FIRST + dt.timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def pg():
    """A database holding the churn stream's 28 days (100 rows a day) in `churn`, and a copy with text charges."""
    db = Database("mlops_sql_unit")
    try:
        frame = churn_days(churn_stream, FIRST, DAYS, ROWS)
        db.load_churn("churn", frame)
        db.execute("CREATE SCHEMA sales")
        db.execute("CREATE TABLE sales.churn AS SELECT * FROM churn")
        db.execute("ALTER TABLE sales.churn ALTER COLUMN monthly_charges TYPE text")
        db.execute("UPDATE sales.churn SET monthly_charges = 'n/a' WHERE support_calls = 3")
        yield db
    finally:
        db.drop()


def database(pg: Database, **kwargs) -> SqlDatabase:
    return SqlDatabase("churn_db", lambda: pg.connect(), **kwargs)


def sql_config(**source):
    raw = yaml.safe_load(CHURN_CONFIG.read_text())
    base = {"kind": "sql", "conn_id": "churn_db", "date_column": "event_date", "window_days": DAYS}
    base["id_columns"] = ["customer_id"]
    raw["source"] = {k: v for k, v in {**base, **source}.items() if v is not None}  # None: the key left out
    return parse_config(raw, file=str(CHURN_CONFIG))


def snap(config, pg, tmp_path, end=END, **kwargs):
    return take_snapshot(config, window_end=end, snapshot_root=tmp_path / "snapshots", database=database(pg, **kwargs))


# --------------------------------------------------------------------------- the snapshot


def test_table_source_snapshot_has_the_declared_types_and_records_where_it_came_from(pg, tmp_path):
    config = sql_config(table="public.churn")
    summary = snap(config, pg, tmp_path)

    assert summary["rows"] == DAYS * ROWS and summary["files"] == 0
    assert (summary["window_start"], summary["window_end"]) == (FIRST.isoformat(), END.isoformat())
    frame = read_snapshot(summary["uri"])
    assert content_digest(frame, ordered=False) == summary["digest"]  # the digest describes the file's rows
    assert content_digest(frame) != summary["digest"]  # ... whatever their order: never equal to an ordered digest
    dtypes = {c: str(t) for c, t in frame.dtypes.items()}
    # numeric features: float (the table has integer and numeric(8,2) columns); categorical and ids: text;
    # the date column: dates; the binary target: its integers (smallint in the table).
    assert {c: dtypes[c] for c in config.numeric_features} == dict.fromkeys(config.numeric_features, "float64")
    assert {dtypes[c] for c in ("contract", "payment_method", "region", "customer_id")} == {"str"}
    assert isinstance(frame["event_date"].iloc[0], dt.date) and dtypes["churned"] == "int64"
    assert list(frame.columns) == ["customer_id", "event_date", *config.feature_names, "churned"]
    sql = summary["sql"]
    assert sql["conn_id"] == "churn_db" and sql["fetch"] == "copy"
    assert sql["query"].startswith('SELECT "customer_id", "event_date", "tenure_months"')
    assert sql["query"].endswith(
        'FROM "public"."churn" WHERE "event_date" >= %(start)s AND "event_date" < %(after_end)s'
    )
    assert sql["params"] == {"start": "2026-01-01", "after_end": "2026-01-29"}

    again = snap(config, pg, tmp_path)  # same window, same content: the same file
    assert (again["digest"], again["uri"]) == (summary["digest"], summary["uri"])
    assert len(list((tmp_path / "snapshots" / "churn").iterdir())) == 1


def test_copy_and_the_cursor_make_the_same_snapshot_in_small_chunks(pg, tmp_path):
    config = sql_config(table="churn", chunk_rows=333)  # many chunks, the last one short
    by_copy = snap(config, pg, tmp_path, fetch="copy")
    by_cursor = snap(config, pg, tmp_path, fetch="cursor")
    assert by_cursor["sql"]["fetch"] == "cursor" and by_copy["sql"]["fetch"] == "copy"
    assert by_cursor["digest"] == by_copy["digest"] and by_cursor["rows"] == DAYS * ROWS


def test_the_same_rows_in_another_order_are_the_same_snapshot(pg, tmp_path):
    table = snap(sql_config(table="churn"), pg, tmp_path)
    query = "SELECT * FROM churn WHERE event_date >= %(start)s AND event_date <= %(end)s ORDER BY md5(customer_id)"
    shuffled = snap(sql_config(query=query), pg, tmp_path)
    assert (shuffled["digest"], shuffled["uri"]) == (table["digest"], table["uri"])  # the first file is kept
    fewer = snap(sql_config(query=query.replace("ORDER BY", "AND support_calls < 3 ORDER BY")), pg, tmp_path)
    assert fewer["digest"] != table["digest"]


def test_query_source_binds_the_window_and_keeps_a_literal_percent(pg, tmp_path):
    query = """
        SELECT c.*, 'x' AS note  -- a comment at the end of a line
        FROM churn AS c
        WHERE c.event_date BETWEEN %(start)s AND %(end)s AND c.customer_id LIKE 'C%%';
    """
    config = sql_config(query=query, window_days=7)
    summary = snap(config, pg, tmp_path)
    frame = read_snapshot(summary["uri"])
    assert summary["rows"] == 7 * ROWS and summary["window_start"] == "2026-01-22"
    assert sorted({d.isoformat() for d in frame["event_date"]}) == [
        (END - dt.timedelta(days=i)).isoformat() for i in range(6, -1, -1)
    ]
    assert "note" in frame.columns  # a column the config does not name is kept, with the database's type
    assert summary["sql"]["params"] == {"start": "2026-01-22", "end": "2026-01-28"}


def test_a_query_returning_rows_outside_its_window_is_cut_to_it(pg, tmp_path):
    config = sql_config(query="SELECT * FROM churn WHERE event_date <= %(end)s", window_days=None)
    # no window_days: every day up to the end; a config with a window: only its days
    assert snap(config, pg, tmp_path, end=dt.date(2026, 1, 10))["rows"] == 10 * ROWS


def test_statement_quotes_identifiers_and_never_formats_a_value():
    config = sql_config(table='sales."odd%table', date_column='day "of" sale', window_days=3)
    statement = build_statement(config, dt.date(2026, 1, 5), dt.date(2026, 1, 7))
    assert 'FROM "sales"."""odd%%table"' in statement.text
    assert 'WHERE "day ""of"" sale" >= %(start)s AND "day ""of"" sale" < %(after_end)s' in statement.text
    assert "2026" not in statement.text
    assert statement.params == {"start": dt.date(2026, 1, 5), "after_end": dt.date(2026, 1, 8)}
    assert SqlStatement("SELECT 'a%%'").plain() == "SELECT 'a%'"


# --------------------------------------------------------------------------- the config


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"table": "churn", "conn_id": None}, r"source\.conn_id: a SQL source needs the Airflow connection id"),
        (
            {"table": "churn", "query": "SELECT 1"},
            r"source\.query: .*exactly one of query .* or table .*both are given",
        ),
        ({}, r"source\.query: a SQL source needs exactly one of query .*neither is given"),
        (
            {"table": "churn", "path": "data/churn"},
            r"source\.path: a SQL source reads its rows from conn_id's database",
        ),
        ({"table": "churn", "chunk_rows": 0}, r"source\.chunk_rows: must be between 1 and 10,000,000, got 0"),
        ({"table": "a..b"}, r"source\.table: 'a\.\.b' is not a table name"),
        ({"table": "churn", "conn_id": "churn db"}, r"source\.conn_id: 'churn db' cannot be an Airflow connection id"),
        (
            {"query": "SELECT * FROM churn"},
            r"source\.query: with source\.date_column 'event_date' and source\.window_days 28 the query must select "
            r"the window's rows: missing %\(end\)s \(or %\(after_end\)s\) and %\(start\)s, e\.g\. WHERE event_date >= ",
        ),
        (
            {"query": "SELECT * FROM churn WHERE event_date <= %(end)s"},
            r"source\.query: .* missing %\(start\)s, e\.g\.",
        ),
        (
            {"query": "SELECT * FROM churn WHERE event_date >= %(start)s AND event_date <= %(as_of)s"},
            r"source\.query: unknown parameter\(s\) %\(as_of\)s; the window's parameters are %\(start\)s",
        ),
        (
            {"query": "SELECT * FROM t WHERE d > %s"},
            r"source\.query: has a % that is not a parameter at character 26 \(near 'OM t WHERE d > %s'\): use %\(start\)s",
        ),
        (
            {"query": "SELECT * FROM t WHERE id LIKE 'C%' AND d <= %(end)s"},
            r"source\.query: has a % that is not a parameter at character 32 .*: a literal % is written %%",
        ),
        (
            {"query": "SELECT * FROM t WHERE d >= %(start)s AND d <= %(end)s", "window_days": None},
            r"source\.query: uses %\(start\)s but source\.window_days is not set",
        ),
        ({"table": "churn", "kind": "warehouse"}, r"source\.kind: 'warehouse' is not one of file, sql"),
    ],
)
def test_sql_source_config_is_checked_naming_the_key(source, message):
    with pytest.raises(ConfigError, match=message):
        sql_config(**source)


def test_a_file_source_still_needs_its_path_and_has_no_connection():
    raw = yaml.safe_load(CHURN_CONFIG.read_text())
    assert parse_config(raw).source.kind == "file"  # today's configs: unchanged
    del raw["source"]["path"]
    with pytest.raises(ConfigError, match=r"source\.path: required key is missing"):
        parse_config(raw, file="churn.yaml")
    raw["source"].update(path="data/churn", conn_id="churn_db")
    with pytest.raises(ConfigError, match=r"source\.conn_id: only a SQL source has it; add kind: sql"):
        parse_config(raw, file="churn.yaml")


# --------------------------------------------------------------------------- bad inputs


def test_no_rows_in_the_window_names_the_connection_and_the_window_and_writes_nothing(pg, tmp_path):
    config = sql_config(table="churn", window_days=7)
    with pytest.raises(DataSourceError) as err:
        snap(config, pg, tmp_path, end=dt.date(2025, 6, 30))
    text = str(err.value)
    assert "connection 'churn_db': no rows in the window 2025-06-24..2025-06-30; nothing was written" in text
    assert 'FROM "churn"' in text and "start=2025-06-24" in text
    assert not (tmp_path / "snapshots").exists()


def test_text_in_a_numeric_feature_names_the_column_values_and_query(pg, tmp_path):
    for fetch in ("copy", "cursor"):
        with pytest.raises(DataSourceError) as err:
            snap(sql_config(table="sales.churn"), pg, tmp_path, fetch=fetch)
        text = str(err.value)
        assert "connection 'churn_db', query SELECT" in text and '"sales"."churn"' in text
        assert "column 'monthly_charges' is a numeric feature" in text and "are not numbers, e.g. 'n/a'" in text
    assert not (tmp_path / "snapshots").exists()


def test_a_column_that_is_not_there_is_named_before_any_row_is_fetched(pg, tmp_path):
    config = sql_config(query="SELECT customer_id, event_date FROM churn WHERE event_date <= %(end)s", window_days=None)
    with pytest.raises(DataSourceError, match=r"the result lacks column\(s\) 'tenure_months' \(is a numeric feature\)"):
        snap(config, pg, tmp_path)


def test_a_table_that_does_not_exist_is_named_with_the_connection(pg, tmp_path):
    with pytest.raises(DataSourceError) as err:
        snap(sql_config(table="public.churn_archive"), pg, tmp_path)
    text = str(err.value)
    assert "connection 'churn_db'" in text and '"public"."churn_archive"' in text
    assert 'relation "public.churn_archive" does not exist' in text and "fix source.query or source.table" in text
    assert not (tmp_path / "snapshots").exists()


@pytest.mark.parametrize("fetch", ["copy", "cursor"])
def test_sql_in_a_window_value_is_bound_as_data_and_the_table_stays(pg, fetch):
    from airflow_mlops.core.data.sql_fetch import fetch as fetch_rows

    hostile = "2026-01-28'; DROP TABLE churn; --"
    statement = SqlStatement("SELECT customer_id FROM churn WHERE customer_id = %(end)s", {"end": hostile})  # type: ignore[dict-item]
    fetched = fetch_rows(
        database(pg, fetch=fetch), statement, {}, {}, chunk_rows=100, where="test", check_names=lambda names: None
    )
    assert sum(t.num_rows for t in fetched.tables) == 0  # compared as a value: no customer has that id
    assert pg.execute("SELECT count(*) FROM churn") == [(DAYS * ROWS,)]


@pytest.mark.parametrize(("fetch", "autocommit"), [("copy", False), ("cursor", False), ("cursor", True)])
def test_a_source_session_is_read_only(pg, fetch, autocommit):
    from airflow_mlops.core.data.sql_fetch import fetch as fetch_rows

    pg.execute("CREATE SEQUENCE IF NOT EXISTS ids")
    writer = SqlStatement("SELECT nextval('ids') AS n")  # a function that writes
    source = SqlDatabase("churn_db", lambda: pg.connect(autocommit=autocommit), fetch=fetch)
    with pytest.raises(DataSourceError, match=r"test: the database refused the query \(cannot execute nextval"):
        fetch_rows(source, writer, {}, {}, chunk_rows=10, where="test", check_names=print)
    assert pg.execute("SELECT is_called FROM ids") == [(False,)]


def test_credentials_refused_name_the_connection_never_the_password(pg, tmp_path, monkeypatch, caplog, airflow_db):
    from airflow_mlops.hooks.sql import sql_database

    password = "Pw-" + secrets.token_hex(8)
    role = pg.role(f"{pg.name}_nologin", password, login=False)
    monkeypatch.setenv("AIRFLOW_CONN_CHURN_DB", pg.airflow_connection(login=role, password=password))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DataSourceError) as err:
        take_snapshot(
            sql_config(table="churn"),
            window_end=END,
            snapshot_root=tmp_path / "snapshots",
            database=sql_database("churn_db"),
        )
    text = str(err.value)
    assert "connection 'churn_db': the database refused it (" in text
    assert f'role "{role}" is not permitted to log in' in text and "airflow connections get churn_db" in text
    assert password not in text and password not in caplog.text
    assert not (tmp_path / "snapshots").exists()


def test_a_connection_id_that_does_not_exist_says_how_to_create_it(airflow_db):
    from airflow_mlops.hooks.sql import sql_database

    with pytest.raises(DataSourceError) as err:
        sql_database("churn_warehouse")
    text = str(err.value)
    assert "source.conn_id 'churn_warehouse': no Airflow connection has this id" in text
    assert "airflow connections add churn_warehouse --conn-uri 'postgresql://" in text
    assert "AIRFLOW_CONN_CHURN_WAREHOUSE" in text


def test_a_connection_that_is_not_a_database_is_refused(monkeypatch, airflow_db):
    from airflow_mlops.hooks.sql import sql_database

    monkeypatch.setenv("AIRFLOW_CONN_CHURN_DB", '{"conn_type": "http", "host": "example.com"}')
    with pytest.raises(DataSourceError, match=r"source\.conn_id 'churn_db': its type 'http' .* is not a SQL database"):
        sql_database("churn_db")


def test_an_unreachable_database_is_retried_not_failed(tmp_path):
    import psycopg

    from airflow_mlops.core.errors import SourceUnavailableError

    closed = SqlDatabase("churn_db", lambda: psycopg.connect("host=127.0.0.1 port=1 user=postgres connect_timeout=2"))
    with pytest.raises(SourceUnavailableError, match=r"connection 'churn_db': the database cannot be reached"):
        take_snapshot(sql_config(table="churn"), window_end=END, snapshot_root=tmp_path, database=closed)


@pytest.fixture(scope="module")
def password_server():
    """A private PostgreSQL cluster (initdb) on a free loopback port that checks passwords (scram-sha-256): the
    shared server trusts loopback, so only this one can refuse a wrong password. Skipped without initdb."""
    import os
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from conftest import free_port

    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    initdb = str(bins[-1]) if bins else shutil.which("initdb")
    if not initdb:
        pytest.skip("initdb is not installed: no private cluster to refuse a password")
    pg_ctl = str(Path(initdb).with_name("pg_ctl"))
    folder = Path(tempfile.mkdtemp(prefix="mlops-pg-scram-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    good = "Good-" + secrets.token_hex(8)
    (folder / "pw").write_text(good)
    if as_user:
        shutil.chown(folder / "pw", "postgres")
    port = free_port()
    data, log = folder / "data", folder / "log"
    try:
        run = {"check": True, "capture_output": True, "timeout": 120}
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "-A", "scram-sha-256",
                        f"--pwfile={folder / 'pw'}"], **run)  # fmt: skip
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"], **run)
    except (subprocess.SubprocessError, OSError, LookupError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"no private cluster: {exc}")
    try:
        yield {"port": port, "password": good}
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_wrong_password_is_refused_naming_the_connection_never_the_password(
    password_server, tmp_path, monkeypatch, caplog, airflow_db
):
    import json

    from airflow_mlops.hooks.sql import sql_database

    wrong = "Wrong-" + secrets.token_hex(8)
    conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": password_server["port"], "login": "postgres"}
    monkeypatch.setenv("AIRFLOW_CONN_CHURN_DB", json.dumps({**conn, "password": wrong, "schema": "postgres"}))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DataSourceError) as err:
        take_snapshot(
            sql_config(table="churn"),
            window_end=END,
            snapshot_root=tmp_path / "snap",
            database=sql_database("churn_db"),
        )
    text = str(err.value)
    assert 'password authentication failed for user "postgres"' in text
    assert "connection 'churn_db': the database refused it" in text
    assert wrong not in text and wrong not in caplog.text and password_server["password"] not in caplog.text
    assert not (tmp_path / "snap").exists()


def test_a_source_param_still_reads_a_file_for_a_sql_pipeline(tmp_path):
    """A run's `source` param names a file: it is read as a file source (confined to the data roots), no database."""
    path = tmp_path / "churn_export.csv"
    churn_days(churn_stream, FIRST, DAYS, 20).to_csv(path, index=False)
    summary = take_snapshot(sql_config(table="churn"), source=str(path), window_end=END, snapshot_root=tmp_path / "s")
    assert summary["rows"] == DAYS * 20 and summary["files"] == 1 and "sql" not in summary


def test_declared_dtypes_win_and_the_digest_still_describes_the_file(pg, tmp_path):
    config = sql_config(table="churn", dtypes={"support_calls": "int", "region": "string"})
    summary = snap(config, pg, tmp_path)
    frame = read_snapshot(summary["uri"])
    assert str(frame["support_calls"].dtype) == "Int64" and str(frame["region"].dtype) == "str"
    assert content_digest(frame, ordered=False) == summary["digest"]
