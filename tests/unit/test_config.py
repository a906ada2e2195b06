"""Pipeline config: the shipped config loads; every mistake names the file and the key."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import CHURN_CONFIG

from airflow_mlops.core.config import load_config, parse_config
from airflow_mlops.core.errors import ConfigError


@pytest.fixture
def raw():
    return yaml.safe_load(CHURN_CONFIG.read_text())


def write(tmp_path, data) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_shipped_churn_config_loads(churn_config):
    assert churn_config.name == "churn"
    assert churn_config.task == "binary_classification"
    assert churn_config.numeric_features == ["tenure_months", "monthly_charges", "support_calls", "data_usage_gb"]
    assert churn_config.categorical_features == ["contract", "payment_method", "region"]
    assert [c.name for c in churn_config.candidates] == [
        "logistic_regression",
        "random_forest",
        "hist_gradient_boosting",
    ]
    assert churn_config.metrics.all[0] == "roc_auc"
    assert churn_config.resolve(churn_config.expectation_suite).is_file()


def test_unknown_top_level_key_names_file_and_key(tmp_path, raw):
    raw["learning_rate"] = 0.1
    path = write(tmp_path, raw)
    with pytest.raises(ConfigError, match=r"pipeline\.yaml: <top level>: unknown key\(s\) 'learning_rate'"):
        load_config(path)


def test_unknown_nested_key(tmp_path, raw):
    raw["model"]["candidates"][0]["hyperparams"] = {}
    with pytest.raises(ConfigError, match=r"model\.candidates\[0\]: unknown key\(s\) 'hyperparams'"):
        load_config(write(tmp_path, raw))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.__setitem__("seed", "forty-two"), r"seed: expected int, got str 'forty-two'"),
        (lambda d: d["split"].__setitem__("test_size", "big"), r"split\.test_size: expected float"),
        (lambda d: d["split"].__setitem__("stratify", 1), r"split\.stratify: expected bool, got int"),
        (lambda d: d["source"].__setitem__("window_days", True), r"source\.window_days: expected int, got bool"),
        (lambda d: d["target"].__setitem__("task", "ranking"), r"target\.task: 'ranking' is not one of"),
        (lambda d: d["features"][0].__setitem__("type", "text"), r"features\[0\]\.type: 'text' is not one of"),
        (lambda d: d.__setitem__("features", "tenure"), r"features: expected list, got str"),
        (lambda d: d["metrics"].__setitem__("primary", "rmse"), r"metrics\.primary: 'rmse' is not one of"),
        (lambda d: d["split"].__setitem__("test_size", 1.5), r"split\.test_size: must be between 0 and 1"),
        (lambda d: d["target"].pop("column"), r"target\.column: required key is missing"),
    ],
)
def test_wrong_types_and_values(tmp_path, raw, mutate, message):
    mutate(raw)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(write(tmp_path, raw))
    assert "pipeline.yaml" in str(err.value)


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        ("sklearn.ensemble.SuperForest", "has no estimator class 'SuperForest'"),
        ("sklearn.nonexistent.Model", "module 'sklearn.nonexistent' does not exist"),
        ("os.system", "give a scikit-learn class path"),
        ("sklearn.linear_model.LinearRegression", "is a regressor, but the target task 'binary_classification'"),
    ],
)
def test_unknown_or_wrong_estimator(tmp_path, raw, estimator, message):
    raw["model"]["candidates"][1]["estimator"] = estimator
    with pytest.raises(ConfigError, match=r"model\.candidates\[1\]\.estimator: ") as err:
        load_config(write(tmp_path, raw))
    assert message in str(err.value)


def test_target_listed_as_feature_is_leakage(raw):
    data = copy.deepcopy(raw)
    data["features"].append({"name": "churned", "type": "numeric"})
    with pytest.raises(ConfigError, match="target leakage"):
        parse_config(data, file="x.yaml")


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml: <top level>: expected a mapping"):
        load_config(listy)


def test_evaluation_and_deployment_sections(churn_config, tmp_path, raw):
    assert churn_config.evaluation.margin == 0.005
    assert churn_config.evaluation.floors == {"roc_auc": 0.65, "log_loss": 0.70}
    assert churn_config.deployment.smoke_rows == 200
    raw["evaluation"]["guard_rails"]["rmse"] = 0.1
    with pytest.raises(ConfigError, match=r"evaluation\.guard_rails: 'rmse' is not a metric for this task"):
        load_config(write(tmp_path, raw))
    raw["evaluation"]["guard_rails"] = {"accuracy": "a lot"}
    with pytest.raises(ConfigError, match=r"evaluation\.guard_rails: accuracy: expected a number"):
        load_config(write(tmp_path, raw))
    raw["evaluation"]["guard_rails"] = {}
    raw["evaluation"]["confidence"] = 1.5
    with pytest.raises(ConfigError, match=r"evaluation\.confidence: must be in \[0.5, 1\)"):
        load_config(write(tmp_path, raw))
    raw["evaluation"]["confidence"] = 0.95
    raw["deployment"]["serve"] = "yes"
    with pytest.raises(ConfigError, match=r"deployment\.serve: expected bool, got str"):
        load_config(write(tmp_path, raw))


def test_source_roots_and_security_sections(churn_config, tmp_path, raw):
    assert churn_config.source.allowed_roots == ("data",)
    assert churn_config.security.allow_pickle_models is False
    del raw["source"]["allowed_roots"], raw["security"]
    defaults = load_config(write(tmp_path, raw))
    assert defaults.source.allowed_roots == ("data",) and defaults.security.allow_pickle_models is False
    raw["source"]["allowed_roots"] = ["data", "/mnt/exports"]
    raw["security"] = {"allow_pickle_models": True}
    custom = load_config(write(tmp_path, raw))
    assert custom.source.allowed_roots == ("data", "/mnt/exports") and custom.security.allow_pickle_models is True


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["source"].__setitem__("allowed_roots", "data"), r"source\.allowed_roots: expected list, got str"),
        (lambda d: d["source"].__setitem__("allowed_roots", []), r"source\.allowed_roots: need a non-empty list"),
        (lambda d: d["source"].__setitem__("allowed_roots", [3]), r"source\.allowed_roots: need a non-empty list"),
        (lambda d: d["source"].__setitem__("max_file_mb", 0), r"source\.max_file_mb: must be > 0"),
        (
            lambda d: d.__setitem__("security", {"allow_pickle_models": "no"}),
            r"security\.allow_pickle_models: expected bool",
        ),
        (lambda d: d.__setitem__("security", {"allow_pickle": True}), r"security: unknown key\(s\) 'allow_pickle'"),
    ],
)
def test_wrong_source_roots_and_security(tmp_path, raw, mutate, message):
    mutate(raw)
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, raw))


def test_a_yaml_is_parsed_once_then_read_from_its_json_copy_and_never_served_stale(tmp_path, raw):
    """DAG parsing reads every pipeline YAML each time: its data is kept as JSON in __pycache__/, named by its text."""
    import json

    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    first = load_config(path)
    [copy] = (tmp_path / "__pycache__").glob("pipeline.yaml.*.json")
    assert json.loads(copy.read_text()) == raw
    assert load_config(path) == first
    # the copy is what is read (proved by changing it behind the loader's back) ...
    copy.write_text(json.dumps({**raw, "description": "read from the copy"}))
    assert load_config(path).description == "read from the copy"
    # ... and an edited YAML is read afresh: its old copy is replaced
    path.write_text(yaml.safe_dump({**raw, "description": "edited"}))
    assert load_config(path).description == "edited"
    [new_copy] = (tmp_path / "__pycache__").glob("pipeline.yaml.*.json")
    assert new_copy != copy and json.loads(new_copy.read_text())["description"] == "edited"


def test_yaml_that_json_cannot_hold_or_an_unwritable_folder_is_simply_read_each_time(tmp_path, raw):
    from airflow_mlops.core.config import read_yaml

    dated = tmp_path / "dated.yaml"
    dated.write_text("day: 2026-01-01\n")
    assert str(read_yaml(dated, dated.read_text())["day"]) == "2026-01-01"  # a date: JSON would make it a string
    assert not list((tmp_path / "__pycache__").glob("dated.yaml.*"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "__pycache__").write_text("not a folder")  # mkdir fails here, as in a read-only DAG bundle
    path = other / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_config(path).name == "churn" and load_config(path).name == "churn"


def test_every_field_of_a_section_is_read_as_a_key_with_the_structs_default(raw):
    """A section's keys, types and defaults come from its Struct: a field added there is a key the YAML may give."""
    import msgspec

    from airflow_mlops.core import config

    sections = {
        "split": config.SplitConfig,
        "evaluation": config.EvaluationConfig,
        "deployment": config.DeploymentConfig,
        "monitoring": config.MonitoringConfig,
        "security": config.SecurityConfig,
        "schedule": config.ScheduleConfig,
        "scoring": config.ScoringConfig,
    }

    def every_key(section: msgspec.Struct) -> dict:
        # An explicit null is refused where the default is already None (the key is left out instead).
        return {
            k: every_key(v) if isinstance(v, msgspec.Struct) else msgspec.json.decode(msgspec.json.encode(v))
            for k, v in msgspec.structs.asdict(section).items()
            if v is not None
        }

    for key, cls in sections.items():
        raw[key] = every_key(cls())
    parsed = parse_config(raw, file="pipeline.yaml", check_estimators=False)
    for key, cls in sections.items():
        assert getattr(parsed, key) == cls(), key
    source = {**every_key(config.SourceConfig(path="data/churn")), "date_column": "event_date"}
    assert parse_config({**raw, "source": source}, check_estimators=False).source == config.SourceConfig(
        path="data/churn", date_column="event_date"
    )
