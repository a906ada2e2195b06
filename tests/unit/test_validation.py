"""core.validation against real Great Expectations (ephemeral contexts) and a real MLflow SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mlops.core.errors import ConfigError
from airflow_mlops.core.validation import (
    ValidationReport,
    describe_failures,
    exception_messages,
    log_validation_to_mlflow,
    report_from_result,
    validate_frame,
    write_data_docs,
)

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "include" / "expectations" / "churn.json"


def failed_columns(report: ValidationReport) -> set[str | None]:
    return {f.column for f in report.failed}


def failures_for(report: ValidationReport, column: str, expectation: str | None = None):
    return [f for f in report.failed if f.column == column and (expectation is None or f.expectation == expectation)]


def test_suite_file_is_gx_suite_json_named_churn():
    data = json.loads(SUITE.read_text())
    assert data["name"] == "churn"
    types = {e["type"] for e in data["expectations"]}
    assert {"expect_column_values_to_not_be_null", "expect_column_values_to_be_in_type_list"} <= types


def test_clean_data_passes(churn_frame):
    report = validate_frame(churn_frame, SUITE, data_name="clean")
    assert report.success, describe_failures(report)
    assert report.failed == []
    assert report.suite_name == "churn"
    assert report.evaluated == len(json.loads(SUITE.read_text())["expectations"])
    assert report.result["success"] is True
    json.dumps(report.result)  # JSON-able as it is
    assert "all" in describe_failures(report) and "passed" in describe_failures(report)


def test_clean_data_passes_after_csv_round_trip(churn_frame, tmp_path):
    """What the pipeline really sees: pandas 3 reads text columns as the `str` dtype."""
    import pandas as pd

    path = tmp_path / "batch.csv"
    churn_frame.to_csv(path, index=False)
    report = validate_frame(pd.read_csv(path), SUITE)
    assert report.success, describe_failures(report)


def test_bad_batch_fails_naming_columns_rules_and_values(bad_churn_frame):
    report = validate_frame(bad_churn_frame, SUITE, data_name="bad")
    assert not report.success
    assert {"tenure_months", "monthly_charges", "contract"} <= failed_columns(report)

    nulls = failures_for(report, "monthly_charges", "expect_column_values_to_not_be_null")[0]
    assert nulls.observed["unexpected_count"] == 134
    lifetime = failures_for(report, "contract", "expect_column_values_to_be_in_set")[0]
    assert "lifetime" in lifetime.observed["partial_unexpected_list"]
    tenure_type = failures_for(report, "tenure_months", "expect_column_values_to_be_in_type_list")[0]
    assert "unknown" in tenure_type.observed["partial_unexpected_list"]

    text = describe_failures(report)
    assert "column 'monthly_charges': expect_column_values_to_not_be_null() failed: 134 of 400 values" in text
    assert "column 'contract': expect_column_values_to_be_in_set(" in text and "'lifetime'" in text
    assert "'unknown'" in text
    assert str(SUITE) in text  # what to do: fix the data or the suite
    assert all(isinstance(f.as_dict(), dict) for f in report.failed)


def test_bad_batch_after_csv_round_trip_fails(bad_churn_frame, tmp_path):
    import pandas as pd

    path = tmp_path / "bad.csv"
    bad_churn_frame.to_csv(path, index=False)
    report = validate_frame(pd.read_csv(path), SUITE)
    assert {"tenure_months", "monthly_charges", "contract"} <= failed_columns(report)


def test_negative_tenure_fails_the_range_rule_with_examples(churn_frame):
    df = churn_frame.copy()
    df.loc[df.index[:12], "tenure_months"] = -5.0
    report = validate_frame(df, SUITE)
    (failure,) = report.failed
    assert (failure.column, failure.expectation) == ("tenure_months", "expect_column_values_to_be_between")
    assert failure.observed["unexpected_count"] == 12
    line = failure.describe()
    assert "expect_column_values_to_be_between(min=0, max=72) failed: 12 of 2000 values (0.6%) unexpected" in line
    assert "e.g. [-5]" in line


def test_all_null_numeric_column_fails(churn_frame):
    """Range rules skip nulls; the not-null rule must catch a column that is entirely empty."""
    df = churn_frame.copy()
    df["data_usage_gb"] = float("nan")
    report = validate_frame(df, SUITE)
    assert not report.success
    assert failures_for(report, "data_usage_gb", "expect_column_values_to_not_be_null")
    assert not failures_for(report, "data_usage_gb", "expect_column_values_to_be_between")  # GX skipped them all


def test_strings_in_numeric_column_fail_the_type_rule(churn_frame):
    df = churn_frame.copy()
    df["support_calls"] = df["support_calls"].astype(str)
    report = validate_frame(df, SUITE)
    (type_failure,) = failures_for(report, "support_calls", "expect_column_values_to_be_in_type_list")
    assert type_failure.observed == "str"


def test_missing_column_fails_naming_it(churn_frame):
    report = validate_frame(churn_frame.drop(columns=["region"]), SUITE)
    assert not report.success
    (columns,) = [f for f in report.failed if f.expectation == "expect_table_columns_to_match_set"]
    assert columns.observed["mismatched"] == {"missing": ["region"]}
    assert "missing ['region']" in columns.describe()
    # The column rules cannot run at all: GX hides that in exception_info, we count it as failure.
    crashed = failures_for(report, "region")
    assert crashed and all(f.exception for f in crashed)


def test_rule_that_raises_inside_gx_is_a_failure(churn_frame, tmp_path):
    suite = tmp_path / "ghost.json"
    suite.write_text(
        json.dumps(
            {
                "name": "ghost",
                "expectations": [
                    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "ghost", "min_value": 0}}
                ],
            }
        )
    )
    report = validate_frame(churn_frame, suite)
    assert not report.success
    (failure,) = report.failed
    assert failure.column == "ghost" and failure.exception
    assert "could not run" in failure.describe()


@pytest.mark.parametrize(
    "exception_info",
    [
        {"raised_exception": True, "exception_message": "boom", "exception_traceback": "Traceback ..."},
        {
            "MetricConfigurationID(metric_name='column_values.between.condition')": {
                "raised_exception": True,
                "exception_message": "boom",
                "exception_traceback": "Traceback ...",
            }
        },
    ],
    ids=["flat", "keyed-by-metric"],
)
def test_exception_info_counts_as_failure_even_when_success_is_true(exception_info):
    result = {
        "success": True,
        "suite_name": "s",
        "results": [
            {
                "success": True,
                "expectation_config": {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x"}},
                "result": {},
                "exception_info": exception_info,
            },
            {
                "success": True,
                "expectation_config": {"type": "expect_column_to_exist", "kwargs": {"column": "y"}},
                "result": {},
                "exception_info": {"raised_exception": False, "exception_message": None, "exception_traceback": None},
            },
        ],
    }
    assert exception_messages(exception_info) == ["boom"]
    report = report_from_result(result)
    assert not report.success
    assert report.evaluated == 2
    (failure,) = report.failed
    assert (failure.column, failure.exception) == ("x", "boom")


def test_exception_messages_ignores_clean_info():
    assert exception_messages({}) == []
    assert exception_messages(None) == []
    assert exception_messages({"raised_exception": False, "exception_message": None}) == []
    assert exception_messages({"m1": {"raised_exception": False, "exception_message": None}}) == []


def test_missing_suite_file_is_config_error_naming_it(churn_frame, tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=r"nope\.json: expectation suite not found"):
        validate_frame(churn_frame, missing)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not valid JSON"),
        ("[]", r"must be a JSON object"),
        ('{"expectations": []}', r"name"),
        ('{"name": "x", "expectations": []}', r"non-empty list"),
        (
            '{"name": "x", "expectations": [{"type": "expect_column_to_be_awesome", "kwargs": {}}]}',
            r"expectations\[0\] \(expect_column_to_be_awesome\)",
        ),
        (
            '{"name": "x", "expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {}}]}',
            r"expectations\[0\]",
        ),
    ],
    ids=["syntax", "not-object", "no-name", "no-expectations", "unknown-type", "missing-kwargs"],
)
def test_invalid_suite_file_is_config_error_naming_it(churn_frame, tmp_path, content, message):
    suite = tmp_path / "broken_suite.json"
    suite.write_text(content)
    with pytest.raises(ConfigError, match=r"broken_suite\.json: .*" + message):
        validate_frame(churn_frame, suite)


@pytest.fixture
def bad_report(bad_churn_frame) -> ValidationReport:
    return validate_frame(bad_churn_frame, SUITE, data_name="bad")


def test_data_docs_html_is_written(bad_report, tmp_path):
    index = write_data_docs(bad_report, tmp_path / "docs")
    assert index == (tmp_path / "docs" / "index.html").resolve()
    html = index.read_text()
    assert "churn" in html
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert len(pages) == 1
    page = pages[0].read_text()
    assert "churn" in page and "lifetime" in page
    assert (tmp_path / "docs" / "expectations" / "churn.html").exists()
    assert (tmp_path / "docs" / "static").is_dir()


def test_log_validation_to_mlflow_stores_result_and_docs(bad_report, tmp_path, mlflow_client):
    docs = write_data_docs(bad_report, tmp_path / "docs").parent
    run_id = log_validation_to_mlflow(
        bad_report,
        docs,
        client=mlflow_client,
        experiment="churn-validation",
        run_name="validate",
        tags={"airflow.dag_id": "churn_retrain"},
    )
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["validation_success"] == 0.0
    assert run.data.metrics["expectations_evaluated"] == bad_report.evaluated
    assert run.data.metrics["expectations_failed"] == len(bad_report.failed)
    assert run.data.tags["airflow.dag_id"] == "churn_retrain"
    assert run.data.tags["validation.suite"] == "churn"

    top = {a.path for a in mlflow_client.list_artifacts(run_id, "validation")}
    assert {"validation/result.json", "validation/data_docs", "validation/failures.txt"} <= top
    docs_files = {a.path for a in mlflow_client.list_artifacts(run_id, "validation/data_docs")}
    assert "validation/data_docs/index.html" in docs_files
    stored = json.loads(
        Path(mlflow_client.download_artifacts(run_id, "validation/result.json", str(tmp_path))).read_text()
    )
    assert stored["success"] is False
