"""Decide the starter pipeline for a profiled sample: every choice with its reason."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.config import TASKS
from airflow_mlops.core.errors import ConfigError
from airflow_mlops.core.onboarding.profile import (
    MAX_SET_VALUES,
    Column,
    Sample,
    examples_text,
    naive_dates,
    number_text,
    ordered_values,
    plain_value,
)

if TYPE_CHECKING:
    from pathlib import Path

MAX_MIN_TEST_ROWS = 500  # the config's default min_test_rows
MAX_MIN_TEST_EVENTS = 50  # the config's default min_test_events
HIGH_CARDINALITY = 50  # a categorical feature with more distinct values deserves a look
#: id, ID, customer_id, order-id, customerID, customerId, id_customer
ID_NAME = re.compile(r"(?i:id|.*[_\-\s.]id|id[_\-\s].*)|.*[a-z0-9](?:ID|Id)")
DATE_NAME = re.compile(r"(?i).*(date|day|time|timestamp|_at|_on)$")
POSITIVE_LABELS = ("yes", "true", "1")
#: a classifier's metrics: task -> (primary, others)
CLASSIFIER_METRICS = {
    "binary_classification": ("roc_auc", ("accuracy", "f1", "log_loss")),
    "multiclass_classification": ("accuracy", ("f1", "log_loss")),
}


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
    min_test_events: int | None = None  # classification: of each class in the clean test rows (None: the default)
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
            f"{where}: target column {target!r} has a single value ({plain_value(sample.frame[target].iloc[0])!r}) in all "
            f"{label.rows} rows: there is nothing to learn; give a sample with several outcomes or another --target"
        )
    task, task_note = _task(label, task, where)
    source_path, allowed_root = _location(sample.path, project_root)
    plan = Plan(
        name=name,
        sample=sample,
        source_path=source_path,
        allowed_root=allowed_root,
        target=target,
        task=task,
        task_note=task_note,
        features=[],
    )
    plan.review.append(f"task: {task} ({task_note})")
    plan.date_column, plan.date_note = _date_column(sample, date_column, target)
    if plan.date_column:
        plan.review.append(f"date column: {plan.date_column} ({plan.date_note})")
        if cols[plan.date_column].nulls:
            plan.review.append(
                f"{plan.date_column} is missing in {cols[plan.date_column].nulls} rows: a snapshot "
                "refuses rows without a date; fix the export"
            )
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
        plan.review.append(
            "the sample lies in the project root itself, so source.allowed_roots is '.': move the "
            "data under a folder such as data/ and narrow allowed_roots to it"
        )
    plan.review.append(
        f"source.path is the sample file {source_path}: point it at the real export (a file, or a "
        f"folder of daily files {name}_YYYY-MM-DD.{sample.format})"
    )
    return plan


def _task(label: Column, given: str | None, where: str) -> tuple[str, str]:
    """The task (given, or inferred from the target's values) and why."""
    column = repr(label.name)
    if label.kind == "datetime" or label.dates:
        raise ConfigError(
            f"{where}: target column {column} holds dates; a model predicts a class or a number: "
            f"choose another --target"
        )
    values = f"{label.distinct} distinct value(s) in {label.rows} rows"
    if given is not None:
        check_task(given)
        if given == "binary_classification" and label.distinct != 2:
            raise ConfigError(
                f"{where}: target column {column} has {values}; binary_classification needs exactly 2: "
                f"use multiclass_classification{' or regression' if label.kind == 'number' else ''}"
            )
        if given == "regression" and label.kind != "number":
            raise ConfigError(
                f"{where}: target column {column} holds {label.kind} values, e.g. "
                f"{examples_text(label)}; regression needs numbers: use a classification task"
            )
        return given, f"given (--task); the target has {values}"
    if label.distinct == 2:
        return "binary_classification", f"inferred: 2 distinct values {examples_text(label)} in {label.rows} rows"
    if label.kind in ("text", "bool"):
        return "multiclass_classification", f"inferred: {label.distinct} distinct text values in {label.rows} rows"
    if label.whole and label.distinct <= MAX_SET_VALUES:
        return (
            "multiclass_classification",
            f"inferred: {label.distinct} distinct whole numbers (at most {MAX_SET_VALUES}) in {label.rows} rows: "
            f"classes; use --task regression if they are amounts",
        )
    return "regression", f"inferred: {label.distinct} distinct numbers in {label.rows} rows"


def check_task(task: str) -> None:
    """Refuse a `--task` that is not one of TASKS."""
    if task not in TASKS:
        raise ConfigError(f"--task {task!r} is not one of {', '.join(TASKS)}")


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
                f"{where}: --date-column {given!r} does not hold ISO dates (YYYY-MM-DD), e.g. {examples_text(column)}; "
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
            out[c.name] = f"whole numbers {number_text(c.minimum)}..{number_text(c.maximum)}, one per row: a row number"
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
            plan.left_out[c.name] = f"a single value ({examples_text(c)}) in every row: carries no information"
        elif c.kind == "number" and c.distinct <= 2:
            few.append(c.name)
            plan.features.append(
                (
                    c.name,
                    "categorical",
                    f"{c.distinct} distinct values {examples_text(c)} in {c.rows} "
                    f"rows{missing}: a flag or a code, categorical",
                )
            )
        elif c.kind == "number":
            blanks = "; blank strings read as missing" if c.blanks else ""
            counted = " (a count or a code?)" if c.whole and c.distinct <= 10 else ""
            plan.features.append(
                (
                    c.name,
                    "numeric",
                    f"{c.distinct} distinct numbers{counted}, "
                    f"{number_text(c.minimum)}..{number_text(c.maximum)}{missing}{blanks}",
                )
            )
        else:
            plan.features.append(
                (
                    c.name,
                    "categorical",
                    f"{c.distinct} distinct values in {c.rows} rows{missing}: "
                    f"{'true/false' if c.kind == 'bool' else 'text'}, categorical",
                )
            )
            if c.distinct > HIGH_CARDINALITY:
                plan.review.append(
                    f"{c.name}: categorical with {c.distinct} distinct values: free text or an id? "
                    f"leave it out of the features if so"
                )
    if few:
        plan.review.append(
            f"typed categorical because of few values: {', '.join(few)}; make them numeric if they are amounts"
        )
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
    share = {plain_value(k): int(v) / len(sample.frame) for k, v in counts.items()}
    labels = ordered_values(share)
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
            plan.split_note = (
                f"{days} days in the sample: the newest {test_days} test, the {validation_days} before "
                f"validation, {days - test_days - validation_days} training"
            )
            plan.test_rows = test_rows
        else:
            plan.split_note = (
                "a time split of the sample leaves a role with a single class of the target; "
                "random split: try strategy time once the data spans more days"
            )
    elif column is not None:
        plan.split_note = (
            f"the sample holds {len(column.days)} day(s): too few for a time split (test, validation "
            f"and training days); switch to strategy time once the source spans more days"
        )
    if not plan.split:
        plan.split = {"strategy": "random", "test_size": 0.2, "validation_size": 0.2}
        plan.split_note = plan.split_note or "no date column: a seeded random split of the rows"
        plan.test_rows = math.ceil(0.2 * n)
    plan.review.append(f"split: {plan.split['strategy']} ({plan.split_note})")
    plan.min_test_rows = max(2, min(MAX_MIN_TEST_ROWS, int(0.6 * plan.test_rows)))
    plan.review.append(
        f"min_test_rows: {plan.min_test_rows} (60% of the {plan.test_rows} test rows the sample's {plan.split['strategy']} "
        f"split gives; the gate drops rows the champion saw); raise it toward {MAX_MIN_TEST_ROWS} when the source "
        f"holds more rows"
    )
    if plan.classification:
        rarest = float(plan.sample.frame[plan.target].value_counts(normalize=True).min())
        expected = int(rarest * plan.test_rows)
        plan.min_test_events = max(1, min(MAX_MIN_TEST_EVENTS, int(0.6 * expected)))
        plan.review.append(
            f"min_test_events: {plan.min_test_events} (60% of the ~{expected} test rows of the rarest class the sample's "
            f"split gives); fewer: the gate rejects. Raise it toward {MAX_MIN_TEST_EVENTS} (a metric on a rare class is "
            f"decided by its few events) with more test rows"
        )


def _time_days(plan: Plan) -> tuple[int, int, int] | None:
    """(test days, validation days, test rows): each role about 10% of the days, and, for a classifier, two classes
    in each role of the sample; None when no such split exists."""
    frame = plan.sample.frame
    days = naive_dates(frame[plan.date_column]).dt.normalize().dt.strftime("%Y-%m-%d")
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
    if plan.task in CLASSIFIER_METRICS:
        plan.primary, plan.others = CLASSIFIER_METRICS[plan.task]
        plan.margin = 0.005
        plan.margin_note = f"{plan.primary} must improve by at least this much ..."
    else:
        std = float(plan.sample.frame[plan.target].std())
        plan.primary, plan.others = "rmse", ("mae", "r2")
        plan.margin = float(f"{0.005 * std:.2g}") if std > 0 else 0.0
        plan.margin_note = (
            f"rmse must fall by at least this much (in {plan.target} units: 0.5% of its standard "
            f"deviation {std:.4g} in the sample) ..."
        )
        plan.review.append(
            f"evaluation.margin: {number_text(plan.margin)} in {plan.target} units (0.5% of its standard "
            f"deviation in the sample)"
        )
