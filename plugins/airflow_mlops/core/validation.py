"""Great Expectations suites and results: validate a dataframe, explain failures, render and log evidence.

GX 1.x is imported lazily (it costs seconds). Every call builds its own EPHEMERAL context: parallel
tasks sharing a file context corrupt each other. Two GX traps are handled here:

- ``ValidationDefinition.run()`` never raises on bad data or broken rules; errors hide in each
  result's ``exception_info`` and count as failures here even when GX says ``success``.
- ``ExpectationSuite(expectations=[...])`` silently drops an invalid expectation; suites are built
  one expectation at a time here so a typo in the suite file is a ``ConfigError`` naming the file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Collection

    import pandas as pd
    from mlflow import MlflowClient

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# GX logs a flood of INFO ("Skipping registering function ...") at import and per run.
for _name in ("great_expectations", "great_expectations.expectations.registry"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

_DOCS_SITE = "local_site"
_EXAMPLES = 5  # unexpected values quoted per failed expectation
_KWARG_LABELS = {
    "min_value": "min",
    "max_value": "max",
    "value_set": "set",
    "type_list": "types",
    "column_set": "columns",
    "regex": "regex",
    "mostly": "mostly",
    "exact_match": "exact_match",
    "strict_min": "strict_min",
    "strict_max": "strict_max",
}


@dataclass(frozen=True)
class ExpectationFailure:
    """One failed (or crashed) expectation: rule, column, what was observed, the GX error if any."""

    expectation: str
    column: str | None
    observed: Any
    exception: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    hint: str | None = None  # what the data shows beyond GX's result, e.g. the values that are not numbers

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for XCom and DataValidationFailed.failures)."""
        return json.loads(json.dumps(asdict(self), default=str))

    def describe(self) -> str:
        """One human line: column, rule with its arguments, and what went wrong."""
        where = f"column {self.column!r}" if self.column else "table"
        args = ", ".join(f"{_KWARG_LABELS[k]}={_short(v)}" for k, v in self.kwargs.items() if k in _KWARG_LABELS)
        rule = f"{self.expectation}({args})"
        if self.exception:
            hint = " (the column mixes value types: see its type rule)" if "same type" in self.exception else ""
            return f"{where}: {rule} could not run: {self.exception}{hint}"
        hint = f"; {self.hint}" if self.hint else ""
        return f"{where}: {rule} failed: {_describe_observed(self.expectation, self.observed)}{hint}"


@dataclass
class ValidationReport:
    """The outcome of validating one batch against one suite."""

    success: bool
    evaluated: int
    failed: list[ExpectationFailure]
    result: dict[str, Any]  # ExpectationSuiteValidationResult.to_json_dict()
    suite_name: str
    suite_path: str = ""
    data_name: str = "batch"

    @property
    def failed_count(self) -> int:
        return len(self.failed)

    def describe_failures(self) -> str:
        return describe_failures(self)


def describe_failures(report: ValidationReport) -> str:
    """One line per failed expectation, naming column, rule and observed values, plus what to do."""
    if not report.failed:
        return f"{report.data_name}: all {report.evaluated} expectations of suite {report.suite_name!r} passed."
    lines = [
        f"{report.data_name}: {len(report.failed)} of {report.evaluated} expectations "
        f"of suite {report.suite_name!r} failed:"
    ]
    lines += [f"  - {f.describe()}" for f in report.failed]
    suite = report.suite_path or f"the suite {report.suite_name!r}"
    lines.append(
        f"Fix the source data (the batch is kept for inspection), or, if the rule itself is wrong, change {suite}."
    )
    return "\n".join(lines)


def load_suite(
    suite_path: str | Path, *, without_columns: Collection[str] = (), without_rules: Collection[str] = ()
) -> Any:
    """Read a GX 1.x ExpectationSuite JSON file; every problem is a ConfigError naming the file.

    `without_columns` drops every rule about those columns and takes them out of the table's column
    set (an unlabeled scoring batch has no target); `without_rules` drops rules of those types.
    """
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    file = str(suite_path)
    try:
        data = json.loads(Path(suite_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: expectation suite not found; suites live in include/expectations/ "
            "and the pipeline config names one under validation.suite"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read the expectation suite: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: an expectation suite must be a JSON object, got {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{file}: name: an expectation suite needs a non-empty string 'name'")
    items = data.get("expectations")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{file}: expectations: need a non-empty list of expectations")
    expectations = []
    for i, item in enumerate(items):
        where = f"{file}: expectations[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise ConfigError(f"{where}: each expectation is an object with a 'type' and 'kwargs'")
        spec = {k: v for k, v in item.items() if k in ("type", "kwargs", "meta", "notes", "description")}
        if item["type"] in without_rules:
            continue
        if without_columns:
            kwargs = _without_columns(spec.get("kwargs") or {}, set(without_columns))
            if kwargs is None:
                continue
            spec["kwargs"] = kwargs
        try:
            expectations.append(ExpectationConfiguration(**spec).to_domain_obj())
        except Exception as exc:  # GX raises many types for a bad rule; all mean the same here
            raise ConfigError(f"{where} ({item['type']}): invalid expectation: {exc}") from None
    return gx.ExpectationSuite(name=name, expectations=expectations, meta=data.get("meta") or None)


def _without_columns(kwargs: dict[str, Any], columns: set[str]) -> dict[str, Any] | None:
    """A rule's kwargs without `columns`: None (drop the rule) when it is about one of them; column sets and
    lists of table-wide rules lose them."""
    if kwargs.get("column") in columns or kwargs.get("column_A") in columns or kwargs.get("column_B") in columns:
        return None
    kwargs = dict(kwargs)
    for key in ("column_set", "column_list"):
        value = kwargs.get(key)
        if isinstance(value, list) and columns & set(map(str, value)):
            kwargs[key] = [c for c in value if c not in columns]
    return kwargs


def validate_frame(
    df: pd.DataFrame,
    suite_path: str | Path,
    *,
    data_name: str = "batch",
    without_columns: Collection[str] = (),
    without_rules: Collection[str] = (),
) -> ValidationReport:
    """Validate `df` against the suite file in a private ephemeral GX context (see `load_suite` for `without_*`)."""
    import great_expectations as gx

    suite = load_suite(suite_path, without_columns=without_columns, without_rules=without_rules)
    context = _ephemeral_context()
    batch_definition = (
        context.data_sources.add_pandas("airflow_mlops")
        .add_dataframe_asset(name=data_name)
        .add_batch_definition_whole_dataframe("whole_dataframe")
    )
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite.name}:{data_name}", data=batch_definition, suite=suite)
    )
    result = definition.run(batch_parameters={"dataframe": df}, result_format="SUMMARY")
    report = report_from_result(result.to_json_dict(), suite_name=suite.name)
    report.suite_path, report.data_name = str(suite_path), data_name
    report.failed = [_with_hint(f, df) for f in report.failed]
    return report


def _with_hint(failure: ExpectationFailure, df: pd.DataFrame) -> ExpectationFailure:
    """A failed numeric type rule on a text column: quote the values that are not numbers.

    GX only reports the column's dtype ('str'), which does not say whether one value or all are wrong.
    """
    import pandas as pd

    numeric = {"int", "int64", "float", "float64"} & set(failure.kwargs.get("type_list") or ())
    if failure.expectation != "expect_column_values_to_be_in_type_list" or not numeric or failure.column not in df:
        return failure
    values = df[failure.column].dropna()
    bad = values[pd.to_numeric(values, errors="coerce").isna()]
    if bad.empty:
        return failure
    examples = _short(_distinct(bad.head(50).tolist())[:_EXAMPLES])
    hint = f"{len(bad)} of {len(values)} values are not numbers, e.g. {examples}"
    return replace(failure, hint=hint)


def report_from_result(result: dict[str, Any], *, suite_name: str | None = None) -> ValidationReport:
    """Build a report from a validation result dict; a GX exception inside any result counts as failure."""
    results = result.get("results") or []
    failed = []
    for item in results:
        failure = _failure_of(item)
        if failure is not None:
            failed.append(failure)
    failed.sort(key=lambda f: f.column is not None)  # table-level rules first, then GX's order
    return ValidationReport(
        success=bool(result.get("success")) and not failed,
        evaluated=len(results),
        failed=failed,
        result=result,
        suite_name=suite_name or str(result.get("suite_name") or ""),
    )


def exception_messages(exception_info: Any) -> list[str]:
    """The messages of exceptions GX caught for one expectation.

    GX 1.x stores them flat ``{raised_exception, exception_message, exception_traceback}`` or
    keyed by metric id ``{metric_id: {raised_exception, ...}}``.
    """
    if not isinstance(exception_info, dict) or not exception_info:
        return []
    if "raised_exception" in exception_info or "exception_message" in exception_info:
        entries = [exception_info]
    else:
        entries = [v for v in exception_info.values() if isinstance(v, dict)]
    messages = []
    for entry in entries:
        if entry.get("raised_exception") or entry.get("exception_message"):
            messages.append(str(entry.get("exception_message") or "unknown error (see exception_traceback)"))
    return list(dict.fromkeys(messages))


def _failure_of(item: dict[str, Any]) -> ExpectationFailure | None:
    config = item.get("expectation_config") or {}
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k not in ("batch_id", "result_format")}
    errors = exception_messages(item.get("exception_info"))
    if item.get("success") and not errors:
        return None
    return ExpectationFailure(
        expectation=str(config.get("type") or "unknown_expectation"),
        column=kwargs.pop("column", None),
        observed=_observed(item.get("result") or {}),
        exception="; ".join(errors) or None,
        kwargs=kwargs,
    )


def _observed(result: dict[str, Any]) -> Any:
    if "observed_value" in result:
        observed = result["observed_value"]
        mismatched = (result.get("details") or {}).get("mismatched")
        return {"observed_value": observed, "mismatched": mismatched} if mismatched else observed
    if "unexpected_count" in result:
        return {
            "element_count": result.get("element_count"),
            "unexpected_count": result.get("unexpected_count"),
            "unexpected_percent": result.get("unexpected_percent"),
            "missing_count": result.get("missing_count"),
            "partial_unexpected_list": _distinct(list(result.get("partial_unexpected_list") or []))[:_EXAMPLES],
        }
    return result or None


def _describe_observed(expectation: str, observed: Any) -> str:
    if isinstance(observed, dict) and "unexpected_count" in observed:
        count, total = observed.get("unexpected_count") or 0, observed.get("element_count")
        pct = observed.get("unexpected_percent")
        share = f" ({pct:.1f}%)" if isinstance(pct, (int, float)) else ""
        if expectation == "expect_column_values_to_not_be_null":
            return f"{count} of {total} values{share} are null"
        examples = observed.get("partial_unexpected_list") or []
        eg = f", e.g. {_short(examples)}" if examples else ""
        missing = observed.get("missing_count")
        skipped = f" ({missing} nulls not checked by this rule)" if missing else ""
        return f"{count} of {total} values{share} unexpected{eg}{skipped}"
    if isinstance(observed, dict) and "mismatched" in observed:
        parts = [f"{k} {_short(v)}" for k, v in observed["mismatched"].items()]
        return f"{'; '.join(parts)} (observed {_short(observed.get('observed_value'))})"
    if isinstance(observed, str) and "type" in expectation:
        return f"the column's dtype is {observed!r}"
    if expectation == "expect_column_unique_value_count_to_be_between" and isinstance(observed, int | float):
        constant = " (a constant column carries no information: a stuck or default-filled export?)"
        return f"{_short(observed)} distinct value(s){constant if observed == 1 else ''}"
    return f"observed {_short(observed)}"


def _short(value: Any, limit: int = 120) -> str:
    """A compact repr: integral floats as ints (GX turns 72 into 72.0), long texts cut."""
    if isinstance(value, (list, tuple)):
        items = list(value) if len(value) <= 6 else [*value[:4], _More(len(value) - 4)]
        shown = [str(v) if isinstance(v, _More) else _short(v, limit) for v in items]
        text = "[" + ", ".join(shown) + "]"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _More(int):
    def __str__(self) -> str:
        return f"... +{int(self)} more"


def _distinct(values: list[Any]) -> list[Any]:
    seen, out = set(), []
    for v in values:
        key = repr(v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _ephemeral_context(docs_dir: Path | None = None) -> Any:
    """A private in-memory GX context: no analytics, no progress bars, optionally one local docs site."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    if docs_dir is not None:
        config.data_docs_sites = {
            _DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        }
    return gx.get_context(mode="ephemeral", project_config=config)


def write_data_docs(report: ValidationReport, out_dir: str | Path) -> Path:
    """Render GX Data Docs (index, validation result and suite pages, assets) into `out_dir`.

    Uses GX's own SiteBuilder on a fresh ephemeral context holding this result; returns index.html.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    context = _ephemeral_context(docs_dir=out)
    store = context.validation_results_store
    result = store.deserialize(json.loads(json.dumps(report.result, default=str)))
    suite_name = report.suite_name or result.suite_name
    meta_run = (result.meta or {}).get("run_id") or {}
    run_id = RunIdentifier(run_name=meta_run.get("run_name"), run_time=meta_run.get("run_time"))
    batch_id = (result.meta or {}).get("active_batch_definition", {}).get("data_asset_name") or report.data_name
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
        run_id=run_id,
        batch_identifier=batch_id,
    )
    store.set(key, result)
    # The suite page: rebuild the suite from the rules recorded in the result.
    rules = []
    for item in report.result.get("results") or []:
        cfg = item.get("expectation_config") or {}
        kwargs = {k: v for k, v in (cfg.get("kwargs") or {}).items() if k != "batch_id"}
        rules.append({"type": cfg.get("type"), "kwargs": kwargs, "meta": cfg.get("meta") or {}})
    try:
        context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=rules))
    except Exception:  # the suite page is a bonus; the validation page is the evidence
        logging.getLogger(__name__).debug("could not rebuild suite %s for Data Docs", suite_name, exc_info=True)
    context.build_data_docs(site_names=[_DOCS_SITE])
    index = out / "index.html"
    if not index.exists():
        raise RuntimeError(f"GX did not write Data Docs to {out}")
    return index


def log_validation_to_mlflow(
    report: ValidationReport,
    docs_dir: str | Path | None,
    *,
    client: MlflowClient,
    experiment: str,
    run_name: str,
    tags: dict[str, str] | None = None,
) -> str:
    """Log metrics, the result JSON (validation/result.json) and Data Docs (validation/data_docs); return the run id."""
    import mlflow

    from airflow_mlops.core.tracking import active_run

    run_tags = {"validation.suite": report.suite_name, "validation.success": str(report.success).lower()}
    run_tags.update(tags or {})
    with active_run(client, experiment, run_name, run_tags) as run_id:
        mlflow.log_metrics(
            {
                "validation_success": float(report.success),
                "expectations_evaluated": float(report.evaluated),
                "expectations_failed": float(len(report.failed)),
                "expectations_passed": float(report.evaluated - len(report.failed)),
            }
        )
        mlflow.log_dict(json.loads(json.dumps(report.result, default=str)), "validation/result.json")
        if report.failed:
            mlflow.log_text(describe_failures(report), "validation/failures.txt")
        if docs_dir is not None and Path(docs_dir).is_dir():
            mlflow.log_artifacts(str(docs_dir), "validation/data_docs")
    return run_id
