"""The gate's rows through MLflow: a random-split pipeline keeps its test rows as its data grows, a rows record
that disagrees with its run is not trusted, and an audit that cannot read a record says unverified."""

from __future__ import annotations

import copy
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import churn_stream

from airflow_mlops.core import evaluation, registry, rows, training
from airflow_mlops.core.audit import audit_verdict
from airflow_mlops.core.config import load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32


def train_and_register(client, df, config, candidate, *, alias="challenger", tag="a"):
    """Train `candidate` as the training task does and register it; (uri, version, the split)."""
    split = rows.split_roles(df, config)
    result = training.train_candidate(
        split,
        config,
        candidate,
        client=client,
        experiment=config.name,
        data_digest=DIGEST,
        data_uri="file:///snapshots/data.parquet",
        tags={},
    )
    reg = registry.register_challenger(
        client,
        config.model_name,
        result["model_uri"],
        result["run_id"],
        tags={"data.digest": DIGEST, "airflow.run_id": tag},
        alias=alias,
    )
    return f"models:/{config.model_name}/{reg['version']}", reg["version"], split


def diabetes_patients(extra: int) -> pd.DataFrame:
    """scikit-learn's 442 diabetes patients, and `extra` new ones (resampled rows with new ids)."""
    sys.path.insert(0, str(ROOT / "include"))
    import diabetes_data

    data = diabetes_data.frame()
    new = data.sample(extra, random_state=1, replace=True).reset_index(drop=True)
    new["patient_id"] = [f"P{i:04d}" for i in range(len(data) + 1, len(data) + extra + 1)]
    new["progression"] = new["progression"] + np.random.default_rng(2).normal(0, 5, extra)
    return pd.concat([data, new], ignore_index=True)


def test_the_diabetes_pipeline_keeps_its_test_rows_as_its_data_grows(mlflow_client):
    """Before, the random split was reshuffled on every snapshot: a second challenger on 502 patients kept 54
    clean test rows of 101 (below min_test_rows 80, so REJECT every night). Now every earlier test patient is
    still a test patient, none was seen by the champion, and the new patients only add test rows."""
    config = load_config(ROOT / "include" / "pipelines" / "diabetes.yaml")
    first, grown = diabetes_patients(0), diabetes_patients(60)
    champion_uri, _, champion_split = train_and_register(mlflow_client, first, config, "ridge", alias="champion")
    challenger_uri, _, challenger_split = train_and_register(mlflow_client, grown, config, "ridge", tag="b")
    assert set(champion_split.test["patient_id"]) <= set(challenger_split.test["patient_id"])
    assert len(challenger_split.test) > len(champion_split.test)
    result = evaluation.evaluate(
        mlflow_client, config, challenger_split.test, challenger_uri=challenger_uri, champion_uri=champion_uri
    )
    assert result.test_rows.excluded == 0 and result.n_rows == len(challenger_split.test)
    assert result.n_rows >= config.evaluation.min_test_rows
    assert not any("min_test_rows" in r and r.startswith("FAIL") for r in result.verdict.reasons)


def churn_window(first: str, days: int) -> pd.DataFrame:
    start = dt.date.fromisoformat(first)
    return pd.concat(
        [churn_stream.daily_batch(start + dt.timedelta(days=i), rows=200, seed=3) for i in range(days)],
        ignore_index=True,
    )


def fast(churn_config):
    raw = copy.deepcopy(churn_config.raw)
    raw["model"]["candidates"] = [c for c in raw["model"]["candidates"] if c["name"] == "logistic_regression"]
    raw["evaluation"]["min_test_rows"] = 100
    return parse_config(raw, file=churn_config.path, check_estimators=False)


def artifact_file(client, run_id: str, name: str) -> Path:
    from urllib.parse import urlparse

    return Path(urlparse(client.get_run(run_id).info.artifact_uri).path) / name


def test_a_record_that_disagrees_with_its_runs_counts_falls_back_to_the_dates(mlflow_client, churn_config):
    config = fast(churn_config)
    stream = churn_window("2026-01-01", 16)
    champion_uri, champion_version, champion_split = train_and_register(
        mlflow_client, stream[stream["event_date"] <= "2026-01-14"], config, "logistic_regression", alias="champion"
    )
    run_id = mlflow_client.get_model_version(config.model_name, champion_version).run_id
    path = artifact_file(mlflow_client, run_id, rows.TRAINING_ROWS_ARTIFACT)
    truncated = champion_split.train.head(100)  # a record of other rows than the model's
    rows.write_record(rows.record_table(truncated, "train", "event_date", strategy="time"), path)
    record, why = rows.run_record(mlflow_client, run_id)
    assert record is None and "holds 100 rows but the run logged" in why and "n_rows.train" in why
    challenger_uri, _, challenger_split = train_and_register(
        mlflow_client, stream[stream["event_date"] >= "2026-01-03"], config, "logistic_regression", tag="b"
    )
    result = evaluation.evaluate(
        mlflow_client,
        config,
        challenger_split.test,
        challenger_uri=challenger_uri,
        champion_uri=champion_uri,
        champion_window_end="2026-01-14",
    )
    assert result.test_rows.method.startswith("by date") and "not the model's" in result.test_rows.method


def test_the_audit_says_unverified_when_a_record_cannot_be_read(mlflow_client, churn_config):
    from airflow_mlops.cli import main

    config = fast(churn_config)
    stream = churn_window("2026-01-01", 15)
    champion_uri, champion_version, _ = train_and_register(
        mlflow_client, stream[stream["event_date"] <= "2026-01-14"], config, "logistic_regression", alias="champion"
    )
    challenger_uri, challenger_version, challenger_split = train_and_register(
        mlflow_client, stream[stream["event_date"] >= "2026-01-02"], config, "logistic_regression", tag="b"
    )
    result = evaluation.evaluate(
        mlflow_client, config, challenger_split.test, challenger_uri=challenger_uri, champion_uri=champion_uri
    )
    evaluation.log_evaluation(
        mlflow_client,
        result,
        experiment="churn-evaluation",
        run_name="evaluate",
        tags={},
        model_name=config.model_name,
        challenger_version=challenger_version,
        champion_version=champion_version,
    )
    clean = audit_verdict(mlflow_client, config.model_name, challenger_version)
    assert clean["outcome"] == "clean" and clean["ok"]
    assert main(["audit", config.model_name, challenger_version]) == 0

    run_id = mlflow_client.get_model_version(config.model_name, champion_version).run_id
    artifact_file(mlflow_client, run_id, rows.TRAINING_ROWS_ARTIFACT).write_bytes(b"PAR1 not a record")  # the fault
    audit = audit_verdict(mlflow_client, config.model_name, challenger_version)
    assert audit["outcome"] == "unverified" and not audit["ok"] and audit["seen_by_champion"] is None
    assert any(n.startswith("unverified: the champion") and "corrupt" in n for n in audit["notes"])
    assert main(["audit", config.model_name, challenger_version]) == 3
