"""Bad input through the real DAG: a clear error naming the file and the problem, nothing registered.

Each case feeds a malformed source to `churn_retrain` with the `source` param and runs it
with dag.test(). The failing task's log (what a user reads in the Airflow UI) must name the
file and the column/rule, and the model registry must stay empty.
"""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import ROOT, churn_stream

from airflow_mlops.core.config import load_config

LOGICAL = dt.datetime(2026, 1, 28, 2, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 1, 20)


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).get_dag("churn_retrain")


def _clean(rows: int = 300):
    return churn_stream.daily_batch(DAY, rows=rows)


def missing_file(tmp):
    return tmp / "churn_2026-01-20.csv", ["churn_2026-01-20.csv", "not found"]


def corrupted_csv(tmp):
    path = tmp / "garbage.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20)
    return path, ["garbage.csv", "binary"]


def corrupted_parquet(tmp):
    path = tmp / "batch.parquet"
    _clean().to_parquet(path)
    path.write_bytes(path.read_bytes()[:300])
    return path, ["batch.parquet", "Parquet"]


def rows_with_missing_fields(tmp):
    path = tmp / "short_rows.csv"
    lines = _clean().to_csv(index=False).splitlines()
    lines[5] = ",".join(lines[5].split(",")[:6])
    lines[9] = ",".join(lines[9].split(",")[:3])
    path.write_text("\n".join(lines) + "\n")
    return path, ["short_rows.csv", "line 6", "line 10"]


def missing_required_column(tmp):
    path = tmp / "no_region.csv"
    _clean().drop(columns=["region"]).to_csv(path, index=False)
    return path, ["no_region.csv", "region"]


def wrong_dtype(tmp):
    path = tmp / "text_charges.csv"
    frame = _clean()
    frame["monthly_charges"] = frame["monthly_charges"].astype(str) + " USD"
    frame.to_csv(path, index=False)
    return path, ["text_charges.csv", "monthly_charges", "expect_column_values_to_be_in_type_list"]


def all_null_column(tmp):
    path = tmp / "null_usage.csv"
    frame = _clean()
    frame["data_usage_gb"] = None
    frame.to_csv(path, index=False)
    return path, ["null_usage.csv", "data_usage_gb", "expect_column_values_to_not_be_null"]


def empty_dataset(tmp):
    path = tmp / "empty.csv"
    path.write_text(_clean().head(0).to_csv(index=False))
    return path, ["empty.csv", "zero data rows"]


def single_class_target(tmp):
    path = tmp / "nobody_churns.csv"
    frame = _clean()
    frame["churned"] = 0
    frame.to_csv(path, index=False)
    return path, ["churned", "single class", "nobody_churns"]


CASES = {
    "missing file": (missing_file, "snapshot"),
    "corrupted CSV": (corrupted_csv, "snapshot"),
    "corrupted Parquet": (corrupted_parquet, "snapshot"),
    "rows with missing fields": (rows_with_missing_fields, "snapshot"),
    "missing required column": (missing_required_column, "snapshot"),
    "wrong dtype": (wrong_dtype, "validate"),
    "all-null column": (all_null_column, "validate"),
    "empty dataset": (empty_dataset, "snapshot"),
    "single-class target": (single_class_target, "train"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_with_a_clear_message(case, dag, airflow_db, mlops_home, mlflow_client, tmp_path, capfd):
    make, failing_task = CASES[case]
    source, expected = make(tmp_path)
    capfd.readouterr()

    dag_run = dag.test(logical_date=LOGICAL, run_conf={"source": str(source), "as_of": DAY.isoformat()})

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert states[failing_task] == "failed", states
    assert states.get("register_challenger") != "success"
    log = capfd.readouterr()
    text = log.out + log.err
    for fragment in expected:
        assert fragment.lower() in text.lower(), f"{case}: the task log does not mention {fragment!r}"
    assert mlflow_client.search_registered_models() == [], "bad input must register nothing"


def test_config_errors_fail_the_task_without_retry(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops.operators.training import PipelineCandidatesOperator

    text = (ROOT / "include" / "pipelines" / "churn.yaml").read_text()
    unknown_key = tmp_path / "unknown_key.yaml"
    unknown_key.write_text(text + "\nlearning_rate: 0.1\n")
    bad_estimator = tmp_path / "bad_estimator.yaml"
    bad_estimator.write_text(text.replace("sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.RandomJungle"))
    wrong_type = tmp_path / "wrong_type.yaml"
    wrong_type.write_text(text.replace("seed: 42", "seed: forty-two"))

    for path, fragment in [
        (unknown_key, "unknown key(s) 'learning_rate'"),
        (bad_estimator, "model.candidates[1].estimator: unknown estimator 'sklearn.ensemble.RandomJungle'"),
        (wrong_type, "seed: expected int, got str 'forty-two'"),
    ]:
        op = PipelineCandidatesOperator(task_id="candidates", config_path=str(path))
        with pytest.raises(AirflowFailException) as err:
            op.execute(context={})
        assert path.name in str(err.value) and fragment in str(err.value)
    assert load_config(ROOT / "include" / "pipelines" / "churn.yaml").name == "churn"
