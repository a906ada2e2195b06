"""DataSnapshotOperator: the training window -> an immutable Parquet snapshot and its digest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.base import MlopsBaseOperator, fail_on_bad_input, requested_window, task_identity

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_mlops.core.payloads import SnapshotSummary


class DataSnapshotOperator(MlopsBaseOperator):
    """Copy the source window into `<snapshots>/<pipeline>/<digest>.parquet`.

    The content digest is the data version. Same window, same digest, same file: a retry
    re-uses the snapshot it already wrote. Returns a small dict (uri, digest, rows, ...).

    :param config_path: pipeline config YAML (templated)
    :param source: overrides the config's source path: a file or a folder of daily files, or an object-store URI
        (``s3://CONN_ID@bucket/prefix/``, read with the credentials of that Airflow connection) (templated)
    :param window_end: last day of the window, YYYY-MM-DD (templated); default: the day a triggering
        Asset event names (a drift retrain request's ``as_of``, whose ``source`` is used too), else
        the run's logical date
    :param allowed_roots: folders the source must live in (templated); default: the config's
        ``source.allowed_roots`` plus ``$AIRFLOW_MLOPS_DATA_ROOTS``. A path outside them (after following
        symlinks and ``..``), inside the state folder ``$AIRFLOW_MLOPS_HOME``, or to a file that is not a
        CSV/Parquet data file is refused unread. URI entries (``s3://CONN_ID@bucket/prefix``) are the prefixes an
        object-store source must lie under (same connection, bucket and whole key segments).

    A SQL source (``source.kind: sql``; a ``source`` param names a file read instead) is read through the Airflow
    connection ``source.conn_id`` (hooks.sql): a connection id that is not defined, or a database refusing the login
    or the query, fails the task for good; an unreachable database is retried.
    """

    template_fields: Sequence[str] = ("config_path", "source", "window_end", "allowed_roots")
    ui_color = "#f4ecd8"

    def __init__(
        self,
        *,
        config_path: str,
        source: str | None = None,
        window_end: str | None = None,
        allowed_roots: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config_path=config_path, **kwargs)
        self.source = source
        self.window_end = window_end
        self.allowed_roots = allowed_roots

    def execute(self, context: Context) -> SnapshotSummary:
        from pathlib import Path

        from airflow_mlops.core.data import take_snapshot
        from airflow_mlops.core.paths import file_uri_path, is_object_uri, is_uri
        from airflow_mlops.hooks.objects import object_filesystem

        config = self.load_config()
        request = requested_window(context) if not self.window_end else {}
        if request:
            self.log.info(
                "Triggered by a request for the window ending %s (source %s)",
                request["as_of"],
                request["source"] or "from the config",
            )
        day = self.window_end or request.get("as_of")
        source = self.source or request.get("source") or None
        allowed = [str(r) for r in self.allowed_roots or ()]
        with fail_on_bad_input():
            local = [file_uri_path(r) if is_uri(r) else Path(r) for r in allowed if not is_object_uri(r)]
            roots = local if allowed else None
            prefixes = [r for r in allowed if is_object_uri(r)] if allowed else None
            window_end = _as_of(day) if day else _run_day(context)
            database = None
            if config.source.kind == "sql" and not source:  # a `source` param names a file to read instead
                from airflow_mlops.hooks.sql import sql_database

                database = sql_database(str(config.source.conn_id))
            snapshot = take_snapshot(
                config,
                source=source,
                window_end=window_end,
                allowed_roots=roots,
                writer=task_identity(context),
                open_store=object_filesystem,
                allowed_prefixes=prefixes,
                database=database,
            )
        if "sql" in snapshot:
            sql = snapshot["sql"]
            self.log.info(
                "Snapshot of %s (fetched by %s): %d rows, window %s..%s -> %s (%s); query: %s; parameters: %s",
                snapshot["source"],
                sql["fetch"],
                snapshot["rows"],
                snapshot["window_start"],
                snapshot["window_end"],
                snapshot["uri"],
                snapshot["digest"],
                sql["query"],
                sql["params"],
            )
            return snapshot
        self.log.info(
            "Snapshot of %s: %d rows from %d file(s), window %s..%s -> %s (%s)",
            snapshot["source"],
            snapshot["rows"],
            snapshot["files"],
            snapshot["window_start"],
            snapshot["window_end"],
            snapshot["uri"],
            snapshot["digest"],
        )
        return snapshot


def _as_of(day: Any) -> Any:
    """The `as_of` param as a date; a DataSourceError naming it (not a retry) when it is not one."""
    import datetime as dt

    from airflow_mlops.core.errors import DataSourceError

    try:
        return dt.date.fromisoformat(str(day).strip())
    except ValueError:
        shown = repr(day if len(str(day)) <= 40 else str(day)[:37] + "...")
        raise DataSourceError(f"param as_of={shown} is not a date: use YYYY-MM-DD, e.g. 2026-02-12") from None


def _run_day(context: Context):
    """The run's logical date, or for a manual/asset-triggered run without one, when it ran."""
    when = context.get("logical_date") or context["dag_run"].run_after
    return when.date()
