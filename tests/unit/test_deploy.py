"""core.deploy.smoke_test on real registered models: good, trained on other columns, predicting NaN, served over HTTP."""

from __future__ import annotations

import os
import time

import pytest
from conftest import binary_config

from airflow_mlops.core import deploy, registry, tracking, training

MODEL = "deploy_test_model"
ACTOR = {"airflow.dag_id": "retrain", "airflow.run_id": "manual__1", "airflow.task_id": "deploy"}
FEATURES = ("mean_radius", "mean_texture", "mean_area")


def small_config(features=FEATURES):
    return binary_config(MODEL, features, pipeline="deploy_test")


@pytest.fixture(scope="module")
def frame(breast_cancer):
    return breast_cancer


def register_trained(client, frame, config, digest):
    """Train `config`'s candidate, register it as a version of MODEL; returns the version."""
    from airflow_mlops.core.rows import split_roles

    split = split_roles(frame, config)
    result = training.train_candidate(
        split,
        config,
        "logreg",
        client=client,
        experiment=config.name,
        data_digest=digest,
        data_uri="file:///x.parquet",
        tags={},
    )
    return registry.register_challenger(
        client, MODEL, result["model_uri"], result["run_id"], tags={"data.digest": digest}
    )["version"]


def register_nan_model(client, frame, config):
    """A model with the right signature whose predictions are all NaN (its classes_ were corrupted)."""
    import numpy as np

    x, y = frame[config.feature_names], frame[config.target]
    pipe = training.build_pipeline(config, config.candidates[0]).fit(x, y)
    pipe.named_steps["model"].classes_ = np.array([np.nan, np.nan])
    with tracking.active_run(client, config.name, "nan-model") as run_id:
        info = training.log_sklearn_model(pipe, config, x.head(5), y)
    return registry.register_challenger(client, MODEL, info.model_uri, run_id, tags={"data.digest": "nan"})["version"]


@pytest.fixture
def good(mlflow_client, frame):
    config = small_config()
    version = register_trained(mlflow_client, frame, config, "sha256:good")
    registry.promote(mlflow_client, MODEL, version, expected_champion=None, actor=ACTOR, reason="first")
    return version, config


def test_smoke_test_passes_on_a_good_model(mlflow_client, frame, good):
    version, config = good
    result = deploy.smoke_test(mlflow_client, MODEL, frame.sample(100, random_state=0), config)
    assert result["version"] == version and result["alias"] == "champion"
    assert result["rows"] == 100 and result["columns"] == list(FEATURES)
    assert result["classes"] == [0, 1] and result["served"] is None
    assert any("probabilities" in c for c in result["checks"])
    # also by another alias
    assert deploy.smoke_test(mlflow_client, MODEL, frame.head(10), config, alias="challenger")["version"] == version


def test_smoke_test_refuses_missing_alias_and_bad_sample(mlflow_client, frame, good):
    _, config = good
    with pytest.raises(deploy.SmokeTestFailed, match="@previous_champion does not exist"):
        deploy.smoke_test(mlflow_client, MODEL, frame.head(10), config, alias="previous_champion")
    with pytest.raises(deploy.SmokeTestFailed, match=r"sample lacks the model's input column\(s\) \['mean_area'\]"):
        deploy.smoke_test(mlflow_client, MODEL, frame.head(10).drop(columns=["mean_area"]), config)
    as_text = frame.head(10).astype({"mean_texture": str})
    with pytest.raises(deploy.SmokeTestFailed, match="'mean_texture': signature double"):
        deploy.smoke_test(mlflow_client, MODEL, as_text, config)
    wrong_labels = frame.head(20).assign(target=lambda d: d["target"].map({0: "no", 1: "yes"}))
    with pytest.raises(deploy.SmokeTestFailed, match=r"label\(s\) \[.no., .yes.\] that the model never learned"):
        deploy.smoke_test(mlflow_client, MODEL, wrong_labels, config)


def test_model_trained_on_other_columns_fails_and_restore_keeps_the_old_champion(mlflow_client, frame, good):
    old, config = good
    other = small_config(features=("worst_radius", "worst_texture", "worst_area"))
    bad = register_trained(mlflow_client, frame, other, "sha256:other-columns")
    promotion = registry.promote(mlflow_client, MODEL, bad, expected_champion=old, actor=ACTOR, reason="new")

    with pytest.raises(deploy.SmokeTestFailed) as info:
        deploy.smoke_test(mlflow_client, MODEL, frame.head(50), config)
    message = str(info.value)
    assert f"version {bad}" in message and "worst_radius" in message and "not among the pipeline's features" in message
    assert info.value.version == bad

    registry.restore(mlflow_client, MODEL, promotion, actor=ACTOR, reason=f"smoke test failed: {message}")
    assert registry.read_aliases(mlflow_client, MODEL) == {"champion": old, "previous_champion": None}
    assert deploy.smoke_test(mlflow_client, MODEL, frame.head(50), config)["version"] == old
    assert registry.history(mlflow_client, MODEL)[-1]["reason"].startswith("smoke test failed")


def test_model_predicting_nan_fails(mlflow_client, frame, good):
    old, config = good
    bad = register_nan_model(mlflow_client, frame, config)
    registry.promote(mlflow_client, MODEL, bad, expected_champion=old, actor=ACTOR, reason="new")
    with pytest.raises(deploy.SmokeTestFailed, match=r"50 of 50 predictions are missing \(NaN/None\)"):
        deploy.smoke_test(mlflow_client, MODEL, frame.head(50), config)


def test_served_model_answers_like_the_loaded_one(mlflow_client, frame, good):
    """`mlflow models serve` on loopback, pickle disabled in this process: predictions equal, server stopped."""
    version, config = good
    started = time.monotonic()
    result = deploy.smoke_test(mlflow_client, MODEL, frame.sample(40, random_state=1), config, serve=True, timeout_s=60)
    assert result["version"] == version
    served = result["served"]
    assert served["rows"] == 40 and served["url"].startswith("http://127.0.0.1:")
    assert time.monotonic() - started < 40
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"  # only the server subprocess had it on
    import urllib.request

    with pytest.raises(OSError):  # the server is gone
        urllib.request.urlopen(served["url"] + "/ping", timeout=2)
