"""What real CSV exports need: source.na_values / dtypes / id_columns and string labels with a positive class.

A Telco-like export (the public customer-churn sample's traps): blank `total_charges` for new
customers, "Yes"/"No" labels, a `customer_id` to join on and a zip code with leading zeros. Real
pandas, scikit-learn, Great Expectations and an MLflow SQLite store.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core import evaluation, labels, registry, training
from airflow_mlops.core.config import parse_config
from airflow_mlops.core.data import read_snapshot, take_snapshot
from airflow_mlops.core.errors import ConfigError, DataSourceError, TrainingError
from airflow_mlops.core.evaluation import paired_bootstrap
from airflow_mlops.core.rows import split_roles

DIGEST = "sha256:" + "cd" * 32
NEW_CUSTOMERS = 8  # rows with tenure 0, whose total_charges the export leaves blank (" ")


def telco_frame(rows: int = 1500, seed: int = 11) -> pd.DataFrame:
    """Telco-like rows as the export writes them: " " total charges for new customers, Yes/No labels."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    tenure[rng.choice(rows, NEW_CUSTOMERS, replace=False)] = 0
    contract = rng.choice(["Month-to-month", "One year", "Two year"], rows, p=[0.55, 0.25, 0.2])
    monthly = rng.uniform(18, 118, rows).round(2)
    total = np.where(tenure == 0, " ", (tenure * monthly).round(2).astype(str))
    logit = -0.8 + 1.8 * (contract == "Month-to-month") - 0.05 * tenure + 0.02 * (monthly - 65)
    churn = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    return pd.DataFrame(
        {
            "customer_id": [f"{i:04d}-{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}QX" for i in range(rows)],
            "zip_code": [f"{z:05d}" for z in rng.integers(500, 99999, rows)],  # many start with 0
            "tenure": tenure,
            "contract": contract,
            "monthly_charges": monthly,
            "total_charges": total,
            "churn": churn,
        }
    )


def telco_config(path: Path, *, source: dict | None = None, positive_class=None, **extra):
    target = {"column": "churn", "task": "binary_classification"}
    if positive_class is not None:
        target["positive_class"] = positive_class
    return parse_config(
        {
            "pipeline": "telco",
            "source": {"path": str(path), **(source or {})},
            "target": target,
            "features": [
                {"name": "tenure", "type": "numeric"},
                {"name": "monthly_charges", "type": "numeric"},
                {"name": "total_charges", "type": "numeric"},
                {"name": "contract", "type": "categorical"},
            ],
            "validation": {"suite": "telco.json"},
            "model": {
                "name": "telco_churn",
                "candidates": [
                    {
                        "name": "logreg",
                        "estimator": "sklearn.linear_model.LogisticRegression",
                        "params": {"max_iter": 500},
                    },
                ],
            },
            "metrics": {"primary": "roc_auc", "others": ["f1", "precision", "recall", "accuracy"]},
            "split": {"strategy": "random", "test_size": 0.25, "validation_size": 0.2},
            "evaluation": {"min_test_rows": 200},
            "seed": 5,
            **extra,
        },
        file="<telco>",
    )


READY = {"na_values": [" "], "dtypes": {"total_charges": "float", "zip_code": "string"}, "id_columns": ["customer_id"]}


@pytest.fixture
def telco_csv(tmp_path) -> Path:
    path = tmp_path / "telco.csv"
    telco_frame().to_csv(path, index=False)
    return path


def snapshot(config, tmp_path) -> pd.DataFrame:
    return read_snapshot(take_snapshot(config, snapshot_root=tmp_path / "snapshots")["uri"])


def message(config, tmp_path) -> str:
    with pytest.raises(DataSourceError) as info:
        take_snapshot(config, snapshot_root=tmp_path / "snapshots")
    return str(info.value)


# --------------------------------------------------------------------------- reading


def test_blank_numbers_fail_at_snapshot_naming_the_column_and_na_values(telco_csv, tmp_path):
    """The reproduction: without source.na_values the blank cells made total_charges text, and training
    died inside scikit-learn's imputer ("could not convert string to float: ' '", no column named)."""
    text = message(telco_config(telco_csv), tmp_path)

    assert str(telco_csv) in text
    assert f"column 'total_charges' is a numeric feature, but {NEW_CUSTOMERS} of 1500 value(s) are not numbers" in text
    assert "e.g. ' '" in text
    assert 'source.na_values: [" "]' in text


def test_declared_float_names_three_values_and_what_to_do(tmp_path):
    frame = telco_frame(200)
    frame.loc[[3, 7], "total_charges"] = "  "  # two spaces: na_values [" "] would not match it
    frame.loc[[10, 11], "total_charges"] = "unknown"
    frame.loc[12, "total_charges"] = "12,50"
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    config = telco_config(path, source={"na_values": [" "], "dtypes": {"total_charges": "float"}})

    text = message(config, tmp_path)

    assert text.startswith(f"{path}: column 'total_charges' is declared float in source.dtypes, but 5 of 200 value(s)")
    assert "e.g. '  ', 'unknown', '12,50';" in text  # three distinct values, repr'd: the blank is visible
    assert 'source.na_values: [" ", "  "]' in text and "declare the column string in source.dtypes" in text


def test_export_with_options_snapshots_typed_and_keeps_ids_and_leading_zeros(telco_csv, tmp_path):
    frame = snapshot(telco_config(telco_csv, source=READY), tmp_path)

    assert frame["total_charges"].dtype == "float64" and frame["total_charges"].isna().sum() == NEW_CUSTOMERS
    assert frame["zip_code"].tolist() == telco_frame()["zip_code"].tolist()  # "00917" stays "00917"
    assert frame["zip_code"].str.startswith("0").any()
    assert frame["customer_id"].is_unique  # the id column is kept for joins
    assert frame["churn"].tolist() == telco_frame()["churn"].tolist()


def test_zip_code_read_without_a_dtype_loses_its_zeros(telco_csv, tmp_path):
    """Why source.dtypes exists: pandas' guess turns "00917" into 917."""
    frame = snapshot(telco_config(telco_csv, source={"na_values": [" "]}), tmp_path)
    assert frame["zip_code"].dtype == "int64"


def test_missing_id_column_is_an_error_naming_file_and_column(telco_csv, tmp_path):
    config = telco_config(telco_csv, source={**READY, "id_columns": ["customerID"]})
    text = message(config, tmp_path)
    assert str(telco_csv) in text and "missing required column(s) 'customerID' (source.id_columns)" in text


def test_ids_are_never_features(telco_csv):
    config = telco_config(telco_csv, source=READY)
    pipeline = training.build_pipeline(config, config.candidates[0])
    used = {c for _, _, cols in pipeline.named_steps["preprocess"].transformers for c in cols}
    assert "customer_id" not in used and "zip_code" not in used


def test_int_with_missing_values_is_nullable_and_trains(tmp_path):
    frame = telco_frame(600)
    frame["support_calls"] = (np.arange(600) % 7).astype(object)
    frame.loc[[0, 1, 50, 300], "support_calls"] = None  # empty cells, two of them in the input example
    path = tmp_path / "calls.csv"
    frame.to_csv(path, index=False)
    config = telco_config(
        path,
        source={**READY, "dtypes": {"support_calls": "int", "total_charges": "float"}},
        features=[
            {"name": "support_calls", "type": "numeric"},
            {"name": "total_charges", "type": "numeric"},
            {"name": "contract", "type": "categorical"},
        ],
        evaluation={"min_test_rows": 50},
    )
    data = snapshot(config, tmp_path)
    assert data["support_calls"].dtype == "Int64" and data["support_calls"].isna().sum() == 4

    training.check_training_data(data, config)
    model, _ = training.fit_candidate(data, config, "logreg")
    proba = model.predict_proba(data[config.feature_names])
    assert np.isfinite(proba).all()


def test_int_with_fractions_and_bool_with_other_words_are_errors(tmp_path):
    frame = telco_frame(100).assign(tenure=lambda f: f["tenure"].astype(float), paperless=["Yes", "no"] * 50)
    frame.loc[4, "tenure"] = 2.5
    path = tmp_path / "types.csv"
    frame.to_csv(path, index=False)
    text = message(telco_config(path, source={**READY, "dtypes": {"tenure": "int"}}), tmp_path)
    assert (
        "column 'tenure' is declared int in source.dtypes, but 1 of 100 value(s) are not whole numbers, e.g. 2.5"
        in text
    )

    ok = snapshot(
        telco_config(path, source={**READY, "dtypes": {"paperless": "bool", "total_charges": "float"}}), tmp_path
    )
    assert ok["paperless"].dtype == "boolean" and ok["paperless"].tolist()[:2] == [True, False]
    frame.loc[9, "paperless"] = "maybe"
    frame.to_csv(path, index=False)
    text = message(telco_config(path, source={**READY, "dtypes": {"paperless": "bool"}}), tmp_path)
    assert "column 'paperless' is declared bool in source.dtypes, but 1 of 100 value(s) are not true/false" in text


def test_words_in_a_numeric_feature_reach_training_as_a_clear_error(tmp_path):
    """Words (not blanks) are bad data: the snapshot keeps them for the expectation suite; training names them."""
    frame = telco_frame(300)
    frame.loc[[5, 6], "total_charges"] = "unknown"
    path = tmp_path / "words.csv"
    frame.to_csv(path, index=False)
    config = telco_config(path, source={"na_values": [" "]})
    data = snapshot(config, tmp_path)
    with pytest.raises(
        TrainingError,
        match=r"numeric feature 'total_charges' holds text .*2 of 300 value\(s\) are "
        r"not numbers, e\.g\. 'unknown'; .*source\.na_values",
    ):
        training.check_training_data(data, config)


def test_typed_snapshot_passes_great_expectations(telco_csv, tmp_path):
    from airflow_mlops.core.validation import validate_frame

    numbers = ["int", "int64", "float", "float64", "Int64Dtype", "Float64Dtype"]
    suite = {
        "name": "telco",
        "expectations": [
            {
                "type": "expect_column_values_to_be_in_type_list",
                "kwargs": {"column": "total_charges", "type_list": numbers},
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "total_charges", "mostly": 0.99}},
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "total_charges", "min_value": 0}},
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "churn", "value_set": ["Yes", "No"]}},
            {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "zip_code", "regex": r"^\d{5}$"}},
            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "customer_id"}},
        ],
    }
    path = tmp_path / "telco.json"
    path.write_text(json.dumps(suite))
    report = validate_frame(snapshot(telco_config(telco_csv, source=READY), tmp_path), path)
    assert report.success, report.describe_failures()


# --------------------------------------------------------------------------- the positive class


def binary(positive_class=None):
    return telco_config(Path("telco.csv"), positive_class=positive_class)


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        ([0, 1], 1),
        ([False, True], True),
        (["No", "Yes"], "Yes"),
        (["no", "yes"], "yes"),
        (["N", "Y"], "Y"),
        (np.array(["0", "1"], dtype=object), "1"),
        (np.array([0, 1]), 1),
    ],
)
def test_inferred_positive_class(classes, expected):
    positive = labels.positive_class(binary(), classes)
    assert positive == expected and type(positive) is type(expected)


def test_text_labels_without_a_positive_word_warn_and_take_the_last(caplog):
    with caplog.at_level(logging.WARNING, logger="airflow_mlops.core.labels"):
        assert labels.positive_class(binary(), ["churned", "stayed"]) == "stayed"
    assert "set target.positive_class" in caplog.text


def test_configured_positive_class_wins_and_must_be_a_class():
    assert labels.positive_class(binary("No"), ["No", "Yes"]) == "No"
    with pytest.raises(ConfigError, match=r"target.positive_class: 'yes' is not one of the classes .*'No', 'Yes'"):
        labels.positive_class(binary("yes"), ["No", "Yes"])


def test_bootstrap_and_compute_metrics_agree_on_the_positive_class():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.choice(["No", "Yes"], 400, p=[0.7, 0.3])
    p_yes = np.clip((y == "Yes") * 0.3 + rng.uniform(0, 0.7, 400), 0, 1)
    a, b = np.column_stack([1 - p_yes, p_yes]), np.column_stack([p_yes, 1 - p_yes])  # b: a useless model
    for positive in ("Yes", "No"):
        for metric in ("f1", "roc_auc", "precision", "recall"):
            want_a = training.compute_metrics(
                "binary_classification",
                y,
                np.where(p_yes > 0.5, "Yes", "No"),
                a,
                [metric],
                labels=["No", "Yes"],
                positive=positive,
            )[metric]
            res = paired_bootstrap(
                y,
                a,
                b,
                metric,
                task="binary_classification",
                labels=["No", "Yes"],
                n=100,
                seed=0,
                confidence=0.9,
                positive=positive,
            )
            want_b = training.compute_metrics(
                "binary_classification",
                y,
                np.where(p_yes > 0.5, "No", "Yes"),
                b,
                [metric],
                labels=["No", "Yes"],
                positive=positive,
            )[metric]
            assert res.diff == pytest.approx(want_a - want_b), (positive, metric)
        auc = training.compute_metrics(
            "binary_classification", y, y, a, ["roc_auc"], labels=["No", "Yes"], positive=positive
        )["roc_auc"]
        assert auc == pytest.approx(roc_auc_score(y == positive, a[:, ["No", "Yes"].index(positive)]))
    f1 = {pos: f1_score(y, np.where(p_yes > 0.5, "Yes", "No"), pos_label=pos) for pos in ("Yes", "No")}
    assert f1["Yes"] != pytest.approx(f1["No"])


# --------------------------------------------------------------------------- end to end


def train_register_evaluate(client, config, data):
    split = split_roles(data, config)
    result = training.train_candidate(
        split,
        config,
        "logreg",
        client=client,
        experiment=config.name,
        data_digest=DIGEST,
        data_uri="file:///snapshots/telco.parquet",
        tags={},
    )
    reg = registry.register_challenger(
        client,
        config.model_name,
        result["model_uri"],
        result["run_id"],
        tags={"data.digest": DIGEST, "airflow.run_id": "telco"},
    )
    uri = f"models:/{config.model_name}/{reg['version']}"
    return result, reg["version"], uri, split.test


def test_telco_export_snapshots_trains_and_is_judged_with_yes_as_positive(mlflow_client, telco_csv, tmp_path):
    from sklearn.metrics import f1_score, roc_auc_score

    config = telco_config(telco_csv, source=READY)
    data = snapshot(config, tmp_path)
    trained, version, uri, test = train_register_evaluate(mlflow_client, config, data)
    assert mlflow_client.get_run(trained["run_id"]).data.params["positive_class"] == "Yes"

    result = evaluation.evaluate(mlflow_client, config, test, challenger_uri=uri, champion_uri=None)
    assert result.positive_class == "Yes" and result.verdict.decision == evaluation.NO_BASELINE_PROMOTE

    # By hand, on the same rows and the same predictions.
    rows = result.test_rows.frame
    model = training.load_model(uri)
    p_yes = model.predict_proba(rows[config.feature_names])[:, list(model.classes_).index("Yes")]
    y = rows["churn"].to_numpy()
    assert result.challenger_metrics["roc_auc"] == pytest.approx(roc_auc_score(y == "Yes", p_yes))
    assert result.challenger_metrics["roc_auc"] > 0.7
    pred = model.predict(rows[config.feature_names])
    assert result.challenger_metrics["f1"] == pytest.approx(f1_score(y, pred, pos_label="Yes"))

    # Saying "No" is positive changes the label metrics (AUC is symmetric: it does not change).
    as_no = evaluation.evaluate(
        mlflow_client, config._replace(positive_class="No"), test, challenger_uri=uri, champion_uri=None
    )
    assert as_no.positive_class == "No"
    assert as_no.challenger_metrics["f1"] == pytest.approx(f1_score(y, pred, pos_label="No"))
    assert as_no.challenger_metrics["f1"] != pytest.approx(result.challenger_metrics["f1"])
    assert as_no.challenger_metrics["roc_auc"] == pytest.approx(result.challenger_metrics["roc_auc"])

    run_id = evaluation.log_evaluation(
        mlflow_client,
        result,
        experiment="telco-evaluation",
        run_name="evaluate",
        tags={},
        model_name=config.model_name,
        challenger_version=version,
        champion_version=None,
    )
    assert mlflow_client.get_run(run_id).data.params["positive_class"] == "Yes"
    local = mlflow_client.download_artifacts(run_id, "evaluation", str(tmp_path))
    assert json.loads(Path(local, "verdict.json").read_text())["positive_class"] == "Yes"
    assert "positive class &#x27;Yes&#x27;" in Path(local, "report.html").read_text()


def test_champion_and_challenger_with_string_labels_get_a_bootstrap(mlflow_client, telco_csv, tmp_path):
    config = telco_config(telco_csv, source=READY)
    data = snapshot(config, tmp_path)
    _, _, champion_uri, test = train_register_evaluate(mlflow_client, config, data)
    richer = config._replace(candidates=(config.candidates[0]._replace(params={"C": 0.01}),))
    _, _, challenger_uri, _ = train_register_evaluate(mlflow_client, richer, data)

    result = evaluation.evaluate(mlflow_client, config, test, challenger_uri=challenger_uri, champion_uri=champion_uri)

    b = result.bootstrap
    assert result.signature_diff == [] and b is not None
    assert b.diff == pytest.approx(result.challenger_metrics["roc_auc"] - result.champion_metrics["roc_auc"])
