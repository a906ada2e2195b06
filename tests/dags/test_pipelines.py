"""DAGs from pipeline YAMLs: every pipeline gets its DAGs through the same builders, a broken YAML only loses its own.

The second real dataset (scikit-learn's bundled diabetes data, a regression) runs end to end through
`diabetes_retrain` with the real task runner, MLflow and Great Expectations.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, task_states

DIABETES_CONFIG = ROOT / "include" / "pipelines" / "diabetes.yaml"
LOGICAL = dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC)


def _diabetes_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("diabetes_data", ROOT / "include" / "diabetes_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def diabetes_csv(tmp_path) -> Path:
    return _diabetes_module().write(tmp_path / "data" / "diabetes")


def project(tmp_path: Path, files: dict[str, dict | str]) -> Path:
    """A project root holding include/pipelines/<name>.yaml for each of `files` and the diabetes suite."""
    root = tmp_path / "project"
    (root / "include" / "pipelines").mkdir(parents=True)
    shutil.copytree(ROOT / "include" / "expectations", root / "include" / "expectations")
    for name, content in files.items():
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        (root / "include" / "pipelines" / f"{name}.yaml").write_text(text)
    return root


def diabetes_like(pipeline: str, **changes) -> dict:
    config = yaml.safe_load(DIABETES_CONFIG.read_text())
    config["pipeline"] = pipeline
    config["model"]["name"] = f"{pipeline}_model"
    config["model"]["candidates"] = config["model"]["candidates"][:1]  # one ridge: quick
    for key, value in changes.items():
        config[key] = value
    return config


def dag_bag(root: Path | None, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    if root is not None:
        monkeypatch.setenv("AIRFLOW_MLOPS_PROJECT_ROOT", str(root))
    return DagBag(dag_folder=str(ROOT / "dags"))


# --------------------------------------------------------------------------- the shipped pipelines


def test_each_pipeline_yaml_gets_its_dags_and_a_variant_gets_none(airflow_db):
    bag = dag_bag(None, pytest.MonkeyPatch())
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "churn_retrain",
        "churn_drift_monitor",
        "churn_scoring",
        "churn_performance_monitor",
        "diabetes_retrain",
    }  # no churn_fast_*, no diabetes drift monitor (no date column),
    # no diabetes scoring nor performance monitor (no `scoring:` section)
    churn, diabetes = bag.get_dag("churn_retrain"), bag.get_dag("diabetes_retrain")
    assert [o.uri for o in diabetes.get_task("deploy").outlets] == ["mlops://diabetes/champion"]
    assert [o.uri for o in churn.get_task("deploy").outlets] == ["mlops://churn/champion"]
    assert "diabetes" in diabetes.tags and "churn" not in diabetes.tags
    assert diabetes.timetable.timetable.expression == "0 3 * * 1"
    assert [a.uri for a in diabetes.timetable.asset_condition.objects] == ["mlops://diabetes/retrain-request"]
    assert "diabetes_regressor" in diabetes.doc_md and "include/pipelines/diabetes.yaml" in diabetes.doc_md
    monitor = bag.get_dag("churn_drift_monitor")
    assert [o.uri for o in monitor.get_task("request_retrain").outlets] == ["mlops://churn/retrain-request"]


def test_the_config_param_takes_only_variants_of_the_same_pipeline(airflow_db):
    bag = dag_bag(None, pytest.MonkeyPatch())
    churn = bag.get_dag("churn_retrain").params.get_param("config")
    assert churn.resolve("churn_fast") == "churn_fast"
    with pytest.raises(Exception, match="is not one of"):
        churn.resolve("diabetes")  # another pipeline's config would train under churn's Assets
    with pytest.raises(Exception, match="is not one of"):
        bag.get_dag("diabetes_retrain").params.get_param("config").resolve("churn_fast")


def test_the_diabetes_regression_runs_end_to_end_then_keeps_its_champion(
    airflow_db, mlops_home, mlflow_client, diabetes_csv
):
    dag = dag_bag(None, pytest.MonkeyPatch()).get_dag("diabetes_retrain")
    conf = {"source": str(diabetes_csv), "as_of": None, "config": None}

    first = dag.test(logical_date=LOGICAL, run_conf=conf)
    assert task_states(first) == {t: "success" for t in dag.task_ids} | {"record_rejection": "skipped"}
    champion = mlflow_client.get_model_version_by_alias("diabetes_regressor", "champion")
    assert champion.tags["decision"] == "NO_BASELINE_PROMOTE"
    run = mlflow_client.get_run(champion.run_id)
    assert {"rmse", "mae", "r2"} <= set(run.data.metrics) and run.data.metrics["r2"] > 0.2
    assert mlflow_client.get_experiment_by_name("diabetes") is not None

    # The same data again: judged on the 89 test rows neither model saw, no significant gain: rejected.
    second = dag.test(logical_date=LOGICAL + dt.timedelta(days=7), run_conf=conf)
    states = task_states(second)
    assert states["record_rejection"] == "success" and states["deploy"] == "skipped"
    challenger = mlflow_client.get_model_version_by_alias("diabetes_regressor", "challenger")
    assert challenger.version != champion.version and challenger.tags["decision"].startswith("REJECT")
    assert mlflow_client.get_model_version_by_alias("diabetes_regressor", "champion").version == champion.version


# --------------------------------------------------------------------------- a folder of YAMLs


def test_a_third_pipeline_written_as_yaml_gets_working_dags(
    airflow_db, mlops_home, mlflow_client, diabetes_csv, tmp_path, monkeypatch
):
    root = project(tmp_path, {"third": diabetes_like("third", schedule={"retrain": None})})
    bag = dag_bag(root, monkeypatch)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"third_retrain"}
    dag = bag.get_dag("third_retrain")
    assert dag.timetable.asset_condition.uri == "mlops://third/retrain-request"  # asset-only schedule

    run = dag.test(logical_date=LOGICAL, run_conf={"source": str(diabetes_csv), "as_of": None, "config": None})

    assert task_states(run)["deploy"] == "success"
    assert mlflow_client.get_model_version_by_alias("third_model", "champion").tags["airflow.dag_id"] == "third_retrain"


def test_a_broken_yaml_is_an_import_error_naming_file_and_key_and_the_others_load(airflow_db, tmp_path, monkeypatch):
    broken = diabetes_like("broken")
    broken["model"]["candidates"][0]["estimatr"] = broken["model"]["candidates"][0].pop("estimator")
    root = project(tmp_path, {"good": diabetes_like("good"), "broken": broken, "not_yaml": "pipeline: [unclosed"})

    bag = dag_bag(root, monkeypatch)

    assert set(bag.dag_ids) == {"good_retrain"}
    [(where, error)] = bag.import_errors.items()
    assert where.endswith("pipeline_errors.py")
    assert "2 pipeline config(s) did not load" in error
    assert f"{root}/include/pipelines/broken.yaml: model.candidates[0].estimator: required key is missing" in error
    assert f"{root}/include/pipelines/not_yaml.yaml: not valid YAML" in error


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"validation": {"suite": "include/expectations/nowhere.json"}},
            "validation.suite: include/expectations/nowhere.json does not exist",
        ),
        (
            {"model": {"name": "m", "candidates": [{"name": "x", "estimator": "sklearn.nowhere.Model"}]}},
            "model.candidates[0].estimator: unknown estimator 'sklearn.nowhere.Model'",
        ),
        (
            {"model": {"name": "m", "candidates": [{"name": "x", "estimator": "sklearn.linear_model.Rigde"}]}},
            "sklearn.linear_model has no 'Rigde'",
        ),
        ({"pipeline": "Bad Name"}, "pipeline: 'Bad Name' cannot name DAGs and Assets"),
        ({"schedule": {"retrain": "every night"}}, "schedule.retrain: 'every night' is not a cron expression"),
        ({"variant_of": "other"}, "variant_of: a variant runs under its pipeline's DAGs"),
    ],
    ids=["missing-suite", "missing-estimator", "misspelt-estimator", "bad-name", "bad-cron", "variant-of-another"],
)
def test_bad_pipeline_yaml_is_named_in_the_error(tmp_path, change, message):
    from airflow_mlops.core.errors import ConfigError
    from airflow_mlops.dag_builders import raise_pipeline_errors, read_pipelines

    config = diabetes_like("bad")
    config.update(change)
    root = project(tmp_path, {"bad": config, "fine": diabetes_like("fine")})
    folder = root / "include" / "pipelines"
    assert [c.name for c in read_pipelines(folder).configs] == ["fine"]
    with pytest.raises(ConfigError) as raised:
        raise_pipeline_errors(folder)
    assert f"{folder}/bad.yaml: " in str(raised.value) and message in str(raised.value)


def test_two_pipelines_claiming_one_name_or_model_are_both_refused(tmp_path):
    from airflow_mlops.dag_builders import read_pipelines

    same_model = diabetes_like("second")
    same_model["model"]["name"] = "first_model"
    root = project(
        tmp_path,
        {
            "first": diabetes_like("first"),
            "second": same_model,
            "copy_a": diabetes_like("twin"),
            "copy_b": diabetes_like("twin") | {"seed": 7},
        },
    )
    found = read_pipelines(root / "include" / "pipelines")

    assert found.configs == []
    errors = found.errors
    assert "model.name: 'first_model' is also claimed by" in errors[str(root / "include/pipelines/first.yaml")]
    assert str(root / "include/pipelines/first.yaml") in errors[str(root / "include/pipelines/second.yaml")]
    assert "pipeline: 'twin' is also claimed by" in errors[str(root / "include/pipelines/copy_a.yaml")]
