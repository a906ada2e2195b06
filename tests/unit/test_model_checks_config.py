"""evaluation.slices / fairness / robustness / explain and features[].monotonic: read from the YAML, and every bad value
refused at parse time with the file and the key named (issue 24, "Bad input")."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import CHURN_CONFIG

from airflow_mlops.core.config import parse_config
from airflow_mlops.core.errors import ConfigError


@pytest.fixture
def raw():
    return yaml.safe_load(CHURN_CONFIG.read_text())


def parse(raw, **evaluation):
    data = copy.deepcopy(raw)
    data["evaluation"].update(evaluation)
    return parse_config(data, file="include/pipelines/churn.yaml", check_estimators=False)


def test_the_panels_are_read_with_their_defaults(raw):
    config = parse(
        raw,
        slices={"columns": ["region", "contract"], "crossings": [["region", "contract"]], "correction": "bh"},
        fairness={"groups": ["region"], "limits": {"tpr_gap": 0.1}},
        robustness={"perturbation": 0.2},
        explain={"min_importance_ndcg": 0.8},
    )
    ev = config.evaluation
    assert ev.slices.columns == ("region", "contract") and ev.slices.crossings == (("region", "contract"),)
    assert ev.slices.correction == "bh" and ev.slices.min_slice_rows == 200
    assert ev.fairness.groups == ("region",) and ev.fairness.limits == {"tpr_gap": 0.1}
    assert ev.fairness.metrics == ("tpr_gap", "fpr_gap", "selection_rate_ratio")
    assert ev.robustness.perturbation == 0.2 and ev.robustness.enabled
    assert ev.explain.min_importance_ndcg == 0.8 and ev.explain.importance


@pytest.mark.parametrize(
    ("evaluation", "where", "words"),
    [
        (
            {"slices": {"columns": ["region", "customer_id"]}},
            "evaluation.slices.columns",
            "'customer_id' is not a feature",
        ),
        ({"slices": {"crossings": [["region"]]}}, "evaluation.slices.crossings", "a list of two feature names"),
        ({"slices": {"crossings": [["region", "nope"]]}}, "evaluation.slices.crossings[0]", "'nope' is not a feature"),
        ({"slices": {"columns": ["region"], "slice_tolerance": -0.01}}, "evaluation.slices.slice_tolerance", ">= 0"),
        ({"slices": {"columns": ["region"], "min_slice_events": 0}}, "evaluation.slices.min_slice_events", "one class"),
        ({"slices": {"columns": ["region"], "correction": "bonferroni"}}, "evaluation.slices.correction", "holm, bh"),
        ({"fairness": {"groups": ["churned"]}}, "evaluation.fairness.groups", "'churned' is not a feature"),
        ({"fairness": {"groups": ["region"], "tolerance": -1}}, "evaluation.fairness.tolerance", ">= 0"),
        (
            {"fairness": {"groups": ["region"], "metrics": ["demographic_parity"]}},
            "evaluation.fairness.metrics",
            "tpr_gap",
        ),
        ({"fairness": {"limits": {"tpr_gap": 0.1}}}, "evaluation.fairness.groups", "name at least one feature"),
        ({"robustness": {"max_flip_rate_increase": -0.1}}, "evaluation.robustness.max_flip_rate_increase", ">= 0"),
        ({"robustness": {"missing_share": 1.5}}, "evaluation.robustness.missing_share", "(0, 1)"),
        ({"explain": {"min_importance_ndcg": 2}}, "evaluation.explain.min_importance_ndcg", "[0, 1]"),
        ({"explain": {"shap": True}}, "evaluation.explain", "unknown key(s) 'shap'"),
    ],
)
def test_a_bad_panel_setting_names_the_key(raw, evaluation, where, words):
    with pytest.raises(ConfigError) as error:
        parse(raw, **evaluation)
    assert f"include/pipelines/churn.yaml: {where}" in str(error.value)
    assert words in str(error.value)


def test_fairness_needs_a_binary_task(raw):
    raw["target"]["task"] = "multiclass_classification"
    with pytest.raises(ConfigError, match=r"evaluation.fairness: .*need a binary task"):
        parse(raw, fairness={"groups": ["region"]})


def test_only_a_numeric_feature_can_be_monotonic(raw):
    features = raw["features"]
    features[[f["name"] for f in features].index("monthly_charges")]["monotonic"] = "increasing"
    assert parse(raw).features[1].monotonic == "increasing"
    features[[f["name"] for f in features].index("region")]["monotonic"] = "increasing"
    with pytest.raises(ConfigError, match=r"features\[6\].monotonic: 'region' is categorical"):
        parse(raw)
    features[6]["monotonic"] = "upwards"
    with pytest.raises(ConfigError, match=r"features\[6\].monotonic: 'upwards' is not one of increasing, decreasing"):
        parse(raw)
