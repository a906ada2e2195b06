"""The types a SQL source's columns get in the snapshot: from the config's declarations, not the driver's guess.

Each column has a role (``roles``): a numeric feature, a regression target or a column declared float/int is
``number`` (float64); a categorical feature, an id column or a column declared string is ``text``; the date column
is ``date`` (a date; a timestamp column keeps its time); a classification target is ``label`` (its values as the
database has them: integers, text or booleans); any other column keeps the database's type. ``conform`` turns
one fetched column (an Arrow array of the database's type) into its role's type; a value that does not fit is a
DataSourceError naming the column, a few of the values and the query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core.data.checks import EXAMPLES
from airflow_mlops.core.errors import DataSourceError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from airflow_mlops.core.config import PipelineConfig

NUMBER, TEXT, DATE, LABEL, BOOL = "number", "text", "date", "label", "bool"
_WHAT = {
    NUMBER: "numbers",
    TEXT: "text",
    DATE: "dates",
    LABEL: "labels",
    BOOL: "true/false",
}


def roles(config: PipelineConfig) -> dict[str, str]:
    """Column -> role, for every column the config names (source.dtypes first: a declaration beats a role)."""
    src = config.source
    out: dict[str, str] = {}
    for column, dtype in src.dtypes.items():
        out[column] = {"float": NUMBER, "int": NUMBER, "string": TEXT, "bool": BOOL}[dtype]
    if src.date_column:
        out.setdefault(src.date_column, DATE)
    for column in src.id_columns:
        out.setdefault(column, TEXT)
    for feature in config.features:
        out.setdefault(feature.name, NUMBER if feature.type == "numeric" else TEXT)
    out.setdefault(config.target, NUMBER if config.task == "regression" else LABEL)
    return out


def why(config: PipelineConfig, column: str) -> str:
    """Why `column` has its role, in the config's words."""
    src = config.source
    if column in src.dtypes:
        return f"is declared {src.dtypes[column]} in source.dtypes"
    if column == src.date_column:
        return "is source.date_column"
    if column in src.id_columns:
        return "is an id column"
    if column == config.target:
        return f"is the target of a {config.task.replace('_', ' ')}"
    kind = next((f.type for f in config.features if f.name == column), "")
    return f"is a {kind} feature"


def conform(array: pa.Array, role: str | None, column: str, because: str, where: str) -> pa.Array:
    """`array` (as fetched) as its role's type; `because` says why it has the role, `where` names the query."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_null(kind):
        target = {NUMBER: pa.float64(), TEXT: pa.string(), DATE: pa.date32()}.get(role or "")
        return array.cast(target) if target is not None else array
    if pa.types.is_decimal(kind):  # through its exact text: Arrow's decimal -> float cast is off in the last digit
        array, kind = pc.cast(pc.cast(array, pa.string()), pa.float64()), pa.float64()
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if role == NUMBER:
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            return pc.cast(array, pa.float64())
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return _text_as_numbers(array, column, because, where)
        raise _unfit(column, because, where, f"the database returns {kind} values, not numbers", array)
    if role == TEXT:
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return array
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            raise _unfit(column, because, where, "the database returns bytes, not text", array)
        return pc.cast(array, pa.string())
    if role == DATE:
        return _as_dates(array, column, because, where)
    if role == LABEL and pa.types.is_integer(kind):
        return pc.cast(array, pa.int64())
    return array


def _text_as_numbers(array: pa.Array, column: str, because: str, where: str) -> pa.Array:
    import pandas as pd
    import pyarrow as pa

    text = array.to_pandas()
    numbers = pd.to_numeric(text.str.strip(), errors="coerce")
    bad = text[text.notna() & numbers.isna()]
    if len(bad):
        raise _unfit(column, because, where, f"{len(bad)} of the {len(text)} values just fetched are not numbers", bad)
    return pa.array(numbers.astype("float64"), pa.float64(), from_pandas=True)


def _as_dates(array: pa.Array, column: str, because: str, where: str) -> pa.Array:
    """A date column as dates (timestamps keep their time); ISO text is parsed, anything else is an error."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_date32(kind) or pa.types.is_timestamp(kind):
        return array
    if pa.types.is_date64(kind):
        return pc.cast(array, pa.date32())
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise _unfit(column, because, where, f"the database returns {kind} values, not dates", array)
    try:
        return pc.cast(array, pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    text = array.to_pandas()
    stamps = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    bad = text[text.notna() & stamps.isna()]
    if len(bad):
        raise _unfit(
            column, because, where, f"{len(bad)} of the {len(text)} values just fetched are not ISO dates", bad
        )
    return pa.array(stamps, pa.timestamp("us", "UTC"), from_pandas=True)


def _unfit(column: str, because: str, where: str, problem: str, values: pa.Array | pd.Series) -> DataSourceError:
    """The error for a column whose values do not fit its role, with a few of them."""
    return DataSourceError(
        f"{where}: column {column!r} {because}, but {problem}, e.g. {examples(values)}. Fix the data, cast the column "
        f"in the query, or change the config (source.dtypes, the feature's type)"
    )


def examples(values: pa.Array | pd.Series) -> str:
    """Up to EXAMPLES distinct non-missing values of an Arrow array or a pandas Series, repr'd."""
    import pyarrow as pa

    items = values.to_pylist() if isinstance(values, pa.Array) else values.tolist()
    distinct = list(dict.fromkeys(v for v in items if v is not None))
    return ", ".join(repr(v) for v in distinct[:EXAMPLES]) + (", ..." if len(distinct) > EXAMPLES else "")
