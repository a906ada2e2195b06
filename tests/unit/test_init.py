"""`airflow-mlops init`: a starter config and suite from a sample file, that load, validate the sample and train."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from airflow_mlops import cli
from airflow_mlops.core import training, validation
from airflow_mlops.core.config import load_config
from airflow_mlops.core.rows import split_roles


@pytest.fixture
def project(tmp_path):
    """An empty project: include/ is written by init, samples go under data/."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    return root


def init(capsys, project, *argv):
    code = cli.main(["init", *argv, "--project-root", str(project)])
    out, err = capsys.readouterr()
    return code, out, err


def written(project, name):
    config, suite = (
        project / "include" / "pipelines" / f"{name}.yaml",
        project / "include" / "expectations" / f"{name}.json",
    )
    return config, suite


def nothing_written(project):
    return not (project / "include").exists() or not any(p.is_file() for p in (project / "include").rglob("*"))


def trains(config, frame):
    """The config's first candidate fits on its train rows and scores its validation rows."""
    split = split_roles(frame, config)
    model, _ = training.fit_candidate(split.train, config, config.candidates[0].name)
    return training.model_metrics(model, split.validation, config)


def test_churn_sample_gives_a_time_split_binary_pipeline_that_validates_and_trains(capsys, project, churn_frame):
    sample = project / "data" / "churn_sample.csv"
    churn_frame.to_csv(sample, index=False)
    code, out, err = init(capsys, project, "churn_demo", "--source", str(sample), "--target", "churned")
    assert code == 0, err
    config_path, suite_path = written(project, "churn_demo")
    config = load_config(config_path, check_estimators=True)
    assert (config.task, config.target, config.positive_class) == ("binary_classification", "churned", None)
    assert config.source.path == "data/churn_sample.csv" and config.source.allowed_roots == ("data",)
    assert config.source.date_column == "event_date" and config.source.id_columns == ("customer_id",)
    assert dict((f.name, f.type) for f in config.features) == {
        "tenure_months": "numeric",
        "monthly_charges": "numeric",
        "support_calls": "numeric",
        "data_usage_gb": "numeric",
        "contract": "categorical",
        "payment_method": "categorical",
        "region": "categorical",
    }
    assert config.split_strategy == "time" and (config.split.test_days, config.split.validation_days) == (1, 1)
    assert config.metrics.primary == "roc_auc" and config.expectation_suite == "include/expectations/churn_demo.json"
    assert config.model_name == "churn_demo_model" and config.seed == 42
    assert config.evaluation.min_test_rows == 120  # 60% of the 200 rows of the one test day
    # 60% of the ~50 churners (25%) among those 200 rows: the default 50 would reject every night on this data
    assert 20 <= config.evaluation.min_test_events <= 40
    assert (config.schedule.retrain, config.schedule.drift_monitor, config.schedule.timezone) == (
        "0 2 * * *",
        "0 6 * * *",
        "UTC",
    )
    text = config_path.read_text()
    assert "# REVIEW: inferred: 2 distinct values (0, 1) in 2000 rows" in text
    assert "# guard_rails:" in text and "# floors:" in text and "#   ml_team:" in text

    report = validation.validate_frame(pd.read_csv(sample), suite_path)
    assert report.success, report.describe_failures()
    suite = json.loads(suite_path.read_text())
    rules = {(e["type"], e["kwargs"].get("column")): e for e in suite["expectations"]}
    assert all(e["meta"]["notes"] for e in suite["expectations"])
    assert rules["expect_column_values_to_be_in_set", "contract"]["kwargs"]["value_set"] == [
        "month-to-month",
        "one-year",
        "two-year",
    ]
    assert rules["expect_column_values_to_be_in_set", "churned"]["kwargs"]["value_set"] == [0, 1]
    assert ("expect_column_values_to_be_unique", "customer_id") in rules
    assert rules["expect_column_values_to_be_between", "tenure_months"]["kwargs"] == {
        "column": "tenure_months",
        "min_value": 0,
        "max_value": 80,
    }  # 0..72 widened by 10% of the range, not below 0
    assert rules["expect_table_row_count_to_be_between", None]["kwargs"] == {"min_value": 50}

    metrics = trains(config, pd.read_csv(sample))
    assert metrics["roc_auc"] > 0.65

    assert "Wrote include/pipelines/churn_demo.yaml" in out and "Wrote include/expectations/churn_demo.json" in out
    review = out.split("Review these before your first run:")[1]
    for item in (
        "task: binary_classification",
        "date column: event_date",
        "id column",
        "customer_id",
        "min_test_rows: 120",
        "split: time",
    ):
        assert item in review


def test_diabetes_outside_the_project_gives_a_regression_pipeline_that_validates_and_trains(capsys, project, tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    sample = tmp_path / "elsewhere" / "diabetes.csv"
    sample.parent.mkdir()
    frame.to_csv(sample, index=False)
    code, out, err = init(capsys, project, "diabetes", "--source", str(sample), "--target", "progression")
    assert code == 0, err
    config_path, suite_path = written(project, "diabetes")
    config = load_config(config_path, check_estimators=True)
    assert (config.task, config.metrics.primary, config.metrics.others) == ("regression", "rmse", ("mae", "r2"))
    assert config.source.path == str(sample.resolve()) and config.source.allowed_roots == (
        str(sample.parent.resolve()),
    )
    assert config.categorical_features == ["sex"]  # two values: a code
    assert len(config.numeric_features) == 9 and config.source.date_column is None and not config.source.id_columns
    assert [c.estimator for c in config.candidates] == [
        "sklearn.linear_model.Ridge",
        "sklearn.ensemble.HistGradientBoostingRegressor",
    ]
    assert config.split_strategy == "random" and config.evaluation.min_test_rows == 53  # 60% of 89 test rows
    assert config.evaluation.leakage_threshold is None and 0 < config.evaluation.margin < 1

    report = validation.validate_frame(pd.read_csv(sample), suite_path)
    assert report.success, report.describe_failures()
    metrics = trains(config, pd.read_csv(sample))
    assert metrics["r2"] > 0.2 and metrics["rmse"] < 70


def test_multiclass_text_target_gets_accuracy_and_trains(capsys, project):
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.drop(columns="target").assign(species=iris.target_names[iris.target])
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    sample = project / "data" / "iris.parquet"
    frame.to_parquet(sample)
    code, out, err = init(capsys, project, "iris", "--source", str(sample), "--target", "species")
    assert code == 0, err
    config_path, suite_path = written(project, "iris")
    config = load_config(config_path)
    assert (config.task, config.metrics.primary, config.source.format) == (
        "multiclass_classification",
        "accuracy",
        "parquet",
    )
    assert validation.validate_frame(frame, suite_path).success
    assert trains(config, frame)["accuracy"] > 0.8


def test_telco_like_export_gets_na_values_a_float_dtype_and_yes_as_positive_class(capsys, project):
    rows = 60
    frame = pd.DataFrame(
        {
            "customerID": [f"{i:04d}-QWERT" for i in range(rows)],
            "Contract": ["Month-to-month", "One year", "Two year"] * (rows // 3),
            "tenure": list(range(rows)),
            "TotalCharges": [" " if i % 20 == 0 else f"{20.5 * i + 3:.2f}" for i in range(rows)],
            "Churn": ["Yes" if i % 4 == 0 else "No" for i in range(rows)],
        }
    )
    sample = project / "data" / "telco.csv"
    frame.to_csv(sample, index=False)
    code, out, err = init(capsys, project, "telco", "--source", str(sample), "--target", "Churn")
    assert code == 0, err
    config_path, suite_path = written(project, "telco")
    raw = yaml.safe_load(config_path.read_text())
    assert raw["source"]["na_values"] == [" "] and raw["source"]["dtypes"] == {"TotalCharges": "float"}
    assert raw["source"]["id_columns"] == ["customerID"]
    assert raw["target"] == {"column": "Churn", "task": "binary_classification", "positive_class": "Yes"}
    assert {"name": "TotalCharges", "type": "numeric"} in raw["features"]
    assert {"name": "Contract", "type": "categorical"} in raw["features"]
    assert "'Yes': a conventional positive label" in config_path.read_text()
    assert load_config(config_path).positive_class == "Yes"
    read_back = pd.read_csv(sample, na_values=[" "], dtype={"TotalCharges": "float64"})
    assert validation.validate_frame(read_back, suite_path).success
    assert "positive class: 'Yes'" in out and "source.na_values" in out


def test_minority_class_is_positive_without_a_conventional_label_and_a_row_number_is_an_id(capsys, project):
    frame = pd.DataFrame({"x": range(40), "outcome": ["stayed"] * 30 + ["left"] * 10})
    sample = project / "data" / "s.csv"
    frame.to_csv(sample)  # pandas writes its index as a nameless first column: "Unnamed: 0" when read back
    code, _, err = init(capsys, project, "leavers", "--source", str(sample), "--target", "outcome")
    assert code == 0, err
    text = written(project, "leavers")[0].read_text()
    config = load_config(written(project, "leavers")[0])
    assert config.positive_class == "left" and "the minority class (25.0% of rows)" in text
    assert config.source.id_columns == ("Unnamed: 0",) and config.feature_names == [
        "x"
    ]  # x: 0..39 too, but no row number's name


def test_refuses_to_overwrite_and_writes_neither_file(capsys, project):
    sample = project / "data" / "s.csv"
    pd.DataFrame({"x": range(40), "y": [0, 1] * 20}).to_csv(sample, index=False)
    assert init(capsys, project, "demo", "--source", str(sample), "--target", "y")[0] == 0
    config_path, suite_path = written(project, "demo")
    before = config_path.read_text()
    config_path.write_text(before + "# edited by hand\n")
    code, out, err = init(capsys, project, "demo", "--source", str(sample), "--target", "y")
    assert code == 2 and out == ""
    assert str(config_path) in err and str(suite_path) in err and "never overwrites" in err
    assert config_path.read_text().endswith("# edited by hand\n")

    config_path.unlink()  # only the suite is left: still refused, and the config is not written either
    code, _, err = init(capsys, project, "demo", "--source", str(sample), "--target", "y")
    assert code == 2 and str(suite_path) in err and str(config_path) not in err
    assert not config_path.exists()


def _write(path, content):
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return path


@pytest.mark.parametrize(
    ("file_name", "content", "argv", "expected"),
    [
        ("empty.csv", "", (), "file is empty"),
        ("header_only.csv", "a,b,y\n", (), "zero data rows"),
        ("one_column.csv", "y\n1\n0\n1\n", (), "single column 'y'"),
        ("binary.csv", b"PAR1\x00\x01\x02", (), "binary content"),
        ("broken.parquet", b"not parquet at all", (), "corrupted Parquet"),
        ("sample.xlsx", "a,y\n1,0\n", (), "unknown format '.xlsx'"),
        ("missing.csv", None, (), "sample file not found"),
        ("no_target.csv", "a,b\n1,2\n3,4\n", (), "target column 'y' is not in the sample; its columns: a, b"),
        ("constant.csv", "a,y\n1,1\n2,1\n3,1\n", (), "target column 'y' has a single value (1) in all 3 rows"),
        ("three.csv", "a,y\n1,a\n2,b\n3,c\n", ("--task", "binary_classification"), "needs exactly 2"),
        ("dates.csv", "a,y\n1,0\n2,1\n", ("--date-column", "when"), "--date-column 'when' is not in the sample"),
        ("not_dates.csv", "a,when,y\n1,soon,0\n2,later,1\n", ("--date-column", "when"), "does not hold ISO dates"),
        ("text.csv", "a,y\n1,x\n2,z\n", ("--task", "regression"), "regression needs numbers"),
        ("unlabelled.csv", "a,y\n1,0\n2,\n3,1\n", (), "target column 'y' is missing in 1 of 3 rows"),
    ],
)
def test_bad_input_is_refused_naming_the_file(capsys, project, file_name, content, argv, expected):
    sample = project / "data" / file_name
    if content is not None:
        _write(sample, content)
    code, out, err = init(capsys, project, "demo", "--source", str(sample), "--target", "y", *argv)
    assert code == 2 and out == ""
    assert str(sample) in err and expected in err, err
    assert nothing_written(project)


@pytest.mark.parametrize("name", ["Churn", "2churn", "churn-v2", "a" * 65])
def test_a_name_that_cannot_name_dags_is_refused(capsys, project, name):
    sample = _write(project / "data" / "s.csv", "a,y\n1,0\n2,1\n")
    code, _, err = init(capsys, project, name, "--source", str(sample), "--target", "y")
    assert code == 2 and f"{name!r} cannot name a pipeline" in err
    assert nothing_written(project)
