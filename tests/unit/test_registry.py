"""core.registry on a real MLflow SQLite store: challenger registration, idempotency, alias reads."""

from __future__ import annotations

import time

import pytest

from airflow_mlops.core import registry, training
from airflow_mlops.core.config import parse_config

DIGEST = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def small_problem():
    from sklearn.datasets import load_breast_cancer

    df = load_breast_cancer(as_frame=True).frame
    df.columns = [c.replace(" ", "_") for c in df.columns]
    config = parse_config(
        {
            "pipeline": "registry_test",
            "source": {"path": "data/test"},
            "target": {"column": "target", "task": "binary_classification"},
            "features": [{"name": n, "type": "numeric"} for n in ("mean_radius", "mean_texture", "mean_area")],
            "validation": {"suite": "s.json"},
            "model": {
                "name": "registry_test_model",
                "candidates": [
                    {
                        "name": "logreg",
                        "estimator": "sklearn.linear_model.LogisticRegression",
                        "params": {"max_iter": 300},
                    },
                ],
            },
            "metrics": {"primary": "roc_auc"},
            "seed": 3,
        },
        check_estimators=True,
    )
    return df, config


@pytest.fixture
def trained(mlflow_client, small_problem):
    df, config = small_problem
    from airflow_mlops.core.rows import split_roles

    split = split_roles(df, config)
    return training.train_candidate(
        split,
        config,
        "logreg",
        client=mlflow_client,
        experiment=config.name,
        data_digest=DIGEST,
        data_uri="file:///snapshots/x.parquet",
        tags={},
    ), config


def test_get_alias_version_none_on_empty_registry(mlflow_client):
    assert registry.get_alias_version(mlflow_client, "no_such_model", "champion") is None
    mlflow_client.create_registered_model("exists")
    assert registry.get_alias_version(mlflow_client, "exists", "champion") is None


def test_register_challenger_sets_alias_and_is_idempotent(mlflow_client, trained):
    result, config = trained
    tags = {"data.digest": DIGEST, "airflow.dag_id": "unit"}
    first = registry.register_challenger(
        mlflow_client, config.model_name, result["model_uri"], result["run_id"], tags=tags
    )
    assert first == {"name": config.model_name, "version": "1", "alias": "challenger"}
    again = registry.register_challenger(
        mlflow_client, config.model_name, result["model_uri"], result["run_id"], tags=tags
    )
    assert again == first
    versions = mlflow_client.search_model_versions(f"name='{config.model_name}'")
    assert len(versions) == 1
    mv = registry.get_alias_version(mlflow_client, config.model_name, "challenger")
    assert str(mv.version) == "1" and mv.run_id == result["run_id"] and mv.status == "READY"
    assert mv.tags["data.digest"] == DIGEST and mv.tags["airflow.dag_id"] == "unit"
    assert registry.get_alias_version(mlflow_client, config.model_name, "champion") is None
    # the registered version loads by alias with the package's trusted types
    model = training.load_model(f"models:/{config.model_name}@challenger")
    assert hasattr(model, "predict_proba")
    # same run, other data digest: a different registration
    other = registry.register_challenger(
        mlflow_client,
        config.model_name,
        result["model_uri"],
        result["run_id"],
        tags={**tags, "data.digest": "sha256:other"},
    )
    assert other["version"] == "2"
    assert str(registry.get_alias_version(mlflow_client, config.model_name, "challenger").version) == "2"


def test_rerun_training_in_the_same_dag_run_reuses_the_version(mlflow_client, small_problem):
    """A cleared and re-run DAG run trains again (a new MLflow run) but registers no second version."""
    df, config = small_problem
    from airflow_mlops.core.rows import split_roles

    split = split_roles(df, config)
    airflow_run = {"data.digest": DIGEST, "airflow.dag_id": "d", "airflow.run_id": "r1", "mlops.candidate": "logreg"}

    def train_and_register(tags):
        result = training.train_candidate(
            split,
            config,
            "logreg",
            client=mlflow_client,
            experiment=config.name,
            data_digest=DIGEST,
            data_uri="file:///snapshots/x.parquet",
            tags={},
        )
        return registry.register_challenger(
            mlflow_client, config.model_name, result["model_uri"], result["run_id"], tags=tags
        )

    first = train_and_register(airflow_run)
    assert train_and_register(airflow_run) == first
    assert train_and_register({**airflow_run, "airflow.run_id": "r2"})["version"] == "2"
    assert len(mlflow_client.search_model_versions(f"name='{config.model_name}'")) == 2


def test_failed_registration_fails_clearly(mlflow_client, monkeypatch):
    from mlflow.entities.model_registry import ModelVersion

    failed = ModelVersion("m", "1", 0, status="FAILED_REGISTRATION", status_message="disk full")
    monkeypatch.setattr(mlflow_client, "get_model_version", lambda name, version: failed)
    with pytest.raises(RuntimeError, match="failed to register: disk full"):
        registry.wait_until_ready(mlflow_client, "m", "1", timeout_s=1)
    pending = ModelVersion("m", "1", 0, status="PENDING_REGISTRATION")
    monkeypatch.setattr(mlflow_client, "get_model_version", lambda name, version: pending)
    with pytest.raises(TimeoutError, match="still PENDING_REGISTRATION"):
        registry.wait_until_ready(mlflow_client, "m", "1", timeout_s=0.3, poll_s=0.05)


def test_fixed_mlflow_cost_log_model_register_alias(mlflow_client, small_problem, capsys):
    """log_model + register + alias for a small model, measured warm (imports already paid)."""
    import mlflow

    from airflow_mlops.core import tracking

    df, config = small_problem
    x, y = df[config.feature_names], df[config.target]
    pipe = training.build_pipeline(config, config.candidates[0]).fit(x, y)
    timings = []
    for attempt in range(2):  # the first also pays one-off imports (skops, requirement checks)
        with tracking.active_run(mlflow_client, "cost", f"cost-{attempt}") as run_id:
            mlflow.log_metric("roc_auc", 0.9)
            started = time.perf_counter()
            info = training.log_sklearn_model(pipe, config, x.head(5), y)
            logged = time.perf_counter()
            registry.register_challenger(
                mlflow_client, "cost_model", info.model_uri, run_id, tags={"data.digest": f"d{attempt}"}
            )
            done = time.perf_counter()
        timings.append((logged - started, done - logged))
    with capsys.disabled():
        for label, (log_s, reg_s) in zip(("first", "warm"), timings, strict=True):
            print(
                f"\n[fixed MLflow cost, {label}] log_model {log_s:.3f} s + register/alias {reg_s:.3f} s "
                f"= {log_s + reg_s:.3f} s"
            )
    assert sum(timings[-1]) <= 1.5
