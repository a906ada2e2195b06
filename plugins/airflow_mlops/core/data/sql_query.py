"""The statement a SQL source runs: the config's query, or a SELECT of the config's columns from its table, with the
window as DB-API parameters (``%(start)s``, ``%(end)s``, ``%(after_end)s``) that the driver binds: no value is ever
formatted into the text. Light: no driver, no pandas."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_mlops.core.config.source_checks import query_parameters
from airflow_mlops.core.data.files import span
from airflow_mlops.core.errors import DataSourceError

if TYPE_CHECKING:
    from airflow_mlops.core.config import PipelineConfig

#: How much of a query an error message quotes.
MAX_QUOTED = 400


@dataclass(frozen=True)
class SqlStatement:
    """A SELECT in the DB-API pyformat style (a literal % written %%), the values of its placeholders, and the window
    it selects (start..end, either None when unbounded)."""

    text: str
    params: dict[str, dt.date] = field(default_factory=dict)
    start: dt.date | None = None
    end: dt.date | None = None

    def plain(self) -> str:
        """The text to run without parameters (a driver then leaves % alone): only when `params` is empty."""
        assert not self.params, "a statement with parameters is bound by the driver"
        return self.text.replace("%%", "%")

    def shown(self) -> str:
        """The statement and its window for a message or the snapshot's record: the text as written (long ones cut),
        then the values bound to its parameters."""
        text = " ".join(self.text.split())
        if len(text) > MAX_QUOTED:
            text = text[: MAX_QUOTED - 3] + "..."
        bound = ", ".join(f"{k}={v.isoformat()}" for k, v in self.params.items())
        return f"{text} [{bound}]" if bound else text

    def window(self) -> str:
        """The window as ``start..end`` (``...`` for an open side)."""
        return span(self.start, self.end)


def select_columns(config: PipelineConfig) -> list[str]:
    """The columns a table source selects, in snapshot order: ids, the date, the features, the target, then any other
    column named in source.dtypes."""
    src = config.source
    named = [*src.id_columns, src.date_column, *config.feature_names, config.target, *src.dtypes]
    return list(dict.fromkeys(c for c in named if c))


def quote_identifier(name: str, quote: str = '"') -> str:
    """`name` as one quoted SQL identifier (the quote character doubled inside; ``%`` doubled for pyformat)."""
    return quote + name.replace(quote, quote * 2).replace("%", "%%") + quote


def quote_table(table: str, quote: str = '"') -> str:
    """``schema.table`` with each part quoted."""
    return ".".join(quote_identifier(part.strip(), quote) for part in table.split("."))


def window_params(start: dt.date | None, end: dt.date | None) -> dict[str, dt.date]:
    """The window's parameters that have a value: start (with window_days), end and after_end (with a window end)."""
    params: dict[str, dt.date] = {}
    if start is not None:
        params["start"] = start
    if end is not None:
        params["end"] = end
        params["after_end"] = end + dt.timedelta(days=1)
    return params


def build_statement(
    config: PipelineConfig, start: dt.date | None, end: dt.date | None, *, quote: str = '"'
) -> SqlStatement:
    """The source's statement for the window start..end (either may be None: no bound on that side)."""
    src = config.source
    values = window_params(start, end)
    if src.table is not None:
        text, params = _table_query(config, values, quote)
        return SqlStatement(text, params, start, end)
    text = str(src.query).strip()
    while text.endswith(";"):  # COPY (...) and a subquery take one statement without its terminator
        text = text[:-1].rstrip()
    used = query_parameters(text)
    unbound = [n for n in used if n not in values]
    if unbound:
        listed = ", ".join(f"%({n})s" for n in unbound)
        raise DataSourceError(
            f"{config.path}: source.query uses {listed}, but this snapshot has no window end to bind; "
            f"pass window_end (the snapshot task passes the run's day)"
        )
    return SqlStatement(text, {n: values[n] for n in used}, start, end)


def _table_query(config: PipelineConfig, values: dict[str, dt.date], quote: str) -> tuple[str, dict[str, dt.date]]:
    """SELECT the config's columns FROM the table, WHERE the date column lies in the window (half-open on the day
    after the end, so a timestamp column keeps the last day's rows)."""
    src = config.source
    columns = ", ".join(quote_identifier(c, quote) for c in select_columns(config))
    text = f"SELECT {columns} FROM {quote_table(str(src.table), quote)}"
    params: dict[str, dt.date] = {}
    if src.date_column and "after_end" in values:
        date = quote_identifier(src.date_column, quote)
        conditions = []
        if "start" in values:
            conditions.append(f"{date} >= %(start)s")
            params["start"] = values["start"]
        conditions.append(f"{date} < %(after_end)s")
        params["after_end"] = values["after_end"]
        text += " WHERE " + " AND ".join(conditions)
    return text, params
