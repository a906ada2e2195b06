"""Ids in label and prediction files are compared under one dtype (core.performance.join), and a join of
nothing names its likely cause with a few ids of each side."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.errors import PerformanceError
from airflow_mlops.core.performance import join_day
from airflow_mlops.core.performance.join import check_join_rate

DAY = dt.date(2026, 3, 1)
IDS = [123, 456, 789, 1011, 1213]


def predictions(ids) -> pd.DataFrame:
    """A day's predictions as batch scoring writes them (ids as the batch file held them)."""
    n = len(ids)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "score": np.linspace(0.1, 0.9, n),
            "predicted": [0, 1] * (n // 2) + [0] * (n % 2),
            "model_version": "3",
        }
    )


def labels(ids) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ids, "churned": [1, 0] * (len(ids) // 2) + [1] * (len(ids) % 2)})


@pytest.mark.parametrize(
    "label_ids",
    [
        pd.Series(IDS, dtype="int64"),  # a labels CSV read with numbers
        pd.Series(IDS, dtype="float64"),  # a column that once held a blank: 123.0
        pd.Series(IDS, dtype="Int64"),  # pandas' nullable integers (a Parquet export)
        pd.Series(IDS, dtype=object),  # numbers in a column of Python objects
        pd.Series([f" {i} " for i in IDS]),  # text padded with spaces
    ],
    ids=["int64", "float64", "Int64", "object", "padded-text"],
)
def test_labels_with_ids_as_numbers_join_predictions_with_the_same_ids_as_text_fully(label_ids):
    result = join_day(predictions([str(i) for i in IDS]), labels(label_ids), ["customer_id"], "churned", day=DAY)

    assert result.matched == len(IDS) and result.join_rate == 1.0 and result.hint == ""
    assert sorted(result.joined["customer_id"]) == sorted(str(i) for i in IDS)


def test_a_declared_int_id_compares_numbers_so_leading_zeros_do_not_count():
    zero_padded = [f"{i:05d}" for i in IDS]
    result = join_day(
        predictions(zero_padded), labels(IDS), ["customer_id"], "churned", id_dtypes={"customer_id": "int"}
    )

    assert result.matched == len(IDS)


def test_a_declared_int_id_that_is_not_a_number_is_refused_naming_column_side_and_values():
    with pytest.raises(PerformanceError) as err:
        join_day(
            predictions(["00123", "C-7", "1.5"]),
            labels([123, 7, 1]),
            ["customer_id"],
            "churned",
            day=DAY,
            id_dtypes={"customer_id": "int"},
        )
    assert "predictions of 2026-03-01: id column 'customer_id' holds 2 value(s) that are not whole numbers" in str(
        err.value
    )
    assert "'C-7', '1.5'" in str(err.value) and "source.dtypes declares it 'int'" in str(err.value)


def test_leading_zeros_against_numbers_join_nothing_and_the_message_names_leading_zeros(caplog):
    many = list(range(100, 110))
    caplog.set_level(logging.WARNING, logger="airflow_mlops.core.performance.join")

    result = join_day(predictions([f"00{i}" for i in many]), labels(many), ["customer_id"], "churned", day=DAY)

    assert result.matched == 0
    assert "id column 'customer_id': the ids differ by leading zeros" in result.hint
    assert "declare the column 'int' in source.dtypes" in result.hint
    # at most 3 ids of each side
    assert "predictions '00100', '00101', '00102' (str)" in result.hint and "'00103'" not in result.hint
    assert "labels 100, 101, 102 (int64)" in result.hint and "103" not in result.hint
    assert (
        "no prediction of 2026-03-01 joined a label: id column 'customer_id': the ids differ by leading zeros"
        in caplog.text
    )
    with pytest.raises(PerformanceError) as err:
        check_join_rate(result, 0.5, predictions_path="p.parquet", labels_path="l.csv")
    assert "join rate 0.0%" in str(
        err.value
    ) and "Likely cause: id column 'customer_id': the ids differ by leading zeros" in str(err.value)


def test_a_join_of_nothing_names_case_or_no_common_id():
    by_case = join_day(predictions(["ab1", "cd2"]), labels(["AB1", "CD2"]), ["customer_id"], "churned")
    assert by_case.matched == 0 and "differ in letter case only" in by_case.hint
    unrelated = join_day(predictions(["a1", "a2"]), labels([5, 6]), ["customer_id"], "churned")
    assert unrelated.matched == 0 and "numbers on one side, text on the other" in unrelated.hint
    assert "predictions 'a1', 'a2' (str), labels 5, 6 (int64)" in unrelated.hint
    other_day = join_day(predictions(["a1", "a2"]), labels(["b1", "b2"]), ["customer_id"], "churned")
    assert "no id in common" in other_day.hint
    # A partial join is no mystery: no hint.
    assert join_day(predictions(["a1", "a2"]), labels(["a1", "b2"]), ["customer_id"], "churned").hint == ""


def test_the_text_rule():
    from airflow_mlops.core.performance.join import canonical_ids

    got = canonical_ids(pd.Series([123, 123.0, "123", " 123 ", "00123", "Ab", 1.5, None], dtype=object)).tolist()
    assert got[:7] == ["123", "123", "123", "123", "00123", "Ab", "1.5"] and pd.isna(got[7])


# --------------------------------------------------------------------------- through a whole check (real MLflow store)


@pytest.fixture
def checked(tmp_path, mlops_home, mlflow_client):
    """churn.yaml with labels in a temp folder, a registered champion (no real model: a check never loads it), and
    a day whose predictions hold ids as numbers (a batch exported as Parquet) while its labels CSV pads them."""
    from conftest import CHURN_CONFIG

    from airflow_mlops.core.config import ScoringConfig, load_config
    from airflow_mlops.core.performance import predictions_path

    config = load_config(CHURN_CONFIG)
    config = config._replace(scoring=ScoringConfig(source=str(tmp_path / "batches"), labels=str(tmp_path / "labels")))
    run = mlflow_client.create_run(mlflow_client.create_experiment("churn"), run_name="train").info.run_id
    mlflow_client.create_registered_model(config.model_name)
    version = mlflow_client.create_model_version(config.model_name, source="file:///nowhere/model", run_id=run).version
    mlflow_client.set_registered_model_alias(config.model_name, "champion", version)
    ids = list(range(1000, 1300))
    path = predictions_path(config, DAY)
    path.parent.mkdir(parents=True)
    predictions(ids).assign(model_version=version).to_parquet(path, index=False)
    (tmp_path / "labels").mkdir()
    labels([f"{i:07d}" for i in ids]).to_csv(tmp_path / "labels" / f"churn_labels_{DAY}.csv", index=False)
    return config


def test_a_whole_check_names_leading_zeros_and_a_declared_int_joins_them(checked, mlflow_client):
    from airflow_mlops.core.performance import check_day

    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    with pytest.raises(PerformanceError) as err:
        check_day(mlflow_client, checked, DAY, now=now, log_run=False)
    assert "0 of 300 prediction(s) matched a label" in str(err.value)
    assert "Likely cause: id column 'customer_id': the ids differ by leading zeros" in str(err.value)
    assert "predictions 1000, 1001, 1002 (int64), labels '0001000', '0001001', '0001002' (str)" in str(err.value)

    declared = checked._replace(source=checked.source._replace(dtypes={**checked.source.dtypes, "customer_id": "int"}))
    check = check_day(mlflow_client, declared, DAY, now=now, log_run=False)
    assert check.join.matched == 300 and check.join.hint == ""
