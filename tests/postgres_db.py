"""A throwaway database on the PostgreSQL of the loopback (127.0.0.1:5432, trust for `postgres`): created for a test
module, filled with the churn stream's days in a typed table, dropped afterwards (with any role it created)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import uuid

SERVER = "host=127.0.0.1 port=5432 user=postgres"
#: The churn stream's columns with the types a warehouse gives them.
CHURN_TABLE = """CREATE TABLE {name} (
    customer_id text NOT NULL, event_date date NOT NULL, tenure_months integer, monthly_charges numeric(8, 2),
    support_calls integer, data_usage_gb double precision, contract text, payment_method text, region text,
    churned smallint)"""
CHURN_COLUMNS = [
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


class Database:
    """One database of the loopback server, named after the test module (and the process, for parallel runs)."""

    def __init__(self, prefix: str) -> None:
        self.name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.roles: list[str] = []
        self._admin("CREATE DATABASE {}")

    def dsn(self, **extra: str) -> str:
        words = " ".join(f"{k}={v}" for k, v in extra.items())
        return f"{SERVER} dbname={self.name} {words}".strip()

    def connect(self, **kwargs):
        import psycopg

        return psycopg.connect(self.dsn(), **kwargs)

    def execute(self, sql: str, params=None) -> list:
        with self.connect() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def load_churn(self, table: str, frame) -> None:
        """`frame` (the churn stream's columns) into a new typed `table`."""
        frame = frame.astype({"tenure_months": "int64", "churned": "int64"})
        text = io.StringIO()
        frame[CHURN_COLUMNS].to_csv(text, index=False, header=False)
        with self.connect() as conn:
            conn.execute(CHURN_TABLE.format(name=table))
            with conn.cursor().copy(f"COPY {table} FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(text.getvalue())

    def role(self, name: str, password: str, *, login: bool) -> str:
        """A role of the server (dropped with the database)."""
        self._admin(f"CREATE ROLE {name} {'LOGIN' if login else 'NOLOGIN'} PASSWORD '{password}'", fmt=False)
        self.roles.append(name)
        return name

    def airflow_connection(self, *, login: str = "postgres", password: str | None = None) -> str:
        """This database as an Airflow connection (JSON, for AIRFLOW_CONN_<ID>)."""
        conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": login, "schema": self.name}
        if password is not None:
            conn["password"] = password
        return json.dumps(conn)

    def drop(self) -> None:
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        for role in self.roles:
            self._admin(f"DROP ROLE IF EXISTS {role}", fmt=False)

    def _admin(self, sql: str, *, fmt: bool = True) -> None:
        import psycopg

        with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as admin:
            admin.execute(sql.format(self.name) if fmt else sql)


def churn_days(stream, first: dt.date, days: int, rows: int):
    """`days` of the churn stream from `first`, `rows` a day, as one frame."""
    import pandas as pd

    return pd.concat(
        [stream.daily_batch(first + dt.timedelta(days=i), rows=rows) for i in range(days)], ignore_index=True
    )
