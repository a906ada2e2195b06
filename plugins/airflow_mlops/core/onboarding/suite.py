"""The starter Great Expectations suite: rules from the sample, each with ``meta.notes``."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.onboarding.profile import ISO_DAY, number_text

if TYPE_CHECKING:
    from airflow_mlops.core.onboarding.plan import Plan
    from airflow_mlops.core.onboarding.profile import Column

NUMERIC_TYPES = ["int", "int64", "int32", "float", "float64", "float32", "Int64Dtype", "Float64Dtype"]


def build_suite(plan: Plan) -> list[list[dict[str, Any]]]:
    """The starter suite's expectations in groups (the table's, then each column's), each with meta.notes."""
    s = plan.sample
    n = s.rows
    min_rows = min(50, max(1, n // 10))
    groups = [
        [
            _rule(
                "expect_table_columns_to_match_set",
                f"the sample's {len(s.columns)} columns, exactly: a missing, "
                "renamed or extra column (a changed export) fails",
                column_set=list(s.columns),
                exact_match=True,
            ),
            _rule(
                "expect_table_row_count_to_be_between",
                f"a batch needs rows to train and judge on: {min_rows} is "
                f"{'10%' if min_rows < 50 else 'at most 10%'} of the {n}-row sample",
                min_value=min_rows,
            ),
        ]
    ]
    types = {f: t for f, t, _ in plan.features}
    for c in s.columns.values():
        groups.append(_column_rules(plan, c, types.get(c.name)))
    return [g for g in groups if g]


def _column_rules(plan: Plan, c: Column, feature_type: str | None) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []

    def rule(kind: str, notes: str, **kwargs: Any) -> None:
        rules.append(_rule(kind, notes, column=c.name, **kwargs))

    is_target = c.name == plan.target
    if c.nulls == 0:
        why = {
            plan.target: "labels must be complete: the pipeline trains on labelled rows only",
            plan.date_column: "the time split and the training window place every row by it",
        }.get(c.name, "")
        rule(
            "expect_column_values_to_not_be_null",
            f"no missing value in the {c.rows} sample rows" + (f"; {why}" if why else ""),
        )
    if c.name in plan.id_columns and c.unique:
        rule(
            "expect_column_values_to_be_unique",
            f"one row per {c.name} in the sample: a repeated id means a duplicated row or a bad join",
        )
    if c.name == plan.date_column and c.iso_text:
        rule(
            "expect_column_values_to_match_regex",
            "ISO dates (YYYY-MM-DD...): the time split reads them so",
            regex=ISO_DAY,
        )
    if feature_type is not None:
        rule(
            "expect_column_unique_value_count_to_be_between",
            f"the sample has {c.distinct} distinct values: a stuck export (one value in every row) fails",
            min_value=2,
        )
    if c.kind == "number" and (feature_type is not None or is_target):
        blanks = f"; {', '.join(map(repr, c.blanks))} is read as missing (source.na_values)" if c.blanks else ""
        rule(
            "expect_column_values_to_be_in_type_list",
            f"numbers: text in this column (a value such as 'unknown', or a blank) fails{blanks}",
            type_list=NUMERIC_TYPES,
        )
    if feature_type == "numeric" and c.minimum is not None and c.maximum is not None:
        low, high = _bounds(c.minimum, c.maximum, c.whole)
        floor = ", not below 0 (the sample has no negatives)" if c.minimum >= 0 and low == 0 else ""
        rule(
            "expect_column_values_to_be_between",
            f"the sample spans {number_text(c.minimum)}..{number_text(c.maximum)}; 10% of "
            f"that range as slack either side{floor}",
            min_value=_whole(low),
            max_value=_whole(high),
        )
    if c.values and (feature_type == "categorical" or (is_target and plan.classification)):
        what = "classes" if is_target else "values"
        rule(
            "expect_column_values_to_be_in_set",
            f"the sample's {c.distinct} {what}; a new one fails: add it here if it is real",
            value_set=list(c.values),
        )
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
    notes = (
        f"Starter suite written by `airflow-mlops init` from {plan.source_path} ({plan.sample.rows} rows). "
        "Ranges are the sample's with 10% slack and value sets are the sample's values: widen them to what "
        "the real data may hold. Range and set rules skip nulls, hence the not-null rules; categorical columns "
        "are checked by value set (GX 1.24 cannot name the pandas 3 'str' dtype in a type list)."
    )
    head = json.dumps({"name": plan.name, "meta": {"notes": notes}}, ensure_ascii=False, indent=2)[:-2]
    body = ",\n\n".join(",\n".join(f"    {_json(rule)}" for rule in group) for group in groups)
    return f'{head},\n  "expectations": [\n{body}\n  ]\n}}\n'


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)
