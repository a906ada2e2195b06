"""The robustness panel (issue 24, item 3): class flips and score changes under small input moves, metric drops
with missing values, declared monotonic features, calibration; both models paired on the same rows, with real
fitted scikit-learn models (a brittle or overconfident one wraps a real fitted pipeline)."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import churn_stream
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from airflow_mlops.core import labels as class_labels
from airflow_mlops.core import training
from airflow_mlops.core.config import parse_config
from airflow_mlops.core.errors import ConfigError
from airflow_mlops.core.evaluation import perturb, robustness
from airflow_mlops.core.evaluation.models import Loaded, align_classes, score
from airflow_mlops.core.evaluation.panels import PanelInputs


class Brittle(ClassifierMixin, BaseEstimator):
    """A real pipeline whose churn probability jumps at one common value: below the median tenure it adds 0.45
    to half its probability, above it 0.05 (a hard threshold), so a one-month move across the median flips it."""

    def __init__(self, inner=None, column="tenure_months"):
        self.inner = inner
        self.column = column

    def fit(self, x, y):
        self.inner_ = clone(self.inner).fit(x, y)
        self.threshold_ = float(np.median(x[self.column]))
        self.classes_ = self.inner_.classes_
        return self

    def predict_proba(self, x):
        p = self.inner_.predict_proba(x)[:, 1]
        q = 0.5 * p + np.where(x[self.column].to_numpy(dtype=float) < self.threshold_, 0.45, 0.05)
        return np.column_stack([1.0 - q, q])

    def predict(self, x):
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


class Overconfident(ClassifierMixin, BaseEstimator):
    """A real pipeline whose probabilities are pushed towards 0 and 1 (the log-odds tripled): same ranking, same
    predicted classes, worse calibration."""

    def __init__(self, inner=None):
        self.inner = inner

    def fit(self, x, y):
        self.inner_ = clone(self.inner).fit(x, y)
        self.classes_ = self.inner_.classes_
        return self

    def predict_proba(self, x):
        p = np.clip(self.inner_.predict_proba(x)[:, 1], 1e-9, 1 - 1e-9)
        q = 1.0 / (1.0 + np.exp(-3.0 * np.log(p / (1.0 - p))))
        return np.column_stack([1.0 - q, q])

    def predict(self, x):
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


def days(first: str, n: int, rows: int = 400) -> pd.DataFrame:
    start = dt.date.fromisoformat(first)
    return pd.concat(
        [churn_stream.daily_batch(start + dt.timedelta(days=i), rows=rows) for i in range(n)], ignore_index=True
    )


def configured(config, robustness=None, monotonic=None):
    """churn.yaml with one logistic candidate, `robustness` keys and `monotonic` declarations (feature -> way)."""
    raw = copy.deepcopy(config.raw)
    raw["model"]["candidates"] = [c for c in raw["model"]["candidates"] if c["name"] == "logistic_regression"]
    raw["evaluation"]["robustness"] = dict(robustness or {})
    for feature in raw["features"]:
        if feature["name"] in (monotonic or {}):
            feature["monotonic"] = monotonic[feature["name"]]
    return parse_config(raw, file=config.path, check_estimators=False)


@pytest.fixture(scope="module")
def train():
    return days("2026-01-01", 14)


@pytest.fixture(scope="module")
def test_rows():
    return days("2026-01-15", 5)  # 2,000 rows


@pytest.fixture(scope="module")
def smooth(churn_config, train):
    model, _ = training.fit_candidate(train, configured(churn_config), "logistic_regression")
    return model


def loaded(model, name):
    return Loaded(uri=f"models:/unit/{name}", model=model, signature=None)


def wrapped(cls, config, smooth, train):
    return cls(inner=smooth).fit(train[config.feature_names], train[config.target])


def panel_inputs(config, frame, challenger, champion):
    """PanelInputs as core.evaluation.gate.judge builds them (both models scored, the champion's classes aligned)."""
    y = frame[config.target].to_numpy()
    ch_scores, _, labels = score(challenger, frame, config, role="challenger")
    positive, _ = class_labels.resolve(config, labels)
    cp_scores = None
    if champion is not None:
        cp_scores, _, cp_labels = score(champion, frame, config, role="champion")
        if labels is not None and cp_labels is not None:
            cp_scores = align_classes(cp_scores, cp_labels, labels, [])
    return PanelInputs(config, frame, y, labels, positive, challenger, champion, ch_scores, cp_scores)


def rows_of(result):
    return {row["check"]: row for row in result.table}


def failed(result):
    return [text for ok, text in result.checks if not ok]


# --------------------------------------------------------------------------- the same model


def test_a_model_compared_with_itself_is_never_blocked(churn_config, smooth, test_rows):
    config = configured(churn_config, monotonic={"monthly_charges": "increasing"})
    model = loaded(smooth, "same")
    result = robustness.run(panel_inputs(config, test_rows, model, model))
    assert not result.blocked and failed(result) == []
    table = rows_of(result)
    for check in ("flip_rate", "score_change", "brier", "ece", "monotonic:monthly_charges"):
        assert table[check]["difference"] == 0.0, check
    assert table["flip_rate"]["high"] == 0.0 and table["flip_rate"]["passed"] is True
    assert all(table[f"missing:{f}"]["difference"] == 0.0 for f in config.feature_names)
    assert result.summary.startswith("flip rate ") and "(champion " in result.summary and "blocks" not in result.summary
    assert {"flip_rate.challenger", "brier.champion", "monotonic.monthly_charges.challenger"} <= set(result.metrics)
    assert set(table["flip_rate"]) == {
        "check",
        "label",
        "challenger",
        "champion",
        "difference",
        "low",
        "high",
        "limit",
        "passed",
    }


def test_off_is_none(churn_config, smooth, test_rows):
    config = configured(churn_config, robustness={"enabled": False})
    assert robustness.run(panel_inputs(config, test_rows, loaded(smooth, "a"), None)) is None


# --------------------------------------------------------------------------- small moves


def test_a_brittle_challenger_flips_more_and_is_blocked_a_smooth_one_is_not(churn_config, smooth, train, test_rows):
    config = configured(churn_config)
    brittle = loaded(wrapped(Brittle, config, smooth, train), "brittle")
    calm = loaded(smooth, "smooth")
    result = robustness.run(panel_inputs(config, test_rows, brittle, calm))
    flip = rows_of(result)["flip_rate"]
    assert flip["challenger"] > 2 * flip["champion"]  # 2.7% against 1.0% of 2,000 rows
    assert flip["low"] > 0 and flip["high"] > config.evaluation.robustness.max_flip_rate_increase
    assert flip["passed"] is False and result.blocked
    [text] = [t for t in failed(result) if "class flips" in t]
    assert "robustness.max_flip_rate_increase 0.02" in text and "jump" in text
    assert "blocks: flip_rate" in result.summary
    # the other way round the smooth challenger flips less than the brittle champion: it passes
    reverse = robustness.run(panel_inputs(config, test_rows, calm, brittle))
    assert rows_of(reverse)["flip_rate"]["passed"] is True
    assert rows_of(reverse)["score_change"]["challenger"] < rows_of(reverse)["score_change"]["champion"]


def test_moves_are_rounded_as_the_data_is(churn_config, test_rows):
    config = configured(churn_config)
    frame = test_rows.astype({"support_calls": "int64"})
    scales = [
        perturb.scale_of(f, perturb.numeric_values(frame[f]), 0.6)  # 0.6 x MAD: support_calls (MAD 1) moves 1 call
        for f in config.numeric_features
    ]
    by = {s.feature: s for s in scales}
    assert by["tenure_months"].decimals == 0 and by["support_calls"].decimals == 0
    assert by["monthly_charges"].decimals == 2 and by["data_usage_gb"].decimals == 2
    moved = perturb.perturbed(frame, scales, np.random.default_rng(0))
    for whole in ("tenure_months", "support_calls"):
        values = moved[whole].to_numpy(dtype=float)
        assert np.array_equal(values, np.round(values)), whole
        assert (values != frame[whole].to_numpy(dtype=float)).mean() > 0.5, whole
    assert moved["support_calls"].dtype == np.int64  # an integer column keeps its dtype
    charges = moved["monthly_charges"].to_numpy()
    assert np.allclose(charges, np.round(charges, 2), atol=1e-9)
    for f in config.numeric_features:  # kept within the test rows' range
        assert moved[f].min() >= frame[f].min() and moved[f].max() <= frame[f].max()
    # at the default 0.1 x MAD, support_calls' move (0.1 call) rounds away: left alone, and the panel says so
    assert perturb.scale_of("support_calls", perturb.numeric_values(frame["support_calls"]), 0.1).step == 0.0


def test_a_move_that_rounds_away_is_named_in_a_note(churn_config, smooth, test_rows):
    config = configured(churn_config)
    result = robustness.run(panel_inputs(config, test_rows, loaded(smooth, "a"), None))
    [note] = [n for n in result.notes if "left unmoved" in n]
    assert "support_calls" in note and "rounds away" in note and "evaluation.robustness.perturbation" in note
    assert result.detail["features"]["support_calls"]["step"] == 0.0
    assert result.detail["features"]["tenure_months"]["step"] >= 1.0


# --------------------------------------------------------------------------- monotonic features


def test_a_declared_monotonic_feature_the_model_breaks_blocks_naming_it(churn_config, smooth, test_rows):
    # churn falls with tenure: a model that learned it breaks a declaration that it rises
    config = configured(churn_config, monotonic={"tenure_months": "increasing", "monthly_charges": "increasing"})
    model = loaded(smooth, "lr")
    first = robustness.run(panel_inputs(config, test_rows, model, None))  # no champion: the check still applies
    table = rows_of(first)
    assert table["monotonic:tenure_months"]["challenger"] > 0.9 and table["monotonic:tenure_months"]["passed"] is False
    assert table["monotonic:monthly_charges"]["challenger"] == 0.0 and table["monotonic:monthly_charges"]["passed"]
    [text] = failed(first)
    assert "tenure_months is declared increasing" in text and "robustness.max_monotonic_violations 0.05" in text
    for check in ("flip_rate", "brier", "ece"):  # reported, not judged: there is no champion to compare with
        assert table[check]["champion"] is None and table[check]["passed"] is None
    assert first.blocked and "blocks: monotonic:tenure_months" in first.summary
    grid = first.detail["monotonic"]["tenure_months"]["grid"]
    assert grid == sorted(grid) and all(v == round(v) for v in grid) and len(grid) >= 5


# --------------------------------------------------------------------------- calibration


def test_calibration_made_worse_on_purpose_is_blocked(churn_config, smooth, train, test_rows):
    config = configured(churn_config)
    sharp = loaded(wrapped(Overconfident, config, smooth, train), "overconfident")
    result = robustness.run(panel_inputs(config, test_rows, sharp, loaded(smooth, "calm")))
    table = rows_of(result)
    assert table["flip_rate"]["passed"] is True  # the same classes: only calibration moved
    assert table["brier"]["passed"] is False and table["brier"]["low"] > 0
    assert table["ece"]["challenger"] > table["ece"]["champion"]
    [brier] = [t for t in failed(result) if "Brier score" in t]
    assert "significantly worse calibrated" in brier and "95% CI" in brier
    assert result.detail["calibration"]["bins"] == 10 and "equal-mass" in result.detail["calibration"]["binning"]
    reliability = result.detail["calibration"]["reliability"]
    assert set(reliability) == {"challenger", "champion"} and len(reliability["challenger"]["predicted"]) == 10
    # the well-calibrated model against the overconfident champion passes
    assert not robustness.run(panel_inputs(config, test_rows, loaded(smooth, "calm"), sharp)).blocked


# --------------------------------------------------------------------------- missing values


def test_missing_values_a_model_cannot_take_give_a_note_not_a_crash(churn_config, train, test_rows):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    config = configured(churn_config)
    bare = Pipeline(  # no imputer: scikit-learn's LogisticRegression refuses NaN
        [
            (
                "pre",
                ColumnTransformer(
                    [("cat", OneHotEncoder(handle_unknown="ignore"), config.categorical_features)],
                    remainder="passthrough",
                ),
            ),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    ).fit(train[config.feature_names], train[config.target])
    imputing, _ = training.fit_candidate(train, config, "logistic_regression")
    result = robustness.run(panel_inputs(config, test_rows, loaded(bare, "bare"), loaded(imputing, "imputing")))
    table = rows_of(result)
    for feature in config.numeric_features:
        assert table[f"missing:{feature}"]["challenger"] is None
        assert table[f"missing:{feature}"]["champion"] is not None  # the project's pipeline imputes
        [note] = [n for n in result.notes if f"{feature!r} missing" in n]
        assert note.startswith("robustness: the challenger cannot score rows with") and "NaN" in note
        assert "impute missing values" in note
    assert table["missing:contract"]["challenger"] is not None  # OneHotEncoder takes a missing category
    assert table["missing:contract"]["champion"] > 0  # contract matters: losing 10% of it costs AUC
    assert not any("missing" in t for t in failed(result))  # reported, never a gate check


# --------------------------------------------------------------------------- determinism, regression, plot


def test_the_same_seed_gives_the_same_panel_and_another_seed_another_sample(churn_config, smooth, train, test_rows):
    config = configured(churn_config, robustness={"sample_rows": 500}, monotonic={"monthly_charges": "increasing"})
    brittle = loaded(wrapped(Brittle, config, smooth, train), "brittle")
    inputs = panel_inputs(config, test_rows, brittle, loaded(smooth, "smooth"))
    first, second = robustness.run(inputs), robustness.run(inputs)
    assert first.to_dict() == second.to_dict()
    other = robustness.run(panel_inputs(config._replace(seed=config.seed + 1), test_rows, brittle, loaded(smooth, "s")))
    assert rows_of(other)["flip_rate"]["challenger"] != rows_of(first)["flip_rate"]["challenger"]
    assert first.detail["rows"] == 500


def test_regression_reports_score_changes_and_no_calibration(churn_config, train, test_rows):
    raw = copy.deepcopy(churn_config.raw)
    raw["target"] = {"column": "monthly_charges", "task": "regression"}
    raw["features"] = [f for f in raw["features"] if f["name"] != "monthly_charges"]
    raw["features"][0]["monotonic"] = "decreasing"  # tenure_months
    raw["model"]["candidates"] = [{"name": "ridge", "estimator": "sklearn.linear_model.Ridge"}]
    raw["metrics"] = {"primary": "rmse", "others": ["mae"]}
    raw["evaluation"].update(guard_rails={}, floors={}, leakage_threshold=None)
    config = parse_config(raw, file=churn_config.path, check_estimators=False)
    model, _ = training.fit_candidate(train, config, "ridge")
    result = robustness.run(panel_inputs(config, test_rows, loaded(model, "r"), loaded(model, "r")))
    table = rows_of(result)
    assert "flip_rate" not in table and "brier" not in table and "ece" not in table
    assert table["score_change"]["challenger"] > 0 and table["score_change"]["difference"] == 0.0
    assert table["missing:tenure_months"]["challenger"] is not None  # the rmse's rise
    assert result.summary.startswith("score change ") and not result.blocked


def test_the_chart_is_written(churn_config, smooth, train, test_rows, tmp_path):
    config = configured(churn_config, monotonic={"monthly_charges": "increasing"})
    result = robustness.run(
        panel_inputs(config, test_rows, loaded(wrapped(Brittle, config, smooth, train), "b"), loaded(smooth, "s"))
    )
    [png] = robustness.plot(result, tmp_path)
    assert png.name == "robustness.png" and png.read_bytes()[:4] == b"\x89PNG"


def test_a_negative_monotonic_tolerance_is_refused_naming_the_key(churn_config):
    with pytest.raises(ConfigError, match="monotonic_tolerance"):
        configured(churn_config, robustness={"monotonic_tolerance": -0.01})


def test_multiclass_flips_and_calibration_are_judged_and_a_monotonic_declaration_is_a_note():
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    features = ["alcohol", "malic_acid", "color_intensity", "proline"]
    config = parse_config(
        {
            "pipeline": "wine",
            "source": {"path": "data/test"},
            "target": {"column": "target", "task": "multiclass_classification"},
            "features": [{"name": n, "type": "numeric"} for n in features[:3]]
            + [{"name": "proline", "type": "numeric", "monotonic": "increasing"}],
            "validation": {"suite": "s.json"},
            "model": {
                "name": "wine",
                "candidates": [
                    {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 2000}}
                ],
            },
            "metrics": {"primary": "roc_auc"},
            "seed": 3,
        },
        check_estimators=False,
    )
    model, _ = training.fit_candidate(wine.iloc[::2], config, "lr")
    same = loaded(model, "wine")
    result = robustness.run(panel_inputs(config, wine.iloc[1::2].reset_index(drop=True), same, same))
    table = rows_of(result)
    assert {"flip_rate", "score_change", "brier", "ece"} <= set(table) and not result.blocked
    assert "monotonic:proline" not in table
    assert any("monotonic proline not checked: a multiclass model" in n for n in result.notes)
    assert result.detail["calibration"]["score"] == "top-label confidence"
