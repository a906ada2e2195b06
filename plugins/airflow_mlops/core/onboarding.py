"""`airflow-mlops init`: profile a sample file, decide a starter pipeline, write its config and its suite.

Three steps on plain data: ``profile_sample`` (what each column of the sample holds), ``decide`` (the
choices a person would make, each with its reason), then ``render_config`` (YAML text, the reasons as
comments) and ``build_suite`` (a GX 1.x suite whose rules carry ``meta.notes``). ``init_pipeline``
checks that the config loads (``load_config``), that the suite loads and that the sample passes it,
before either file is written; it never overwrites a file.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from airflow_mlops.core.config import PIPELINE_NAME, TASKS, load_config
from airflow_mlops.core.errors import ConfigError, DataSourceError, MlopsError, SplitError

if TYPE_CHECKING:
    import pandas as pd

MAX_SET_VALUES = 20  # at most this many distinct values: a value-set rule (and a class count for a target)
MAX_MIN_TEST_ROWS = 500  # the config's default min_test_rows
HIGH_CARDINALITY = 50  # a categorical feature with more distinct values deserves a look
NUMERIC_TYPES = ["int", "int64", "int32", "float", "float64", "float32", "Int64Dtype", "Float64Dtype"]
ISO_DAY = r"^\d{4}-\d{2}-\d{2}"
#: id, ID, customer_id, order-id, customerID, customerId, id_customer
ID_NAME = re.compile(r"(?i:id|.*[_\-\s.]id|id[_\-\s].*)|.*[a-z0-9](?:ID|Id)")
#: the names a row number gets (pandas writes its index as "Unnamed: 0")
ROW_NUMBER_NAME = re.compile(r"(?i)unnamed: ?\d+|index|row|row_?(?:number|num|no|nr)|#|")
DATE_NAME = re.compile(r"(?i).*(date|day|time|timestamp|_at|_on)$")
POSITIVE_LABELS = ("yes", "true", "1")
CANDIDATES = {
    "classification": [
        ("logistic_regression", "sklearn.linear_model.LogisticRegression", "{max_iter: 1000}"),
        ("hist_gradient_boosting", "sklearn.ensemble.HistGradientBoostingClassifier",
         "{max_iter: 200, learning_rate: 0.05}"),
    ],
    "regression": [
        ("ridge", "sklearn.linear_model.Ridge", "{alpha: 1.0}"),
        ("hist_gradient_boosting", "sklearn.ensemble.HistGradientBoostingRegressor",
         "{max_iter: 200, learning_rate: 0.05}"),
    ],
}


# --------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class Column:
    """What one column of the sample holds."""

    name: str
    kind: str  # number | text | bool | datetime | empty
    rows: int
    nulls: int
    distinct: int
    values: tuple[Any, ...] = ()  # the distinct values, sorted, when there are at most MAX_SET_VALUES
    minimum: float | None = None
    maximum: float | None = None
    whole: bool = False  # numbers: every value a whole number
    blanks: tuple[str, ...] = ()  # blank strings read as missing (a numeric column exported with " ")
    dates: bool = False  # every value is an ISO date (or the column is a datetime)
    iso_text: bool = False  # text whose every value starts YYYY-MM-DD
    days: tuple[str, ...] = ()  # dates: the distinct days, sorted (ISO)

    @property
    def unique(self) -> bool:
        return self.nulls == 0 and self.distinct == self.rows

    @property
    def row_number(self) -> bool:
        """A row number's name, and whole numbers one per row with no gap (0..n-1, 1..n): not a measurement."""
        return (bool(ROW_NUMBER_NAME.fullmatch(self.name)) and self.kind == "number" and self.whole and self.unique
                and self.minimum is not None and self.maximum is not None
                and self.maximum - self.minimum == self.rows - 1)


@dataclass
class Sample:
    """The sample as the pipeline will read it (blank strings missing), and its columns' profiles."""

    path: Path
    format: str
    frame: pd.DataFrame
    columns: dict[str, Column]

    @property
    def rows(self) -> int:
        return len(self.frame)


def read_sample(path: Path) -> tuple[pd.DataFrame, str]:
    """The sample file as a frame and its format (csv | parquet), through the project's own readers."""
    from airflow_mlops.core import data
    from airflow_mlops.core.paths import check_path_text

    check_path_text(str(path), "sample file")
    if not path.exists():
        raise DataSourceError(f"{path}: sample file not found; give the path of a CSV or Parquet file of the data")
    if not path.is_file():
        raise DataSourceError(f"{path}: not a file; give one sample file (e.g. one day's export), not a folder")
    fmt = {".csv": "csv", ".parquet": "parquet"}.get(path.suffix.lower())
    if fmt is None:
        raise DataSourceError(
            f"{path}: unknown format {path.suffix or '(no extension)'!r}; init reads .csv (comma-separated UTF-8) "
            f"and .parquet files: export the sample as one of them"
        )
    if path.stat().st_size == 0:
        raise DataSourceError(f"{path}: file is empty (0 bytes); give a sample with a header and data rows")
    frame = data._read_csv(path) if fmt == "csv" else data._read_parquet(path)
    frame.columns = [str(c) for c in frame.columns]
    return frame, fmt


def profile_sample(path: Path) -> Sample:
    """Read the sample and profile every column; blank strings in otherwise numeric columns become missing."""
    from airflow_mlops.core import data

    frame, fmt = read_sample(path)
    if frame.shape[1] < 2:
        raise DataSourceError(
            f"{path}: the sample has a single column {frame.columns[0]!r}; a pipeline needs a target column and "
            f"at least one feature: export more columns (CSV must be comma-separated)"
        )
    frame = frame.copy()
    columns = {}
    for name in frame.columns:
        values, blanks = _blanks_as_missing(frame[name])
        if blanks:
            frame[name] = values
        columns[name] = _profile_column(name, frame[name], blanks)
    data._check_finite(frame, path)
    return Sample(path=path, format=fmt, frame=frame, columns=columns)


def _blanks_as_missing(col: pd.Series) -> tuple[pd.Series, tuple[str, ...]]:
    """A text column of numbers and blank strings (" "): as numbers with the blanks missing, and the blanks."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col):
        return col, ()
    present = col.dropna()
    if not all(isinstance(v, str) for v in present):
        return col, ()
    blank = present.str.strip() == ""
    if not blank.any() or blank.all() or pd.to_numeric(present[~blank], errors="coerce").isna().any():
        return col, ()
    blanks = tuple(sorted(set(present[blank])))
    return pd.to_numeric(col.mask(col.isin(blanks)), errors="coerce").astype("float64"), blanks


def _profile_column(name: str, col: pd.Series, blanks: tuple[str, ...]) -> Column:
    import pandas as pd

    present = col.dropna()
    column = partial(Column, name=name, rows=len(col), nulls=len(col) - len(present),
                     distinct=int(present.nunique()), blanks=blanks)
    if present.empty:
        return column(kind="empty")
    values = tuple(sorted((_plain(v) for v in present.unique()), key=lambda v: (type(v).__name__, v)))
    values = values if len(values) <= MAX_SET_VALUES else ()
    if pd.api.types.is_bool_dtype(col):
        return column(kind="bool", values=values)
    if pd.api.types.is_datetime64_any_dtype(col):
        return column(kind="datetime", dates=True, days=_days(present))
    if pd.api.types.is_numeric_dtype(col):
        return column(kind="number", values=values, minimum=float(present.min()), maximum=float(present.max()),
                      whole=bool((present % 1 == 0).all()))
    text = present.astype(str)
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
    if parsed.notna().all() and text.str.contains(r"\d{4}|\d[-/]\d", regex=True).all():
        iso = bool(text.str.match(ISO_DAY).all())
        return column(kind="text", values=values, dates=True, iso_text=iso, days=_days(parsed))
    return column(kind="text", values=values)


def _days(dates: pd.Series) -> tuple[str, ...]:
    import pandas as pd

    parsed = pd.to_datetime(dates, errors="coerce", format="ISO8601")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return tuple(sorted({d.date().isoformat() for d in parsed.dropna().dt.normalize()}))


def _plain(value: Any) -> Any:
    """A numpy scalar as the plain Python value; whole floats stay floats (a float column's set is floats)."""
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------- decide


@dataclass
class Plan:
    """Every choice of the starter pipeline, each with the reason shown to the person reviewing it."""

    name: str
    sample: Sample
    source_path: str  # relative to the project root when under it, else absolute
    allowed_root: str
    target: str
    task: str
    task_note: str
    features: list[tuple[str, str, str]]  # (name, numeric | categorical, why)
    date_column: str | None = None
    date_note: str = ""
    id_columns: dict[str, str] = field(default_factory=dict)  # column -> why
    left_out: dict[str, str] = field(default_factory=dict)  # column -> why it is no feature
    positive_class: Any = None
    positive_note: str = ""
    na_values: tuple[str, ...] = ()
    dtypes: dict[str, str] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    split_note: str = ""
    test_rows: int = 0  # the rows the sample's test role holds under this split
    min_test_rows: int = MAX_MIN_TEST_ROWS
    primary: str = ""
    others: tuple[str, ...] = ()
    margin: float = 0.0
    margin_note: str = ""
    review: list[str] = field(default_factory=list)

    @property
    def classification(self) -> bool:
        return self.task != "regression"


def decide(
    sample: Sample,
    name: str,
    target: str,
    *,
    project_root: Path,
    task: str | None = None,
    date_column: str | None = None,
) -> Plan:
    """The starter pipeline for `sample`: task, date and id columns, typed features, split, metrics, gate."""
    cols = sample.columns
    where = str(sample.path)
    if target not in cols:
        raise ConfigError(f"{where}: target column {target!r} is not in the sample; its columns: {', '.join(cols)}")
    label = cols[target]
    if label.nulls:
        raise ConfigError(
            f"{where}: target column {target!r} is missing in {label.nulls} of {label.rows} rows; the pipeline trains "
            f"on labelled rows only: give a sample whose rows all have a {target!r}"
        )
    if label.distinct < 2:
        raise ConfigError(
            f"{where}: target column {target!r} has a single value ({_plain(sample.frame[target].iloc[0])!r}) in all "
            f"{label.rows} rows: there is nothing to learn; give a sample with several outcomes or another --target"
        )
    task, task_note = _task(label, task, where)
    source_path, allowed_root = _location(sample.path, project_root)
    plan = Plan(name=name, sample=sample, source_path=source_path, allowed_root=allowed_root, target=target,
                task=task, task_note=task_note, features=[])
    plan.review.append(f"task: {task} ({task_note})")
    plan.date_column, plan.date_note = _date_column(sample, date_column, target)
    if plan.date_column:
        plan.review.append(f"date column: {plan.date_column} ({plan.date_note})")
        if cols[plan.date_column].nulls:
            plan.review.append(f"{plan.date_column} is missing in {cols[plan.date_column].nulls} rows: a snapshot "
                               "refuses rows without a date; fix the export")
    plan.id_columns = _id_columns(sample, {target, plan.date_column})
    for column, why in plan.id_columns.items():
        plan.review.append(f"id column (kept for joins, never a feature): {column} ({why})")
    _features(plan)
    if task == "binary_classification":
        plan.positive_class, plan.positive_note = _positive_class(sample, target)
        plan.review.append(f"positive class: {plan.positive_note}")
    blank = {c.name: c.blanks for c in cols.values() if c.blanks}
    plan.na_values = tuple(sorted({b for bs in blank.values() for b in bs}))
    plan.dtypes = dict.fromkeys(blank, "float")
    if blank:
        shown = ", ".join(f"{col} ({cols[col].nulls} missing)" for col in blank)
        plan.review.append(f"blank strings {list(plan.na_values)} read as missing (source.na_values) in: {shown}")
    _split(plan)
    _metrics(plan)
    if allowed_root == ".":
        plan.review.append("the sample lies in the project root itself, so source.allowed_roots is '.': move the "
                           "data under a folder such as data/ and narrow allowed_roots to it")
    plan.review.append(f"source.path is the sample file {source_path}: point it at the real export (a file, or a "
                       f"folder of daily files {name}_YYYY-MM-DD.{sample.format})")
    return plan


def _task(label: Column, given: str | None, where: str) -> tuple[str, str]:
    """The task (given, or inferred from the target's values) and why."""
    column = repr(label.name)
    if label.kind == "datetime" or label.dates:
        raise ConfigError(f"{where}: target column {column} holds dates; a model predicts a class or a number: "
                          f"choose another --target")
    values = f"{label.distinct} distinct value(s) in {label.rows} rows"
    if given is not None:
        if given not in TASKS:
            raise ConfigError(f"--task {given!r} is not one of {', '.join(TASKS)}")
        if given == "binary_classification" and label.distinct != 2:
            raise ConfigError(f"{where}: target column {column} has {values}; binary_classification needs exactly 2: "
                              f"use multiclass_classification{' or regression' if label.kind == 'number' else ''}")
        if given == "regression" and label.kind != "number":
            raise ConfigError(f"{where}: target column {column} holds {label.kind} values, e.g. "
                              f"{_examples(label)}; regression needs numbers: use a classification task")
        return given, f"given (--task); the target has {values}"
    if label.distinct == 2:
        return "binary_classification", f"inferred: 2 distinct values {_examples(label)} in {label.rows} rows"
    if label.kind in ("text", "bool"):
        return "multiclass_classification", f"inferred: {label.distinct} distinct text values in {label.rows} rows"
    if label.whole and label.distinct <= MAX_SET_VALUES:
        return ("multiclass_classification",
                f"inferred: {label.distinct} distinct whole numbers (at most {MAX_SET_VALUES}) in {label.rows} rows: "
                f"classes; use --task regression if they are amounts")
    return "regression", f"inferred: {label.distinct} distinct numbers in {label.rows} rows"


def _location(path: Path, project_root: Path) -> tuple[str, str]:
    """source.path and the allowed root: relative to the project root when the sample is under it, else absolute."""
    real, root = path.resolve(), project_root.resolve()
    if real.is_relative_to(root):
        rel = real.relative_to(root)
        return rel.as_posix(), rel.parent.as_posix()
    return str(real), str(real.parent)


def _date_column(sample: Sample, given: str | None, target: str) -> tuple[str | None, str]:
    cols, where = sample.columns, str(sample.path)
    if given is not None:
        if given not in cols:
            raise ConfigError(f"{where}: --date-column {given!r} is not in the sample; its columns: {', '.join(cols)}")
        if given == target:
            raise ConfigError(f"{where}: --date-column {given!r} is the target; give the column that dates each row")
        column = cols[given]
        if not column.dates:
            raise ConfigError(
                f"{where}: --date-column {given!r} does not hold ISO dates (YYYY-MM-DD), e.g. {_examples(column)}; "
                f"the time split and the training window need them: fix the export or leave --date-column out"
            )
        return given, f"given (--date-column); {_span(column)}"
    found = [c for c in cols.values() if c.dates and c.name != target]
    if not found:
        return None, ""
    found.sort(key=lambda c: not DATE_NAME.fullmatch(c.name))
    column = found[0]
    others = f"; also dates, left out: {', '.join(c.name for c in found[1:])}" if found[1:] else ""
    how = "a datetime column" if column.kind == "datetime" else "every value is an ISO date"
    return column.name, f"recognised: {how}; {_span(column)}{others}"


def _span(column: Column) -> str:
    days = column.days
    return f"{len(days)} day(s), {days[0]}..{days[-1]}" if days else "no readable day"


def _id_columns(sample: Sample, exclude: set[str | None]) -> dict[str, str]:
    """Columns that identify rows: id-like names, unique text, row numbers."""
    out = {}
    for c in sample.columns.values():
        if c.name in exclude or c.kind not in ("number", "text") or c.dates:
            continue
        if ID_NAME.fullmatch(c.name):
            rows = f"unique in all {c.rows} rows" if c.unique else f"{c.distinct} distinct in {c.rows} rows (repeats)"
            out[c.name] = f"an id's name, {rows}"
        elif c.kind == "text" and c.unique:
            out[c.name] = f"text unique in all {c.rows} rows: an id (or free text), no use as a category"
        elif c.row_number:
            out[c.name] = f"whole numbers {_num(c.minimum)}..{_num(c.maximum)}, one per row: a row number"
    return out


def _features(plan: Plan) -> None:
    """Every other column is a feature, typed numeric or categorical, unless it cannot carry information."""
    skip = {plan.target, plan.date_column, *plan.id_columns}
    few = []
    for c in plan.sample.columns.values():
        if c.name in skip:
            continue
        missing = f", {c.nulls} missing" if c.nulls else ""
        if c.kind == "empty":
            plan.left_out[c.name] = f"every value is missing in the {c.rows} rows"
        elif c.dates:
            plan.left_out[c.name] = "dates; derive features from them upstream if they matter"
        elif c.distinct < 2:
            plan.left_out[c.name] = f"a single value ({_examples(c)}) in every row: carries no information"
        elif c.kind == "number" and c.distinct <= 2:
            few.append(c.name)
            plan.features.append((c.name, "categorical", f"{c.distinct} distinct values {_examples(c)} in {c.rows} "
                                  f"rows{missing}: a flag or a code, categorical"))
        elif c.kind == "number":
            blanks = "; blank strings read as missing" if c.blanks else ""
            counted = " (a count or a code?)" if c.whole and c.distinct <= 10 else ""
            plan.features.append((c.name, "numeric", f"{c.distinct} distinct numbers{counted}, "
                                  f"{_num(c.minimum)}..{_num(c.maximum)}{missing}{blanks}"))
        else:
            plan.features.append((c.name, "categorical", f"{c.distinct} distinct values in {c.rows} rows{missing}: "
                                  f"{'true/false' if c.kind == 'bool' else 'text'}, categorical"))
            if c.distinct > HIGH_CARDINALITY:
                plan.review.append(f"{c.name}: categorical with {c.distinct} distinct values: free text or an id? "
                                   f"leave it out of the features if so")
    if few:
        plan.review.append(f"typed categorical because of few values: {', '.join(few)}; make them numeric if they "
                           f"are amounts")
    for column, why in plan.left_out.items():
        plan.review.append(f"left out of the features: {column} ({why})")
    if not plan.features:
        raise ConfigError(
            f"{plan.sample.path}: no column is left to learn from besides the target {plan.target!r} "
            f"(ids: {', '.join(plan.id_columns) or '-'}; left out: {', '.join(plan.left_out) or '-'}); "
            f"export the columns that explain the target"
        )


def _positive_class(sample: Sample, target: str) -> tuple[Any, str]:
    """Binary: the class the metrics treat as positive: a conventional label when present, else the minority."""
    counts = sample.frame[target].value_counts()
    share = {_plain(k): int(v) / len(sample.frame) for k, v in counts.items()}
    labels = sorted(share, key=lambda v: (type(v).__name__, v))
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in labels) and set(labels) == {0, 1}:
        return None, f"1 (the larger of the labels 0 and 1, {share[labels[-1]]:.1%} of rows): the default, not set"
    preferred = [v for v in labels if v is True or str(v).strip().lower() in POSITIVE_LABELS]
    minority = min(labels, key=lambda v: (share[v], -labels.index(v)))
    if preferred:
        value = preferred[0]
        why = f"{value!r}: a conventional positive label, {share[value]:.1%} of rows"
        why += " (also the minority class)" if value == minority else ""
    else:
        value = minority
        why = f"{value!r}: the minority class ({share[value]:.1%} of rows), usually the event to detect"
    if isinstance(value, float):
        if not value.is_integer():
            return None, f"{value!r} would be the positive class, but a config cannot name a fractional label: not set"
        value = int(value)
    return value, why


def _split(plan: Plan) -> None:
    """A time split by the date column when the sample holds enough days, else a seeded random split."""
    n = plan.sample.rows
    column = plan.sample.columns.get(plan.date_column or "")
    if column is not None and len(column.days) >= 3:
        chosen = _time_days(plan)
        if chosen is not None:
            test_days, validation_days, test_rows = chosen
            days = len(column.days)
            plan.split = {"strategy": "time", "test_days": test_days, "validation_days": validation_days}
            plan.split_note = (f"{days} days in the sample: the newest {test_days} test, the {validation_days} before "
                               f"validation, {days - test_days - validation_days} training")
            plan.test_rows = test_rows
        else:
            plan.split_note = ("a time split of the sample leaves a role with a single class of the target; "
                               "random split: try strategy time once the data spans more days")
    elif column is not None:
        plan.split_note = (f"the sample holds {len(column.days)} day(s): too few for a time split (test, validation "
                           f"and training days); switch to strategy time once the source spans more days")
    if not plan.split:
        plan.split = {"strategy": "random", "test_size": 0.2, "validation_size": 0.2}
        if plan.classification:
            plan.split["stratify"] = True
        plan.split_note = plan.split_note or "no date column: a seeded random split of the rows"
        plan.test_rows = math.ceil(0.2 * n)
    plan.review.append(f"split: {plan.split['strategy']} ({plan.split_note})")
    plan.min_test_rows = max(2, min(MAX_MIN_TEST_ROWS, int(0.6 * plan.test_rows)))
    plan.review.append(
        f"min_test_rows: {plan.min_test_rows} (60% of the {plan.test_rows} test rows the sample's {plan.split['strategy']} "
        f"split gives; the gate drops rows the champion saw); raise it toward {MAX_MIN_TEST_ROWS} when the source "
        f"holds more rows"
    )


def _time_days(plan: Plan) -> tuple[int, int, int] | None:
    """(test days, validation days, test rows): each role about 10% of the days, and, for a classifier, two classes
    in each role of the sample; None when no such split exists."""
    import pandas as pd

    frame = plan.sample.frame
    days = pd.to_datetime(frame[plan.date_column], errors="coerce", format="ISO8601")
    if getattr(days.dt, "tz", None) is not None:
        days = days.dt.tz_localize(None)
    days = days.dt.normalize().dt.strftime("%Y-%m-%d")
    distinct = sorted(days.dropna().unique())
    n = len(distinct)
    for k in range(max(1, math.ceil(0.1 * n)), n // 3 + 1):
        test_from, validation_from = distinct[n - k], distinct[n - 2 * k]
        roles = [days < validation_from, (days >= validation_from) & (days < test_from), days >= test_from]
        if not plan.classification or all(frame.loc[r, plan.target].nunique() >= 2 for r in roles):
            return k, k, int(roles[2].sum())
    return None


def _metrics(plan: Plan) -> None:
    """Primary and other metrics, and the gate's margin, for the task."""
    if plan.task == "binary_classification":
        plan.primary, plan.others, plan.margin = "roc_auc", ("accuracy", "f1", "log_loss"), 0.005
        plan.margin_note = "roc_auc must improve by at least this much ..."
    elif plan.task == "multiclass_classification":
        plan.primary, plan.others, plan.margin = "accuracy", ("f1", "log_loss"), 0.005
        plan.margin_note = "accuracy must improve by at least this much ..."
    else:
        std = float(plan.sample.frame[plan.target].std())
        plan.primary, plan.others = "rmse", ("mae", "r2")
        plan.margin = float(f"{0.005 * std:.2g}") if std > 0 else 0.0
        plan.margin_note = (f"rmse must fall by at least this much (in {plan.target} units: 0.5% of its standard "
                            f"deviation {std:.4g} in the sample) ...")
        plan.review.append(f"evaluation.margin: {_num(plan.margin)} in {plan.target} units (0.5% of its standard "
                           f"deviation in the sample)")


# --------------------------------------------------------------------------- render the config


def render_config(plan: Plan) -> str:
    """The pipeline config as YAML text, every choice commented with its reason."""
    n, name, s = plan.sample.rows, plan.name, plan.sample
    lines = [
        f"# The {name} pipeline: a starter written by `airflow-mlops init` from {plan.source_path} ({n} rows, "
        f"{len(s.columns)} columns).",
        "# The comments say why each choice was made: review them (and `REVIEW` lines first) before the first run.",
        f"pipeline: {name}",
        _c(f"description: {_q(f'Predict {plan.target} from {s.path.name}.')}", "REVIEW: say what the model is for"),
        "",
        _c("schedule:", "the DAGs dags/pipelines.py builds from this file (times in `timezone`)"),
        _c('  retrain: "0 2 * * *"', f"{name}_retrain: nightly, and whenever mlops://{name}/retrain-request is emitted"),
        _c('  drift_monitor: "0 6 * * *"', f"{name}_drift_monitor: daily"),
        "  timezone: UTC",
        "",
        "source:",
        _c(f"  path: {_q(plan.source_path)}", "REVIEW: the sample; point it at the real export (a file, or a "
           f"folder of daily files {name}_YYYY-MM-DD.{s.format})"),
        f"  format: {s.format}",
    ]
    if plan.date_column:
        lines.append(_c(f"  date_column: {_q(plan.date_column)}", f"REVIEW: {plan.date_note}"))
        lines.append(_c("  # window_days: 28", "train on the last 28 days before the run's date (default: all rows)"))
    lines += [
        _c("  max_file_mb: 512", "a bigger file is refused unread"),
        _c(f"  allowed_roots: [{_q(plan.allowed_root)}]", "sources must live under these folders (relative to the "
           "project root),"),
        _c("", "$AIRFLOW_MLOPS_HOME or $AIRFLOW_MLOPS_DATA_ROOTS; any other path is refused"),
    ]
    if plan.id_columns:
        ids = ", ".join(_q(c) for c in plan.id_columns)
        why = "; ".join(f"{c}: {w}" for c, w in plan.id_columns.items())
        lines.append(_c(f"  id_columns: [{ids}]", f"REVIEW: kept for joins, never a feature ({why})"))
    else:
        lines.append(_c("  # id_columns: []", "none recognised (unique text, *_id names, row numbers)"))
    if plan.na_values:
        blanks = {c.name: c.nulls for c in s.columns.values() if c.blanks}
        where = ", ".join(f"{c} ({k})" for c, k in blanks.items())
        lines.append(_c(f"  na_values: [{', '.join(_q(v) for v in plan.na_values)}]",
                        f"REVIEW: blank cells in otherwise numeric columns: {where}"))
        dtypes = ", ".join(f"{_q(c)}: {t}" for c, t in plan.dtypes.items())
        lines.append(_c(f"  dtypes: {{{dtypes}}}", "numbers once the blanks are read as missing"))
    lines += ["", "target:", f"  column: {_q(plan.target)}", _c(f"  task: {plan.task}", f"REVIEW: {plan.task_note}")]
    if plan.positive_class is not None:
        lines.append(_c(f"  positive_class: {_q(plan.positive_class)}", f"REVIEW: {plan.positive_note}"))
    elif plan.task == "binary_classification":
        lines.append(_c("  # positive_class: 1", plan.positive_note))
    lines += ["", "features:"]
    entries = [(f"  - {{name: {_q(f)}, type: {t}}}", why) for f, t, why in plan.features]
    width = max(len(code) for code, _ in entries)
    lines += [f"{code.ljust(width)}  # {why}" for code, why in entries]
    for column, why in plan.left_out.items():
        lines.append(f"  # left out: {column}: {why}")
    lines += ["", "validation:", f"  suite: include/expectations/{name}.json", "", "model:", f"  name: {name}_model",
              "  candidates:"]
    for cname, estimator, params in CANDIDATES["regression" if plan.task == "regression" else "classification"]:
        lines += [f"    - name: {cname}", f"      estimator: {estimator}", f"      params: {params}"]
    lines += ["", "metrics:", _c(f"  primary: {plan.primary}", _primary_note(plan)),
              f"  others: [{', '.join(plan.others)}]", ""]
    lines += _evaluation_lines(plan)
    lines += [
        "",
        "deployment:",
        _c("  smoke_rows: 100", f"rows of the snapshot scored through models:/{name}_model@champion"),
        _c("  serve: false", "true: also smoke-test `mlflow models serve` over HTTP on loopback"),
        "",
        _c("monitoring:", f"the drift monitor ({name}_drift_monitor); the defaults"),
        _c("  window_days: 7", "compare the last 7 days with the champion's own training snapshot"),
        _c("  alpha: 0.01", "per-feature significance after Benjamini-Hochberg correction"),
        _c("  psi_threshold: 0.2", "and the effect size a numeric feature needs (PSI) ..."),
        _c("  js_threshold: 0.1", "... or a categorical one (Jensen-Shannon distance)"),
        _c("  drift_share: 0.3", "drift when 30% of the features (by weight) drifted"),
        _c("  confirm_checks: 2", "ask for a retrain when drift holds in 2 ..."),
        _c("  of_last_checks: 3", "... of the last 3 checks,"),
        _c("  cooldown_hours: 24", "and not again within 24 hours"),
        "",
        _c("alerts:", "who hears about what; every alert is also written to the task log"),
        _c("  channels: {}", "none yet, e.g.:"),
        "  #   ml_team:",
        _c("  #     type: email", "through Airflow's SMTP connection"),
        "  #     conn_id: smtp_default",
        "  #     to: [ml-team@example.com]",
        _c("  events: {}", "e.g. run_failed: [ml_team], promoted: [ml_team], drift_confirmed: [ml_team]"),
        "",
        "security:",
        _c("  allow_pickle_models: false", "never load a pickled model file (it can run code)"),
        "",
        _c("split:", "which rows train, which rank the candidates, which judge them"),
    ]
    keys = list(plan.split)
    for i, key in enumerate(keys):
        value = plan.split[key]
        code = f"  {key}: {_q(value)}"
        lines.append(_c(code, f"REVIEW: {plan.split_note}") if i == 0 else code)
    lines += ["", "seed: 42", ""]
    return "\n".join(lines)


def _primary_note(plan: Plan) -> str:
    if plan.task == "binary_classification":
        return "ranks the candidates and decides promotion"
    if plan.task == "multiclass_classification":
        return "roc_auc (one-vs-rest) fails when a class is absent from a holdout; f1 is the macro average"
    return "in target units: lower is better"


def _evaluation_lines(plan: Plan) -> list[str]:
    p = plan.primary
    if plan.task == "regression":
        rails = [f"  #   mae: {_num(2 * plan.margin or 0.01)}"]
        floors = ["  #   r2: 0.1"]
        leakage = _c("  leakage_threshold: null", "rmse has no best score to smell leakage by (only bounded metrics do)")
    else:
        rails = ["  #   accuracy: 0.02", "  #   log_loss: 0.03"]
        floors = [f"  #   {p}: {0.65 if p == 'roc_auc' else 0.5}", "  #   log_loss: 0.70"]
        leakage = _c("  leakage_threshold: 0.999", f"a test-set {p} this good smells of target leakage: reject")
    return [
        _c("evaluation:", "the champion/challenger gate"),
        _c(f"  margin: {_num(plan.margin)}", plan.margin_note),
        _c("  confidence: 0.95", "... and the paired-bootstrap 95% interval of the gain must exclude zero"),
        "  bootstrap_samples: 1000",
        _c("  # guard_rails:", "largest tolerated regression of other metrics; set them once a baseline is known"),
        *rails,
        _c("  # floors:", f"worst acceptable values (a maximum for {'rmse/mae' if p == 'rmse' else 'log_loss'}), "
           "e.g."),
        *floors,
        leakage,
        _c(f"  min_test_rows: {plan.min_test_rows}",
           f"REVIEW: 60% of the {plan.test_rows} test rows of the sample's split; fewer clean test rows: reject"),
    ]


def _c(code: str, comment: str) -> str:
    """`code` with a `# comment` aligned at column 30, as in include/pipelines/churn.yaml."""
    return f"{code:<29} # {comment}" if len(code) < 29 else f"{code}  # {comment}"


_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./\-]*")


def _q(value: Any) -> str:
    """A YAML scalar: plain when it reads back as the same string, else JSON-quoted (JSON strings are YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _num(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _examples(column: Column, limit: int = 3) -> str:
    shown = list(column.values[:limit])
    more = ", ..." if column.distinct > limit or not column.values else ""
    return "(" + ", ".join(_num(v) if isinstance(v, float) else repr(v) for v in shown) + more + ")"


# --------------------------------------------------------------------------- the suite


def build_suite(plan: Plan) -> list[list[dict[str, Any]]]:
    """The starter suite's expectations in groups (the table's, then each column's), each with meta.notes."""
    s = plan.sample
    n = s.rows
    min_rows = min(50, max(1, n // 10))
    groups = [[
        _rule("expect_table_columns_to_match_set", f"the sample's {len(s.columns)} columns, exactly: a missing, "
              "renamed or extra column (a changed export) fails", column_set=list(s.columns), exact_match=True),
        _rule("expect_table_row_count_to_be_between", f"a batch needs rows to train and judge on: {min_rows} is "
              f"{'10%' if min_rows < 50 else 'at most 10%'} of the {n}-row sample", min_value=min_rows),
    ]]
    types = {f: t for f, t, _ in plan.features}
    for c in s.columns.values():
        groups.append(_column_rules(plan, c, types.get(c.name)))
    return [g for g in groups if g]


def _column_rules(plan: Plan, c: Column, feature_type: str | None) -> list[dict[str, Any]]:
    rules = []
    is_target = c.name == plan.target
    if c.nulls == 0:
        why = {plan.target: "labels must be complete: the pipeline trains on labelled rows only",
               plan.date_column: "the time split and the training window place every row by it"}.get(c.name, "")
        rules.append(_rule("expect_column_values_to_not_be_null", f"no missing value in the {c.rows} sample rows"
                           + (f"; {why}" if why else ""), column=c.name))
    if c.name in plan.id_columns and c.unique:
        rules.append(_rule("expect_column_values_to_be_unique", f"one row per {c.name} in the sample: a repeated id "
                           "means a duplicated row or a bad join", column=c.name))
    if c.name == plan.date_column and c.iso_text:
        rules.append(_rule("expect_column_values_to_match_regex", "ISO dates (YYYY-MM-DD...): the time split reads "
                           "them so", column=c.name, regex=ISO_DAY))
    if feature_type is not None:
        rules.append(_rule("expect_column_unique_value_count_to_be_between", f"the sample has {c.distinct} distinct "
                           "values: a stuck export (one value in every row) fails", column=c.name, min_value=2))
    if c.kind == "number" and (feature_type is not None or is_target):
        blanks = f"; {', '.join(map(repr, c.blanks))} is read as missing (source.na_values)" if c.blanks else ""
        rules.append(_rule("expect_column_values_to_be_in_type_list", f"numbers: text in this column (a value "
                           f"such as 'unknown', or a blank) fails{blanks}", column=c.name, type_list=NUMERIC_TYPES))
    if feature_type == "numeric" and c.minimum is not None and c.maximum is not None:
        low, high = _bounds(c.minimum, c.maximum, c.whole)
        floor = ", not below 0 (the sample has no negatives)" if c.minimum >= 0 and low == 0 else ""
        rules.append(_rule("expect_column_values_to_be_between", f"the sample spans {_num(c.minimum)}..{_num(c.maximum)}; "
                           f"10% of that range as slack either side{floor}", column=c.name, min_value=_whole(low),
                           max_value=_whole(high)))
    if c.values and (feature_type == "categorical" or (is_target and plan.classification)):
        what = "classes" if is_target else "values"
        rules.append(_rule("expect_column_values_to_be_in_set", f"the sample's {c.distinct} {what}; a new one fails: "
                           "add it here if it is real", column=c.name, value_set=list(c.values)))
    return rules


def _whole(value: float) -> float:
    """A whole float as an int (72, not 72.0, in the suite file)."""
    return int(value) if float(value).is_integer() else value


def _rule(kind: str, notes: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"notes": notes}}


def _bounds(low: float, high: float, whole: bool) -> tuple[float, float]:
    """[low, high] widened by 10% of the range each side (not below 0 for non-negative data), rounded outward."""
    slack = 0.1 * (high - low)
    lo, hi = low - slack, high + slack
    if low >= 0:
        lo = max(0.0, lo)
    if whole:
        return math.floor(lo), math.ceil(hi)
    step = 10.0 ** (math.floor(math.log10(high - low)) - 2) if high > low else 1.0
    digits = max(0, -math.floor(math.log10(step)))
    return round(math.floor(lo / step) * step, digits), round(math.ceil(hi / step) * step, digits)


def render_suite(plan: Plan, groups: list[list[dict[str, Any]]]) -> str:
    """The suite as JSON in the form of include/expectations/churn.json: one rule a line, columns apart."""
    notes = (f"Starter suite written by `airflow-mlops init` from {plan.source_path} ({plan.sample.rows} rows). "
             "Ranges are the sample's with 10% slack and value sets are the sample's values: widen them to what "
             "the real data may hold. Range and set rules skip nulls, hence the not-null rules; categorical columns "
             "are checked by value set (GX 1.24 cannot name the pandas 3 'str' dtype in a type list).")
    head = json.dumps({"name": plan.name, "meta": {"notes": notes}}, ensure_ascii=False, indent=2)[:-2]
    body = ",\n\n".join(",\n".join(f"    {_json(rule)}" for rule in group) for group in groups)
    return f'{head},\n  "expectations": [\n{body}\n  ]\n}}\n'


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


# --------------------------------------------------------------------------- the command


@dataclass
class InitResult:
    """What `airflow-mlops init` wrote, and what a person should review."""

    config_path: Path
    suite_path: Path
    plan: Plan
    expectations: int

    def summary(self, project_root: Path) -> str:
        p = self.plan
        numeric = sum(t == "numeric" for _, t, _ in p.features)
        lines = [
            f"Wrote {_shown(self.config_path, project_root)} (pipeline {p.name}: {p.task} on {p.target!r}, "
            f"{len(p.features)} features: {numeric} numeric, {len(p.features) - numeric} categorical)",
            f"Wrote {_shown(self.suite_path, project_root)} ({self.expectations} expectations)",
            f"Both were checked: the config loads, and the {p.sample.rows}-row sample passes the suite.",
            "",
            "Review these before your first run:",
            *(f"  - {item}" for item in p.review),
        ]
        return "\n".join(lines)


def init_pipeline(
    name: str,
    source: str | Path,
    target: str,
    *,
    project_root: Path,
    task: str | None = None,
    date_column: str | None = None,
) -> InitResult:
    """Profile `source`, write include/pipelines/NAME.yaml and include/expectations/NAME.json (never overwriting)."""
    if not PIPELINE_NAME.fullmatch(name):
        raise ConfigError(f"{name!r} cannot name a pipeline (it names DAGs and Assets): use lower-case letters, "
                          "digits and '_', starting with a letter, at most 64 characters (e.g. churn, house_prices)")
    if task is not None and task not in TASKS:
        raise ConfigError(f"--task {task!r} is not one of {', '.join(TASKS)}")
    config_path = project_root / "include" / "pipelines" / f"{name}.yaml"
    suite_path = project_root / "include" / "expectations" / f"{name}.json"
    _refuse_existing(config_path, suite_path)
    sample = profile_sample(Path(source))
    plan = decide(sample, name, target, project_root=project_root, task=task, date_column=date_column)
    groups = build_suite(plan)
    _write_checked(plan, render_config(plan), render_suite(plan, groups), config_path, suite_path)
    return InitResult(config_path, suite_path, plan, sum(len(g) for g in groups))


def _refuse_existing(*paths: Path) -> None:
    existing = [p for p in paths if p.exists()]
    if existing:
        raise ConfigError(f"{', '.join(map(str, existing))}: already exists; init never overwrites: delete or rename "
                          f"{'it' if len(existing) == 1 else 'them'}, or choose another NAME. Nothing was written")


def _write_checked(plan: Plan, config_text: str, suite_text: str, config_path: Path, suite_path: Path) -> None:
    """Write both files to temp files, check them, then rename them into place (nothing is left on failure)."""
    temps: list[Path] = []
    try:
        for final, text in ((config_path, config_text), (suite_path, suite_text)):
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
            temps.append(Path(name))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(name, 0o644)
        _check(plan, temps[0], temps[1], config_path, suite_path)
        _refuse_existing(config_path, suite_path)
        os.replace(temps[0], config_path)
        try:
            os.replace(temps[1], suite_path)
        except OSError:
            config_path.unlink(missing_ok=True)  # both files or neither
            raise
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def _check(plan: Plan, config_tmp: Path, suite_tmp: Path, config_path: Path, suite_path: Path) -> None:
    """The written config loads and says what the plan says; the suite loads and the sample passes it."""
    from airflow_mlops.core import rows, validation

    bug = "airflow-mlops init wrote a {} that fails its own check (a bug: please report it); nothing was written: {}"
    try:
        config = load_config(config_tmp, check_estimators=True)
    except ConfigError as exc:
        raise MlopsError(bug.format("config", str(exc).replace(str(config_tmp), str(config_path)))) from None
    expected = ([(f, t) for f, t, _ in plan.features], plan.target, plan.task, plan.date_column,
                list(plan.id_columns), plan.positive_class)
    got = ([(f.name, f.type) for f in config.features], config.target, config.task, config.source.date_column,
           list(config.source.id_columns), config.positive_class)
    if got != expected:
        raise MlopsError(bug.format("config", f"it reads back as {got!r}, not {expected!r}"))
    try:
        report = validation.validate_frame(plan.sample.frame, suite_tmp, data_name=plan.sample.path.name)
    except ConfigError as exc:
        raise MlopsError(bug.format("suite", str(exc).replace(str(suite_tmp), str(suite_path)))) from None
    if not report.success:
        raise MlopsError(bug.format("suite", report.describe_failures().replace(str(suite_tmp), str(suite_path))))
    try:
        rows.split_roles(plan.sample.frame, config)
    except SplitError as exc:
        plan.review.append(f"the sample itself cannot be split into train, validation and test rows ({exc}); "
                           f"fine if the real source is larger")


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
