"""The importance panel (issue 24, item 4): scikit-learn's permutation importance of both models on the gate's test
rows, the nDCG / Spearman comparison of their rankings, and the two warnings it may give (never a block). Real
models fitted on churn_stream data; the feature a model is denied (shuffled in its training rows) or the column made
a label proxy is what the panel must name."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import CHURN_CONFIG, churn_stream

from airflow_mlops.core import evaluation, rows, training
from airflow_mlops.core.config import load_config, parse_config
from airflow_mlops.core.evaluation import importance
from airflow_mlops.core.evaluation.models import Loaded, score
from airflow_mlops.core.evaluation.panels import PanelInputs


def days(first: str, n: int, rows_per_day: int = 200) -> pd.DataFrame:
    start = dt.date.fromisoformat(first)
    return pd.concat(
        [churn_stream.daily_batch(start + dt.timedelta(days=i), rows=rows_per_day) for i in range(n)], ignore_index=True
    )


def configured(*, features=None, primary=None, **explain):
    base = load_config(CHURN_CONFIG)
    raw = copy.deepcopy(dict(base.raw))
    raw["model"]["candidates"] = [c for c in raw["model"]["candidates"] if c["name"] == "logistic_regression"]
    raw["evaluation"]["explain"] = {"sample_rows": 600, "repeats": 3, **explain}
    raw["evaluation"].update(slices={}, fairness={}, robustness={"enabled": False})  # this panel alone
    if features is not None:
        raw["features"] = [f for f in raw["features"] if f["name"] in features]
    if primary is not None:
        raw["metrics"]["primary"] = primary
        raw["metrics"]["others"] = [m for m in raw["metrics"]["others"] if m != primary]
        raw["evaluation"]["floors"] = {}
        raw["evaluation"]["guard_rails"] = {}
    return parse_config(raw, file=base.path, check_estimators=False)


@pytest.fixture(scope="module")
def config():
    return configured()


@pytest.fixture(scope="module")
def train():
    return days("2026-01-01", 7)


@pytest.fixture(scope="module")
def test_frame():
    return days("2026-01-08", 4)  # 800 rows the models never saw


def shuffled(frame: pd.DataFrame, *columns: str, seed: int = 0) -> pd.DataFrame:
    """The rows with `columns` shuffled: a model fitted on them cannot use those features."""
    rng = np.random.default_rng(seed)
    return frame.assign(**{c: rng.permutation(frame[c].to_numpy()) for c in columns})


def leaky(frame: pd.DataFrame) -> pd.DataFrame:
    """data_usage_gb (which churn does not depend on) made a proxy of the label: a leaked column."""
    noise = np.random.default_rng(1).normal(10, 5, len(frame))
    return frame.assign(data_usage_gb=frame["churned"] * 30 + noise)


def fit(config, train: pd.DataFrame, name: str) -> Loaded:
    model, _ = training.fit_candidate(train, config, "logistic_regression")
    return Loaded(uri=f"models:/unit/{name}", model=model, signature=None)


@pytest.fixture(scope="module")
def champion(config, train):
    return fit(config, train, "champion")


def panel_inputs(config, frame: pd.DataFrame, challenger: Loaded, champion: Loaded | None) -> PanelInputs:
    y = frame[config.target].to_numpy()
    ch_scores, _, labels = score(challenger, frame, config, role="challenger")
    cp_scores = None if champion is None else score(champion, frame, config, role="champion")[0]
    return PanelInputs(config, frame, y, labels, 1, challenger, champion, ch_scores, cp_scores)


def row(result, feature: str) -> dict:
    [found] = [r for r in result.table if r["feature"] == feature]
    return found


def test_a_feature_the_model_uses_ranks_above_one_it_cannot_use(config, train, test_frame):
    # churn depends on contract and tenure, never on data_usage_gb; this model is also denied support_calls
    model = fit(config, shuffled(train, "support_calls"), "no-calls")
    result = importance.run(panel_inputs(config, test_frame, model, None))

    ranks = {r["feature"]: r["challenger_rank"] for r in result.table}
    assert ranks["contract"] < ranks["data_usage_gb"] and ranks["tenure_months"] < ranks["data_usage_gb"]
    assert ranks["contract"] < ranks["support_calls"] and ranks["tenure_months"] < ranks["support_calls"]
    used, unused = row(result, "contract"), row(result, "support_calls")
    assert used["challenger"] > 0.02 and used["challenger"] > 3 * used["challenger_std"]
    assert abs(unused["challenger"]) < 0.01  # shuffling a column the model never learned loses (almost) nothing
    assert [r["challenger_rank"] for r in result.table] == list(range(1, 8))  # sorted by the challenger
    # no champion: the challenger's importances only, nothing compared, nothing warned
    assert all(r["champion"] is None and r["champion_rank"] is None for r in result.table)
    assert result.notes == [] and result.checks == []
    assert result.detail["ndcg"] is None and "ndcg" not in result.metrics
    assert result.summary.startswith("importance top: contract") and "no champion" in result.summary
    assert result.detail["rows"] == 600 and result.detail["repeats"] == 3 and result.detail["metric"] == "roc_auc"


def test_a_model_compared_with_itself_has_ndcg_one_and_no_warning(config, champion, test_frame):
    result = importance.run(panel_inputs(config, test_frame, champion, champion))

    assert result.detail["ndcg"] == pytest.approx(1.0) and result.detail["spearman"] == pytest.approx(1.0)
    assert result.notes == [] and result.checks == [] and not result.blocked
    assert result.detail["leaning"] is None and result.detail["moved"] == []
    assert all(r["challenger"] == r["champion"] and r["challenger_rank"] == r["champion_rank"] for r in result.table)
    assert result.metrics["ndcg"] == pytest.approx(1.0) and 0 < result.metrics["top_share"] < 1
    assert result.summary.startswith("importance ranking nDCG 1.00, Spearman 1.00 vs the champion; top: contract")
    json_row = result.to_dict()["table"][0]
    assert set(json_row) == {
        "feature",
        "challenger",
        "challenger_std",
        "champion",
        "champion_std",
        "challenger_rank",
        "champion_rank",
    }


def test_a_challenger_relying_on_other_features_warns_naming_what_moved(config, champion, train, test_frame):
    other = fit(config, shuffled(train, "contract", "tenure_months"), "other")  # cannot use the champion's top two
    result = importance.run(panel_inputs(config, test_frame, other, champion))

    assert result.detail["ndcg"] < config.evaluation.explain.min_importance_ndcg
    assert result.checks == [] and not result.blocked  # a warning, never a block
    [note] = result.notes
    assert note.startswith("importance: the challenger ranks the features differently from the champion (nDCG 0.")
    assert "< evaluation.explain.min_importance_ndcg 0.9" in note
    assert "contract 1 -> " in note  # the champion's top feature, fallen
    assert result.detail["moved"][0] == "contract"
    assert row(result, "contract")["champion_rank"] == 1 and row(result, "contract")["challenger_rank"] >= 6
    assert "ranking moved" in result.summary


def test_a_challenger_leaning_on_one_feature_is_flagged_with_both_shares(config, champion, train, test_frame):
    leaker = fit(config, leaky(train), "leaker")
    result = importance.run(panel_inputs(config, leaky(test_frame), leaker, champion))

    leaning = result.detail["leaning"]
    assert leaning["feature"] == "data_usage_gb" and leaning["challenger_share"] > 0.9
    assert leaning["champion_share"] < 0.05
    [flag] = [n for n in result.notes if "leans on" in n]
    assert flag.startswith("importance: the challenger leans on 'data_usage_gb': ")
    assert f"{leaning['challenger_share']:.0%} of its permutation importance (roc_auc)" in flag
    assert f"against {leaning['champion_share']:.0%} for the champion" in flag
    assert "target leakage or a broken upstream column" in flag
    assert not result.blocked and "leans on data_usage_gb" in result.summary
    assert result.metrics["top_share"] == pytest.approx(leaning["challenger_share"])


def test_an_ordinary_retrain_is_not_flagged(config, champion, test_frame):
    retrained = fit(config, days("2026-01-02", 7), "retrained")  # the next day's window: same world
    result = importance.run(panel_inputs(config, test_frame, retrained, champion))

    assert result.notes == [] and result.detail["leaning"] is None
    assert result.detail["ndcg"] > 0.95 and result.detail["spearman"] > 0.8


def test_a_loss_as_primary_metric_keeps_positive_importance_for_what_the_model_relies_on(train, test_frame):
    config = configured(primary="log_loss")
    model = fit(config, train, "m")
    result = importance.run(panel_inputs(config, test_frame, model, None))

    assert result.detail["metric"] == "log_loss"
    assert row(result, "contract")["challenger"] > 0.02 and result.table[0]["feature"] == "contract"
    assert result.detail["baseline"]["challenger"] > 0  # the log loss itself, not its negation


def test_the_panel_is_deterministic_by_the_seed(config, champion, train, test_frame):
    other = fit(config, shuffled(train, "contract"), "other")
    first = importance.run(panel_inputs(config, test_frame, other, champion))
    again = importance.run(panel_inputs(config, test_frame, other, champion))
    assert first.table == again.table and first.notes == again.notes

    reseeded = config._replace(seed=config.seed + 1)
    moved = importance.run(panel_inputs(reseeded, test_frame, other, champion))
    assert moved.table != first.table  # another sample and other permutations


def test_the_sample_is_seeded_and_keeps_each_class(config, test_frame):
    y = test_frame["churned"].to_numpy()
    rows_a, y_a = importance.sample(test_frame, y, 300, seed=1, classify=True)
    rows_b, y_b = importance.sample(test_frame, y, 300, seed=1, classify=True)
    assert rows_a.equals(rows_b) and len(rows_a) == pytest.approx(300, abs=1)
    assert (y_a == rows_a["churned"].to_numpy()).all()
    assert abs(y_a.mean() - y.mean()) < 0.01  # each class in its proportion
    rare = np.zeros(1000, dtype=int)
    rare[7] = 1
    _, y_rare = importance.sample(pd.DataFrame({"x": range(1000)}), rare, 100, seed=0, classify=True)
    assert y_rare.sum() == 1  # the one positive is kept: ROC AUC stays defined


def test_the_chart_is_written(config, champion, train, test_frame, tmp_path):
    other = fit(config, shuffled(train, "contract"), "other")
    result = importance.run(panel_inputs(config, test_frame, other, champion))
    [path] = importance.plot(result, tmp_path)
    assert path == tmp_path / "importance.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    alone = importance.run(panel_inputs(config, test_frame, other, None))
    [solo] = importance.plot(alone, tmp_path / "solo")
    assert solo.stat().st_size > 1000


def test_fifty_features_make_a_chart_tall_enough_to_read(tmp_path):
    from airflow_mlops.core.evaluation.panels import PanelResult

    table = [
        {
            "feature": f"feature_{i:02d}",
            "challenger": 0.05 - i * 0.001,
            "challenger_std": 0.002,
            "champion": 0.04 - i * 0.0005,
            "champion_std": 0.002,
            "challenger_rank": i + 1,
            "champion_rank": i + 1,
        }
        for i in range(50)
    ]
    result = PanelResult("importance", table=table, detail={"metric": "roc_auc", "rows": 2000, "repeats": 5})
    [path] = importance.plot(result, tmp_path)
    from matplotlib.image import imread

    height, width = imread(path).shape[:2]
    assert height / 50 >= 25  # at least 25 pixels a feature


def test_one_feature_does_not_crash(train, test_frame):
    config = configured(features=["tenure_months"])
    champion, challenger = fit(config, train, "a"), fit(config, days("2026-01-02", 7), "b")
    result = importance.run(panel_inputs(config, test_frame, challenger, champion))

    [only] = result.table
    assert only["feature"] == "tenure_months" and only["challenger_rank"] == 1 and only["challenger"] > 0
    assert result.detail["ndcg"] is None and result.detail["spearman"] is None and result.notes == []
    assert "nDCG n/a" in result.summary


def test_off_when_the_config_says_so(champion, test_frame):
    config = configured(importance=False)
    assert importance.run(panel_inputs(config, test_frame, champion, champion)) is None


def test_the_gate_runs_the_panel_and_a_leaning_challenger_is_warned_not_blocked(train, test_frame, tmp_path):
    config = configured()
    champion, leaker = fit(config, train, "champion"), fit(config, leaky(train), "leaker")
    test = rows.gate_rows(leaky(test_frame), config, champion=None, has_champion=False)
    result = evaluation.judge(config, test, leaker, champion)

    [panel] = [p for p in result.panels if p.name == "importance"]
    assert any(r.startswith("importance: the challenger leans on 'data_usage_gb'") for r in result.verdict.reasons)
    assert not any(r.startswith("FAIL") and "importance" in r for r in result.verdict.reasons)
    assert result.to_dict()["panels"]["importance"]["detail"]["leaning"]["feature"] == "data_usage_gb"
    files = {p.name for p in evaluation.write_artifacts(result, tmp_path)}
    assert {"importance.json", "importance.png"} <= files
    assert panel.metrics["ndcg"] < 0.9
