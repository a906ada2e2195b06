"""An Airflow connection id -> the database a SQL source reads (``core.data.sql.SqlDatabase``).

The connection's own hook (``Connection.get_hook()``: a common-sql ``DbApiHook`` such as ``PostgresHook``) makes
each DB-API connection, so any database with an Airflow SQL provider works and its credentials stay in Airflow:
core gets a function that connects, the connection id to name in messages, and the password only to scrub it from
a driver's message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core.errors import DataSourceError

if TYPE_CHECKING:
    from airflow_mlops.core.data.sql import SqlDatabase

#: Connection types whose SQL quotes identifiers with backticks.
BACKTICK_TYPES = ("mysql", "mariadb", "databricks", "spark", "hive_cli", "hiveserver2")
EXAMPLE_URI = "postgresql://LOGIN:PASSWORD@HOST:5432/DATABASE"


def sql_database(conn_id: str) -> SqlDatabase:
    """The database of the Airflow connection `conn_id`; a DataSourceError naming it (and how to create it) when it is
    not defined, or when it is not a SQL database Airflow has a provider for."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from airflow_mlops.core.data.sql import SqlDatabase

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        env = "AIRFLOW_CONN_" + conn_id.upper()
        raise DataSourceError(
            f"source.conn_id {conn_id!r}: no Airflow connection has this id. Create it: "
            f"airflow connections add {conn_id} --conn-uri '{EXAMPLE_URI}' (or set {env}, or add it in the UI under "
            f"Admin > Connections), or fix source.conn_id"
        ) from None
    try:
        hook = conn.get_hook()
    except Exception as exc:  # an unknown conn_type, or its provider not installed
        raise DataSourceError(
            f"source.conn_id {conn_id!r}: Airflow has no hook for its connection type {conn.conn_type!r} ({exc}); "
            f"install the provider of that database (e.g. apache-airflow-providers-postgres) or fix the type"
        ) from None
    if not isinstance(hook, DbApiHook):
        raise DataSourceError(
            f"source.conn_id {conn_id!r}: its type {conn.conn_type!r} ({type(hook).__name__}) is not a SQL database; "
            f"point source.conn_id at a database connection (postgres, mysql, ...)"
        )
    quote = "`" if conn.conn_type in BACKTICK_TYPES else '"'
    return SqlDatabase(conn_id=conn_id, connect=hook.get_conn, secrets=(conn.password or "",), quote=quote)
