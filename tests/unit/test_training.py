"""core.training: pipelines, metrics, data checks, MLflow logging (real SQLite store), skops loading."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core import training
from airflow_mlops.core.config import parse_config
from airflow_mlops.core.errors import TrainingError
from airflow_mlops.core.skops_types import TRUSTED_TYPES, UntrustedModelError

DIGEST = "sha256:" + "ab" * 32


def split(df, config):
    from airflow_mlops.core.rows import split_roles

    return split_roles(df, config)


def make_config(task, numeric, categorical, target, candidates, primary, others=(), **extra):
    data = {
        "pipeline": f"test_{task}",
        "source": {"path": "data/test"},
        "target": {"column": target, "task": task},
        "features": [{"name": n, "type": "numeric"} for n in numeric]
        + [{"name": n, "type": "categorical"} for n in categorical],
        "validation": {"suite": "include/expectations/test.json"},
        "model": {"name": f"test_{task}_model", "candidates": candidates},
        "metrics": {"primary": primary, "others": list(others)},
        "seed": 7,
        **extra,
    }
    return parse_config(data, file=f"<{task}>", check_estimators=True)


def with_band(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Add a categorical column derived from a numeric one, with a few missing values."""
    df = df.copy()
    df["band"] = pd.cut(df[column], 3, labels=["low", "mid", "high"]).astype(str)
    df.loc[df.index[::17], "band"] = None
    df.loc[df.index[::13], column] = np.nan
    return df


@pytest.fixture(scope="module")
def binary_data():
    from sklearn.datasets import load_breast_cancer

    df = load_breast_cancer(as_frame=True).frame
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df = with_band(df, "mean_area")
    config = make_config(
        "binary_classification",
        ["mean_radius", "mean_texture", "mean_area", "mean_smoothness"],
        ["band"],
        "target",
        [{"name": "logreg", "estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}}],
        "roc_auc",
        ["accuracy", "f1", "log_loss", "precision", "recall"],
    )
    return df, config


@pytest.fixture(scope="module")
def multiclass_data():
    from sklearn.datasets import load_iris

    df = load_iris(as_frame=True).frame
    df.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    df["species"] = df["species"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    df = with_band(df, "sepal_length")
    config = make_config(
        "multiclass_classification",
        ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        ["band"],
        "species",
        [{"name": "logreg", "estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}}],
        "roc_auc",
        ["accuracy", "f1", "log_loss"],
    )
    return df, config


@pytest.fixture(scope="module")
def regression_data():
    from sklearn.datasets import load_diabetes

    df = load_diabetes(as_frame=True, scaled=False).frame
    df = with_band(df, "bmi")
    config = make_config(
        "regression",
        ["age", "bmi", "bp", "s5"],
        ["band"],
        "target",
        [{"name": "ridge", "estimator": "sklearn.linear_model.Ridge", "params": {"alpha": 1.0}}],
        "rmse",
        ["mae", "r2"],
    )
    return df, config


def train(mlflow_client, df, config, candidate=None):
    training.check_training_data(df, config)
    return training.train_candidate(
        split(df, config),
        config,
        candidate or config.candidates[0].name,
        client=mlflow_client,
        experiment=config.name,
        data_digest=DIGEST,
        data_uri="file:///snapshots/test.parquet",
        tags={"airflow.dag_id": "unit"},
    )


def assert_logged(mlflow_client, result, config, rows):
    run = mlflow_client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    cand = config.candidate(result["candidate"])
    assert params["estimator"] == cand.estimator
    assert params["seed"] == str(config.seed)
    assert params["split.strategy"] == config.split_strategy
    assert int(params["n_rows.train"]) > int(params["n_rows.validation"]) > 0 and int(params["n_rows.test"]) > 0
    for key, value in cand.params.items():
        assert params[key] == str(value)
    for name in config.metrics.all:
        assert metrics[name] == pytest.approx(result["metrics"][name])
    assert result["primary_value"] == result["metrics"][config.metrics.primary]
    assert tags["data.digest"] == DIGEST
    assert tags["seed"] == str(config.seed)
    assert tags["code.version"]
    assert tags["airflow.dag_id"] == "unit"
    # the data: one dataset input, context training, source = the snapshot URI
    [ds_input] = run.inputs.dataset_inputs
    assert ds_input.dataset.source and "snapshots/test.parquet" in ds_input.dataset.source
    assert ds_input.dataset.digest == DIGEST.split(":")[1][:36]
    assert {t.key: t.value for t in ds_input.tags}["mlflow.data.context"] == "training"
    # the config, as logged
    artifacts = {a.path for a in mlflow_client.list_artifacts(result["run_id"], "config")}
    assert "config/pipeline.yaml" in artifacts
    # the model: skops, explicit signature, pinned requirements; loads back and predicts
    from mlflow.models import get_model_info

    info = get_model_info(result["model_uri"])
    flavor = info.flavors["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert [c["name"] for c in info.signature.inputs.to_dict()] == config.feature_names
    model = training.load_model(result["model_uri"])
    x = rows[config.feature_names].head(7)
    assert len(model.predict(x)) == 7
    return model


def test_binary_classification_logs_one_complete_run(mlflow_client, binary_data, caplog):
    df, config = binary_data
    caplog.set_level(logging.INFO, logger="airflow_mlops.core.training")
    result = train(mlflow_client, df, config)
    assert set(result) == {
        "candidate",
        "run_id",
        "model_uri",
        "metrics",
        "primary_metric",
        "primary_value",
        "estimator",
    }
    assert result["primary_metric"] == "roc_auc"
    assert 0.8 < result["metrics"]["roc_auc"] <= 1.0
    test = split(df, config).test
    model = assert_logged(mlflow_client, result, config, test)
    assert model.predict_proba(test[config.feature_names].head(3)).shape == (3, 2)
    assert "fit started" in caplog.text and "fit done in" in caplog.text and "roc_auc=" in caplog.text
    # signature: numeric -> double, categorical -> string, output = label dtype
    from mlflow.models import get_model_info

    sig = get_model_info(result["model_uri"]).signature
    types = {c["name"]: c["type"] for c in sig.inputs.to_dict()}
    assert types["mean_radius"] == "double" and types["band"] == "string"
    assert sig.outputs.to_dict()[0]["type"] == "long"
    # requirements are the explicit pins, nothing inferred
    import mlflow

    reqs = mlflow.pyfunc.get_model_dependencies(result["model_uri"])
    pinned = set(open(reqs).read().split())
    assert set(training.pinned_requirements()) <= pinned


def test_multiclass_with_string_labels(mlflow_client, multiclass_data):
    df, config = multiclass_data
    result = train(mlflow_client, df, config)
    assert 0.8 < result["metrics"]["roc_auc"] <= 1.0
    assert 0 < result["metrics"]["log_loss"] < 1.5
    test = split(df, config).test
    model = assert_logged(mlflow_client, result, config, test)
    assert set(model.predict(test[config.feature_names])) <= {"setosa", "versicolor", "virginica"}


def test_regression(mlflow_client, regression_data):
    df, config = regression_data
    result = train(mlflow_client, df, config)
    assert result["primary_metric"] == "rmse"
    assert 30 < result["metrics"]["rmse"] < 90 and 0 < result["metrics"]["r2"] < 1
    assert_logged(mlflow_client, result, config, split(df, config).test)


def fast_churn_config(churn_config):
    raw = copy.deepcopy(churn_config.raw)
    small = {"random_forest": {"n_estimators": 10}, "hist_gradient_boosting": {"max_iter": 15}}
    for cand in raw["model"]["candidates"]:
        cand["params"] = {**cand.get("params", {}), **small.get(cand["name"], {})}
    return parse_config(raw, file=churn_config.path, check_estimators=True)


def test_every_churn_candidate_logs_and_loads_with_skops(mlflow_client, churn_config, churn_frame, monkeypatch):
    config = fast_churn_config(churn_config)
    training.check_training_data(churn_frame, config)
    roles = split(churn_frame, config)
    holdout = roles.test
    results = []
    for cand in config.candidates:
        result = training.train_candidate(
            roles,
            config,
            cand.name,
            client=mlflow_client,
            experiment=config.name,
            data_digest=DIGEST,
            data_uri="file:///snapshots/churn.parquet",
            tags={},
        )
        model = training.load_model(result["model_uri"])
        proba = model.predict_proba(holdout[config.feature_names])
        assert proba.shape == (len(holdout), 2)
        assert result["metrics"]["roc_auc"] > 0.6, result
        results.append(result)
    assert {r["estimator"] for r in results} == {c.estimator for c in config.candidates}
    # the signature accepts the data as it comes (int columns are `long`, strings `string`)
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # pyfunc trusts the MLmodel file
    served = mlflow.pyfunc.load_model(results[0]["model_uri"])
    assert len(served.predict(holdout[config.feature_names].head(20))) == 20
    inputs = {c["name"]: c["type"] for c in served.metadata.get_input_schema().to_dict()}
    assert inputs["support_calls"] == "long" and inputs["monthly_charges"] == "double"
    assert inputs["contract"] == "string"
    best = training.select_best(results, config)
    assert best["primary_value"] == max(r["primary_value"] for r in results)


# ------------------------------------------------------------------ bad input: clear errors, nothing logged


def assert_nothing_logged(client, config):
    exp = client.get_experiment_by_name(config.name)
    if exp is not None:
        assert client.search_runs([exp.experiment_id]) == []
    assert client.search_registered_models() == []


def test_single_class_target_names_column_and_class(mlflow_client, binary_data):
    df, config = binary_data
    df = df[df["target"] == 1]
    with pytest.raises(TrainingError, match=r"'target' has a single class \(1\).*widen the training window"):
        training.check_training_data(df, config)
    assert_nothing_logged(mlflow_client, config)


def test_missing_columns_are_named(mlflow_client, binary_data):
    df, config = binary_data
    with pytest.raises(TrainingError, match=r"feature 'mean_area'.*target 'target'"):
        training.check_training_data(df.drop(columns=["mean_area", "target"]), config)
    assert_nothing_logged(mlflow_client, config)


def test_nan_target_is_rejected(mlflow_client, regression_data):
    df, config = regression_data
    df = df.copy()
    df.loc[df.index[:4], "target"] = np.nan
    with pytest.raises(TrainingError, match=r"target column 'target' has 4 missing value"):
        training.check_training_data(df, config)
    assert_nothing_logged(mlflow_client, config)


def test_empty_and_rare_class_data(binary_data, regression_data):
    df, config = binary_data
    with pytest.raises(TrainingError, match="no rows"):
        training.check_training_data(df.iloc[:0], config)
    rare = pd.concat([df[df["target"] == 0].head(2), df[df["target"] == 1].head(50)])
    training.check_training_data(rare, config)  # two classes: the split decides whether each role gets both
    with pytest.raises(TrainingError, match=r"pipeline 'test_binary_classification'.*(single class|cannot be split)"):
        split(rare, config)
    rdf, rconfig = regression_data
    with pytest.raises(
        TrainingError, match=r"window of 2 rows: the (train|validation|test) rows are empty; widen the window"
    ):
        split(rdf.head(2), rconfig)
    with pytest.raises(TrainingError, match="must be numeric"):
        training.check_training_data(rdf.assign(target="x"), rconfig)


def test_three_classes_in_a_binary_task(binary_data):
    df, config = binary_data
    df = df.copy()
    df.loc[df.index[:30], "target"] = 2
    with pytest.raises(TrainingError, match="3 classes"):
        training.check_training_data(df, config)


# ------------------------------------------------------------------ pipeline construction


def test_build_pipeline_preprocessing_and_seed(binary_data):
    _, config = binary_data
    cand = config.candidates[0]
    pipe = training.build_pipeline(config, cand)
    pre = pipe.named_steps["preprocess"]
    assert [(name, cols) for name, _, cols in pre.transformers] == [
        ("numeric", config.numeric_features),
        ("categorical", config.categorical_features),
    ]
    assert pipe.named_steps["model"].random_state == config.seed
    assert pipe.named_steps["model"].max_iter == 500


def test_bad_params_name_candidate_and_param(binary_data):
    _, config = binary_data
    from airflow_mlops.core.config import Candidate

    bad = Candidate("lr", "sklearn.linear_model.LogisticRegression", {"max_iterations": 5})
    with pytest.raises(TrainingError, match=r"candidate 'lr'.*'max_iterations'"):
        training.build_pipeline(config, bad)
    bad = Candidate("lr", "sklearn.linear_model.LogisticRegression", {"C": -1})
    with pytest.raises(TrainingError, match=r"candidate 'lr'.*'C' parameter"):
        training.build_pipeline(config, bad)
    bad = Candidate("evil", "os.system", {})
    with pytest.raises(TrainingError, match=r"candidate 'evil'.*not allowed"):
        training.build_pipeline(config, bad)


# ------------------------------------------------------------------ metrics and selection


def test_compute_metrics_binary_string_labels():
    y = np.array(["no", "yes", "yes", "no", "yes"])
    pred = np.array(["no", "yes", "no", "no", "yes"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9]])
    m = training.compute_metrics(
        "binary_classification",
        y,
        pred,
        proba,
        ["roc_auc", "accuracy", "f1", "precision", "recall", "log_loss"],
        labels=["no", "yes"],
    )
    assert m["roc_auc"] == 1.0 and m["accuracy"] == 0.8 and m["precision"] == 1.0
    assert m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(0.8)
    assert m["log_loss"] > 0
    r = training.compute_metrics("regression", [1.0, 2.0, 3.0], [1.0, 2.0, 5.0], None, ["rmse", "mae", "r2"])
    assert r["rmse"] == pytest.approx(math.sqrt(4 / 3)) and r["mae"] == pytest.approx(2 / 3)
    with pytest.raises(TrainingError, match="log_loss"):
        training.compute_metrics("binary_classification", y, pred, None, ["log_loss"], labels=["no", "yes"])


def result(name, **metrics):
    primary = next(iter(metrics))
    return {"candidate": name, "metrics": metrics, "primary_value": metrics[primary]}


def test_select_best_highest_roc_auc_lowest_rmse_ties_by_order(binary_data, regression_data):
    _, bconfig = binary_data
    raw = copy.deepcopy(bconfig.raw)
    raw["model"]["candidates"] = [
        {"name": n, "estimator": "sklearn.linear_model.LogisticRegression"} for n in ("a", "b", "c")
    ]
    bconfig = parse_config(raw)
    picks = [result("a", roc_auc=0.80), result("b", roc_auc=0.91), result("c", roc_auc=0.85)]
    assert training.select_best(picks, bconfig)["candidate"] == "b"
    tie = [result("c", roc_auc=0.9), result("b", roc_auc=0.9), result("a", roc_auc=0.7)]
    assert training.select_best(tie, bconfig)["candidate"] == "b"
    nan = [result("a", roc_auc=float("nan")), result("b", roc_auc=0.6)]
    assert training.select_best(nan, bconfig)["candidate"] == "b"

    _, rconfig = regression_data
    raw = copy.deepcopy(rconfig.raw)
    raw["model"]["candidates"] = [{"name": n, "estimator": "sklearn.linear_model.Ridge"} for n in ("x", "y")]
    rconfig = parse_config(raw)
    assert training.select_best([result("x", rmse=50.0), result("y", rmse=40.0)], rconfig)["candidate"] == "y"
    with pytest.raises(TrainingError, match="no trained candidates"):
        training.select_best([], rconfig)


# ------------------------------------------------------------------ trusted types at load time


def test_load_model_trusts_only_the_package_list(mlflow_client, binary_data):
    """A model file that declares extra trusted types (here builtins.eval) is refused."""
    import mlflow
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from airflow_mlops.core import tracking

    df, config = binary_data
    y = df["target"]
    fitted = training.build_pipeline(config, config.candidates[0]).fit(df[config.feature_names], y)
    evil = Pipeline([("f", FunctionTransformer(eval, validate=False)), ("m", fitted.named_steps["model"])])
    with tracking.active_run(mlflow_client, "evil", "evil"):
        info = mlflow.sklearn.log_model(
            evil,
            name="model",
            serialization_format="skops",
            skops_trusted_types=[*TRUSTED_TYPES, "builtins.eval"],
            pip_requirements=training.pinned_requirements(),
        )
        pickled = mlflow.sklearn.log_model(
            fitted, name="pickled", serialization_format="cloudpickle", pip_requirements=training.pinned_requirements()
        )
    with pytest.raises(UntrustedModelError, match="builtins.eval"):
        training.load_model(info.model_uri)
    with pytest.raises(UntrustedModelError, match="serialized with cloudpickle.*security.allow_pickle_models"):
        training.load_model(pickled.model_uri)


def test_trusted_types_cover_every_estimator_family():
    """The hard-coded list still equals what skops reports for each family (guards upgrades)."""
    import skops.io as sio
    from sklearn import ensemble, linear_model, tree
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    frame = pd.DataFrame(x, columns=list("abcd")).assign(e=np.where(x[:, 0] > 5.8, "hi", "lo"))
    raw = {
        "pipeline": "p",
        "source": {"path": "d"},
        "target": {"column": "t", "task": "multiclass_classification"},
        "features": [{"name": n, "type": "numeric"} for n in "abcd"] + [{"name": "e", "type": "categorical"}],
        "validation": {"suite": "s"},
        "model": {"name": "m", "candidates": [{"name": "x", "estimator": "sklearn.x.y"}]},
        "metrics": {"primary": "accuracy"},
        "seed": 1,
    }
    config = parse_config(raw, check_estimators=False)
    from airflow_mlops.core.config import Candidate

    found = set()
    for cls in (
        linear_model.LogisticRegression,
        ensemble.RandomForestClassifier,
        ensemble.ExtraTreesClassifier,
        ensemble.GradientBoostingClassifier,
        ensemble.HistGradientBoostingClassifier,
        tree.DecisionTreeClassifier,
    ):
        params = {"n_estimators": 3} if "n_estimators" in cls().get_params() else {}
        params |= {"max_iter": 3} if cls is ensemble.HistGradientBoostingClassifier else {}
        cand = Candidate("x", f"{cls.__module__.split('._')[0]}.{cls.__name__}", params)
        pipe = training.build_pipeline(config, cand).fit(frame, y)
        found |= set(sio.get_untrusted_types(data=sio.dumps(pipe)))
    assert found <= set(TRUSTED_TYPES)
    assert "sklearn.tree._tree.Tree" in found


def test_candidates_are_ranked_on_validation_rows_and_never_read_the_test_rows(
    mlflow_client, churn_config, churn_frame, tmp_path
):
    """The test rows are the gate's: training neither fits, scores nor ranks on them, and its record
    of the rows it saw (training_rows.parquet) holds exactly the train and validation rows."""
    from airflow_mlops.core import rows

    config = fast_churn_config(churn_config)
    roles = split(churn_frame, config)
    poisoned = dataclasses.replace(roles, test=roles.test.assign(tenure_months="poison", churned=7))
    results = [
        training.train_candidate(
            poisoned,
            config,
            name,
            client=mlflow_client,
            experiment=config.name,
            data_digest=DIGEST,
            data_uri="file:///snapshots/churn.parquet",
            tags={},
        )
        for name in ("logistic_regression", "random_forest")
    ]
    for result in results:
        model = training.load_model(result["model_uri"])
        assert result["metrics"] == pytest.approx(training.model_metrics(model, roles.validation, config))
        local = mlflow_client.download_artifacts(result["run_id"], rows.TRAINING_ROWS_ARTIFACT, str(tmp_path))
        record = rows.read_record(local, "test")
        assert set(record.hashes.tolist()) == set(rows.row_hashes(roles.seen).tolist())
        assert set(record.hashes.tolist()).isdisjoint(rows.row_hashes(roles.test).tolist())
    best = training.select_best(results, config)
    assert best["primary_value"] == max(r["metrics"]["roc_auc"] for r in results)
