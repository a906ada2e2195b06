"""The fairness panel (issue 24, item 2): Fairlearn's gaps between groups, the challenger against the champion on the
gate's own test rows and resamples, with real fitted scikit-learn models on the churn stream."""

from __future__ import annotations

import copy
import datetime as dt
import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import CHURN_CONFIG, churn_stream
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from airflow_mlops.core import evaluation, reports, rows, training
from airflow_mlops.core.config import load_config, parse_config
from airflow_mlops.core.errors import ConfigError
from airflow_mlops.core.evaluation import fairness
from airflow_mlops.core.evaluation.models import Loaded, score
from airflow_mlops.core.evaluation.panels import PanelInputs
from airflow_mlops.core.labels import positive_class

FAIRLEARN = {"tpr_gap": true_positive_rate, "fpr_gap": false_positive_rate, "selection_rate_ratio": selection_rate}


class RegionBoost(ClassifierMixin, BaseEstimator):
    """A real model whose churn scores are raised by `shift` for one region: it favours that region on purpose."""

    def __init__(self, model=None, region="south", shift=0.3):
        self.model = model
        self.region = region
        self.shift = shift

    def fit(self, X, y):
        self.model_ = clone(self.model).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        proba = self.model_.predict_proba(X).copy()
        raised = np.clip(proba[:, 1] + self.shift * (X["region"].to_numpy() == self.region), 0.0, 1.0)
        return np.column_stack([1.0 - raised, raised])

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def days(first: str, n: int, rows_per_day: int = 200) -> pd.DataFrame:
    start = dt.date.fromisoformat(first)
    return pd.concat(
        [churn_stream.daily_batch(start + dt.timedelta(days=i), rows=rows_per_day) for i in range(n)], ignore_index=True
    )


def configured(fairness_section=None, **evaluation):
    raw = copy.deepcopy(load_config(CHURN_CONFIG).raw)
    raw["model"]["candidates"] = [c for c in raw["model"]["candidates"] if c["name"] == "logistic_regression"]
    raw["evaluation"].update({"bootstrap_samples": 400, **evaluation})
    if fairness_section is not None:
        raw["evaluation"]["fairness"] = fairness_section
    return parse_config(raw, file=str(CHURN_CONFIG), check_estimators=False)


@pytest.fixture(scope="module")
def train():
    return days("2026-01-01", 7)


@pytest.fixture(scope="module")
def test_rows():
    return days("2026-02-01", 15)  # 3,000 rows, about 750 a region


@pytest.fixture(scope="module")
def models(train):
    config = configured()
    model, _ = training.fit_candidate(train, config, "logistic_regression")
    x, y = train[config.feature_names], train[config.target]
    boosted = RegionBoost(model, region="south", shift=0.3).fit(x, y)
    return {
        "fair": Loaded(uri="models:/churn/1", model=model, signature=None),
        "favours_south": Loaded(uri="models:/churn/2", model=boosted, signature=None),
    }


def panel_inputs(config, frame, challenger, champion):
    y = frame[config.target].to_numpy()
    ch_scores, _, labels = score(challenger, frame, config, role="challenger")
    cp_scores = None if champion is None else score(champion, frame, config, role="champion")[0]
    return PanelInputs(
        config, frame, y, labels, positive_class(config, labels), challenger, champion, ch_scores, cp_scores
    )


def rows_of(result, column, metric):
    [row] = [r for r in result.table if r["group_column"] == column and r["metric"] == metric]
    return row


def failing(result):
    return [text for ok, text in result.checks if not ok]


# --------------------------------------------------------------------------- Fairlearn's numbers, weighted


def test_the_weighted_gaps_equal_metricframe_with_sample_weight(models, test_rows):
    config = configured({"groups": ["region"]})
    frame = test_rows.copy()
    frame.loc[frame.index[::97], "region"] = None  # a null is its own group
    inputs = panel_inputs(config, frame, models["favours_south"], models["fair"])
    labels, positive = inputs.labels, inputs.positive
    pos = labels.index(positive)
    keys = np.where(frame["region"].isna(), fairness.MISSING, frame["region"].astype(str)).astype(object)
    names, index = np.unique(keys, return_inverse=True)
    assert fairness.MISSING in names
    actual = inputs.y == positive
    predicted = [fairness.predicted_positive(s, pos) for s in (inputs.challenger_scores, inputs.champion_scores)]
    kernel = fairness.rates_kernel(index, len(names), actual, predicted)
    rng = np.random.default_rng(11)
    resample = np.bincount(rng.integers(0, len(frame), len(frame)), minlength=len(frame)).astype(float)
    for w in (np.ones(len(frame)), resample):
        rates = kernel(w)
        for model, pred in enumerate(predicted):
            labelled = np.asarray(labels)[np.where(pred, pos, 1 - pos)]  # each row's predicted class, as labelled
            frame_ = MetricFrame(
                metrics={m: partial(f, pos_label=positive) for m, f in FAIRLEARN.items()},
                y_true=inputs.y,
                y_pred=labelled,
                sensitive_features=keys,
                sample_params={m: {"sample_weight": w} for m in FAIRLEARN},
            )
            for metric, (_, col, _) in fairness.RATES.items():
                ours = fairness.between_groups(metric, rates[model][:, col])
                if metric == fairness.RATIO:
                    theirs = frame_.ratio(method="between_groups")[metric]
                else:
                    theirs = frame_.difference(method="between_groups")[metric]
                assert abs(ours - theirs) <= 1e-12, (metric, model, ours, theirs)
                by_group = frame_.by_group[metric].reindex(names).to_numpy(dtype=float)
                np.testing.assert_allclose(rates[model][:, col], by_group, rtol=0, atol=1e-12)
    # the panel's observed gaps are MetricFrame's own, over the groups with enough rows (not the 31 nulls)
    result = fairness.run(inputs)
    assert not rows_of(result, "region", "tpr_gap")["groups"][fairness.MISSING]["judged"]
    judged = keys != fairness.MISSING
    for metric in fairness.RATES:
        ours = rows_of(result, "region", metric)["challenger"]
        assert ours == fairness.fairlearn_gaps([metric], actual[judged], predicted[0][judged], keys[judged])[metric]


# --------------------------------------------------------------------------- the judgement


def test_a_model_compared_with_itself_never_blocks(models, test_rows):
    config = configured({"groups": ["region", "contract", "payment_method"]})
    result = fairness.run(panel_inputs(config, test_rows, models["fair"], models["fair"]))
    assert not result.blocked and not failing(result)
    for row in result.table:
        assert row["worsening"] == 0.0 and row["low"] == 0.0 and row["high"] == 0.0, row
        assert row["status"] == "holds"
    assert [text.split(" (")[0] for _, text in result.checks] == [
        "fairness region",
        "fairness contract",
        "fairness payment_method",
    ]
    assert result.summary.endswith("holds") and len(result.summary) <= 250


def test_a_challenger_favouring_one_region_is_rejected_naming_the_column_and_the_metric(models, test_rows):
    config = configured({"groups": ["region"]})
    result = fairness.run(panel_inputs(config, test_rows, models["favours_south"], models["fair"]))
    assert result.blocked
    fails = failing(result)
    assert fails and all(text.startswith("fairness region: ") for text in fails)
    ratio = rows_of(result, "region", "selection_rate_ratio")
    assert ratio["status"] == "worsens" and ratio["low"] > config.evaluation.fairness.tolerance
    assert ratio["challenger"] < ratio["champion"]
    [text] = [t for t in fails if "selection_rate_ratio" in t]
    assert "selection_rate_ratio worsens by" in text and "evaluation.fairness.tolerance 0.02" in text
    assert "to south" in text  # the favoured region selects most
    assert ratio["groups"]["south"]["challenger"] > ratio["groups"]["south"]["champion"]
    assert "blocks" in result.summary and "region" in result.summary
    assert result.metrics["region.selection_rate_ratio.low"] == ratio["low"]
    # strict JSON for verdict.json / fairness.json
    json.dumps(reports.json_safe(result.to_dict()), allow_nan=False)


def test_the_gate_rejects_with_the_fairness_reason_in_the_verdict(models, test_rows):
    config = configured(
        {"groups": ["region"]}, robustness={"enabled": False}, explain={"importance": False}, slices={}
    )  # fairness alone beside the gate's own checks (churn.yaml slices on region and contract)
    gate_rows = rows.gate_rows(test_rows, config, champion=None, has_champion=False)
    result = evaluation.judge(config, gate_rows, models["favours_south"], models["fair"])
    assert result.verdict.decision == evaluation.REJECT
    fails = [r for r in result.verdict.reasons if r.startswith("FAIL: fairness region: ")]
    assert any("selection_rate_ratio worsens by" in r for r in fails)
    [panel] = result.panels
    assert panel.name == "fairness" and panel.blocked
    assert result.to_dict()["panels"]["fairness"]["summary"] == panel.summary


def test_an_absolute_limit_rejects_without_a_champion_and_holds_when_met(models, test_rows):
    config = configured({"groups": ["region"], "limits": {"fpr_gap": 0.05, "tpr_gap": 0.9}})
    result = fairness.run(panel_inputs(config, test_rows, models["favours_south"], None))
    fpr = rows_of(result, "region", "fpr_gap")
    assert fpr["status"] == "over limit" and fpr["challenger"] > 0.05 and fpr["champion"] is None
    [text] = failing(result)
    assert text.startswith("fairness region: the challenger's fpr_gap ")
    assert "> evaluation.fairness.limits.fpr_gap 0.05" in text
    assert rows_of(result, "region", "tpr_gap")["status"] == "reported"
    assert rows_of(result, "region", "tpr_gap")["reason"] == "no champion to compare, within limit 0.9"
    assert result.detail["resamples"] is None  # no champion: nothing resampled
    # the fair model meets a limit it is well inside: a passing check with its numbers
    fair = fairness.run(
        panel_inputs(configured({"groups": ["region"], "limits": {"fpr_gap": 0.5}}), test_rows, models["fair"], None)
    )
    [(ok, words)] = fair.checks
    assert ok and words.startswith("fairness region (4 groups): tpr_gap ") and "within limit 0.5" in words


def test_small_groups_are_listed_as_insufficient_and_left_out_of_the_gap(models, test_rows):
    config = configured({"groups": ["region"], "min_group_rows": 50})
    west = test_rows.index[test_rows["region"] == "west"]
    frame = test_rows.drop(west[30:]).copy()  # 30 west rows left
    frame.loc[frame.index[:12], "region"] = np.nan  # 12 rows without a region
    inputs = panel_inputs(config, frame, models["favours_south"], models["fair"])
    result = fairness.run(inputs)
    [note] = [n for n in result.notes if "min_group_rows" in n]
    assert "fairness region: group(s) " in note and "west (" in note and "(missing) (12 rows)" in note
    assert "insufficient evidence, left out of the gaps" in note
    row = rows_of(result, "region", "tpr_gap")
    assert not row["groups"]["west"]["judged"] and not row["groups"]["(missing)"]["judged"]
    assert row["groups"]["south"]["judged"] and row["groups"]["(missing)"]["rows"] == 12
    kept = frame["region"].isin(["north", "south", "east"]).to_numpy()
    pos = inputs.labels.index(inputs.positive)
    predicted = fairness.predicted_positive(inputs.challenger_scores, pos)
    gap = fairness.fairlearn_gaps(
        ["tpr_gap"], (inputs.y == inputs.positive)[kept], predicted[kept], frame["region"].to_numpy()[kept]
    )
    assert row["challenger"] == gap["tpr_gap"]
    assert "2 group(s) too small" in result.summary


def test_a_one_class_group_does_not_crash(models, test_rows):
    config = configured({"groups": ["region"]})
    frame = test_rows[~((test_rows["region"] == "west") & (test_rows["churned"] == 1))]  # west: no positives
    result = fairness.run(panel_inputs(config, frame, models["favours_south"], models["fair"]))
    tpr = rows_of(result, "region", "tpr_gap")
    assert not tpr["groups"]["west"]["judged"] and tpr["groups"]["west"]["positives"] == 0
    assert tpr["groups"]["west"]["challenger"] is None  # undefined, not scikit-learn's 0
    assert any("group west has no positive (1) test rows" in n and "left out of tpr_gap" in n for n in result.notes)
    assert rows_of(result, "region", "fpr_gap")["groups"]["west"]["judged"]  # its false positive rate counts
    assert set(tpr["groups"]) == {"north", "south", "east", "west"} and tpr["status"] == "worsens"
    assert all(r["status"] != "pending" for r in result.table)
    json.dumps(reports.json_safe(result.to_dict()), allow_nan=False)
    # one positive left in west: about a third of the resamples draw none, so its rate's interval is unreliable
    west_churn = test_rows.index[(test_rows["region"] == "west") & (test_rows["churned"] == 1)]
    result = fairness.run(panel_inputs(config, test_rows.drop(west_churn[1:]), models["fair"], models["fair"]))
    tpr = rows_of(result, "region", "tpr_gap")
    assert tpr["groups"]["west"]["judged"] and tpr["status"] == "insufficient evidence" and tpr["low"] is None
    assert "resamples left a group without rows for its rate" in tpr["reason"]
    assert any(n.startswith("fairness region: tpr_gap: ") for n in result.notes) and not result.blocked
    assert rows_of(result, "region", "fpr_gap")["status"] == "holds"


def test_a_column_with_one_group_big_enough_is_insufficient_evidence_not_a_pass(models, test_rows):
    config = configured({"groups": ["region"], "min_group_rows": 1000})
    result = fairness.run(panel_inputs(config, test_rows, models["favours_south"], models["fair"]))
    assert not result.checks and not result.blocked
    assert all(r["status"] == "insufficient evidence" and r["challenger"] is None for r in result.table)
    assert any("tpr_gap not judged, 0 group(s) with 1000+ test rows" in n for n in result.notes)
    assert result.summary.startswith("fairness not judged")


def test_off_without_groups_and_the_chart(models, test_rows, tmp_path):
    assert fairness.run(panel_inputs(configured(), test_rows, models["fair"], None)) is None
    config = configured({"groups": ["region", "contract"]})
    result = fairness.run(panel_inputs(config, test_rows, models["favours_south"], models["fair"]))
    [path] = fairness.plot(result, tmp_path)
    assert path.name == "fairness.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- bad config, at parse time


@pytest.mark.parametrize(
    ("section", "key", "words"),
    [
        ({"groups": ["customer_id"]}, "evaluation.fairness.groups", "'customer_id' is not a feature"),
        ({"groups": ["region"], "tolerance": -0.01}, "evaluation.fairness.tolerance", ">= 0"),
        ({"groups": ["region"], "metrics": ["equalized_odds"]}, "evaluation.fairness.metrics", "tpr_gap"),
        ({"groups": ["region"], "limits": {"demographic_parity": 0.8}}, "evaluation.fairness.limits", "tpr_gap"),
    ],
)
def test_a_bad_fairness_setting_is_a_config_error_naming_the_key(section, key, words):
    with pytest.raises(ConfigError) as error:
        configured(section)
    assert f"churn.yaml: {key}" in str(error.value) and words in str(error.value)


def test_fairness_on_a_regression_task_is_a_config_error():
    raw = yaml.safe_load(CHURN_CONFIG.read_text())
    raw["target"] = {"column": "monthly_charges", "task": "regression"}
    raw["features"] = [f for f in raw["features"] if f["name"] != "monthly_charges"]
    raw["metrics"] = {"primary": "rmse", "others": ["mae"]}
    raw["model"]["candidates"] = [{"name": "ridge", "estimator": "sklearn.linear_model.Ridge", "params": {}}]
    raw["evaluation"].update(guard_rails={}, floors={}, leakage_threshold=None, fairness={"groups": ["region"]})
    with pytest.raises(
        ConfigError, match=r"churn.yaml: evaluation.fairness: .*need a binary task; the task is 'regression'"
    ):
        parse_config(raw, file=str(CHURN_CONFIG), check_estimators=False)
