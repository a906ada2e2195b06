"""core.performance: join accounting, realized metrics against scikit-learn, the decay rule, bad inputs,
and whole checks on a real MLflow store (a registered champion with a promise, prediction partitions and
label files written here, as batch scoring and the label export would)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CHURN_CONFIG

from airflow_mlops import cli
from airflow_mlops.core import monitoring
from airflow_mlops.core.config import PerformanceConfig, ScoringConfig, load_config
from airflow_mlops.core.errors import NothingToCheck, PerformanceError
from airflow_mlops.core.performance import (
    check_day,
    evidence,
    join_day,
    judge,
    metrics,
    predictions_path,
    read_labels,
    realized_metrics,
)
from airflow_mlops.core.performance.join import check_join_rate

MODEL = "churn_classifier"
DAY = dt.date(2026, 3, 1)
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


# --------------------------------------------------------------------------- helpers


def synthetic_day(day: dt.date, rows: int, auc: float, *, seed: int = 0, version: str = "1", rate: float = 0.35):
    """Predictions and labels of one day whose true ROC AUC is `auc` (binormal scores, mapped to 0..1)."""
    from scipy.stats import norm

    rng = np.random.default_rng([seed, day.toordinal()])
    y = rng.random(rows) < rate
    shift = math.sqrt(2) * norm.ppf(auc)
    score = 1 / (1 + np.exp(-(rng.normal(0, 1, rows) + shift * y - shift / 2 - 0.6)))
    ids = [f"C{day:%Y%m%d}-{i:05d}" for i in range(rows)]
    predictions = pd.DataFrame(
        {
            "customer_id": ids,
            "score": score,
            "predicted": (score >= 0.5).astype(int),
            "model_version": version,
            "data_digest": "sha256:test",
            "scored_at": f"{day}T05:00:00+00:00",
        }
    )
    labels = pd.DataFrame({"customer_id": ids, "event_date": day.isoformat(), "churned": y.astype(int)})
    return predictions, labels


def write_predictions(config, day: dt.date, predictions: pd.DataFrame):
    path = predictions_path(config, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictions.to_parquet(path, index=False)
    return path


def write_labels(folder, day: dt.date, labels: pd.DataFrame):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"churn_labels_{day.isoformat()}.csv"
    labels.to_csv(path, index=False)
    return path


@pytest.fixture
def config(tmp_path, mlops_home):
    """churn.yaml with its labels in a temp folder; 1,000 resamples, min_rows 200."""
    base = load_config(CHURN_CONFIG)
    labels = tmp_path / "labels"
    labels.mkdir()
    return base._replace(scoring=ScoringConfig(source=str(tmp_path / "batches"), labels=str(labels)))


def labels_dir(config):
    return Path(config.scoring.labels)


@pytest.fixture
def champion(mlflow_client):
    """churn_classifier v1 as champion, whose evaluation run promised roc_auc 0.80 on 600 test rows (no real model:
    a check never loads it; the classes come from the predictions since v1 has no training snapshot)."""
    from airflow_mlops.core import tracking

    experiment = tracking.ensure_experiment(mlflow_client, "churn")
    train = mlflow_client.create_run(experiment, run_name="train").info.run_id
    mlflow_client.create_registered_model(MODEL)
    version = mlflow_client.create_model_version(MODEL, source="file:///nowhere/model", run_id=train).version
    evaluation = mlflow_client.create_run(experiment, run_name="evaluate").info.run_id
    for key, value in {
        "challenger.roc_auc": 0.80,
        "challenger.accuracy": 0.75,
        "challenger.log_loss": 0.50,
        "test_rows": 600,
    }.items():
        mlflow_client.log_metric(evaluation, key, value)
    mlflow_client.set_model_version_tag(MODEL, version, "evaluation.run_id", evaluation)
    mlflow_client.set_model_version_tag(MODEL, version, "decision", "NO_BASELINE_PROMOTE")
    mlflow_client.set_registered_model_alias(MODEL, "champion", version)
    return mlflow_client


def perf_runs(client, status=None):
    exp = client.get_experiment_by_name("churn-monitoring")
    if exp is None:
        return []
    where = "tags.`mlops.step` = 'performance'" + (f" and attributes.status = '{status}'" if status else "")
    return client.search_runs([exp.experiment_id], where, order_by=["attributes.start_time ASC"])


# --------------------------------------------------------------------------- join accounting


def test_join_counts_every_row():
    predictions = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(10)],
            "score": np.linspace(0.05, 0.95, 10),
            "predicted": [0] * 5 + [1] * 5,
            "model_version": ["2"] * 8 + ["1"] * 2,
        }
    )
    labels = pd.DataFrame(
        {
            "customer_id": [
                "c0",
                "c1",
                "c2",
                "c3",
                "c4",
                "c5",
                "c6",  # matched
                "c1",  # an identical repeat: collapsed, counted
                "c7",
                "c7",  # conflicting outcomes: c7 dropped, counted
                "x1",
                "x2",
            ],  # nobody scored them
            "churned": [0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0],
        }
    )
    result = join_day(predictions, labels, ["customer_id"], "churned", day=DAY)
    assert result.matched == 7
    assert result.predictions == 10 and result.label_rows == 12
    assert result.predictions_without_labels == 3  # c7 (conflicting), c8, c9
    assert result.labels_without_predictions == 2
    assert result.duplicate_label_rows == 2 and result.conflicting_label_ids == 1
    assert result.main_version == "2" and result.other_versions == {"1": 2}
    assert result.matched_by_version == {"2": 7}
    assert result.join_rate == pytest.approx(0.7)
    assert sorted(result.joined["customer_id"]) == [f"c{i}" for i in range(7)]
    assert result.joined.set_index("customer_id")["actual"]["c1"] == 1
    counts = result.counts()
    assert counts["other_version_rows"] == 2 and counts["day"] == "2026-03-01"
    text = result.describe()
    for fragment in (
        "7 of 10 prediction(s) matched",
        "3 prediction(s) without a label yet",
        "2 label(s) without a prediction",
        "2 duplicate label row(s) (1 id(s) with conflicting",
        "main model version v2",
        "v1: 2",
    ):
        assert fragment in text


def test_ids_stored_as_numbers_on_one_side_are_joined_as_text():
    predictions = pd.DataFrame(
        {"customer_id": ["1", "2", "3"], "score": [0.1, 0.9, 0.4], "predicted": [0, 1, 0], "model_version": "1"}
    )
    labels = pd.DataFrame({"customer_id": [1, 2, 3], "churned": [0, 1, 1]})
    assert join_day(predictions, labels, ["customer_id"], "churned").matched == 3


def test_repeated_prediction_ids_are_refused():
    predictions = pd.DataFrame(
        {"customer_id": ["a", "a", "b"], "score": [0.1, 0.2, 0.3], "predicted": 0, "model_version": "1"}
    )
    labels = pd.DataFrame({"customer_id": ["a", "b"], "churned": [0, 1]})
    with pytest.raises(PerformanceError, match=r"2 rows with a repeated id \(customer_id: a\).*corrupt"):
        join_day(predictions, labels, ["customer_id"], "churned")


def test_a_join_under_min_join_rate_fails_naming_every_count():
    predictions, labels = synthetic_day(DAY, 100, 0.8)
    result = join_day(predictions, labels.head(80), ["customer_id"], "churned", day=DAY)
    check_join_rate(result, 0.8)  # exactly at the floor: fine
    with pytest.raises(PerformanceError) as err:
        check_join_rate(result, 0.9, predictions_path="p.parquet", labels_path="l.csv")
    message = str(err.value)
    assert "join of 2026-03-01 under monitoring.performance.min_join_rate (90%)" in message
    assert "80 of 100 prediction(s) matched a label (join rate 80.0%)" in message
    assert "20 prediction(s) without a label yet" in message and "(predictions p.parquet, labels l.csv)" in message


# --------------------------------------------------------------------------- metrics


def test_binary_metrics_match_scikit_learn(churn_config):
    from sklearn import metrics as m

    predictions, labels = synthetic_day(DAY, 400, 0.78, seed=3)
    predictions["score"] = predictions["score"].round(2)  # ties, counted half as roc_auc_score does
    joined = join_day(predictions, labels, ["customer_id"], "churned").joined
    result = realized_metrics(joined, churn_config, positive=1, classes=[0, 1], n_boot=500, seed=1)
    y, s, p = joined["actual"].to_numpy(), joined["score"].to_numpy(), joined["predicted"].to_numpy()
    assert result.value == pytest.approx(m.roc_auc_score(y, s), abs=1e-12)
    assert result.metrics["roc_auc"] == result.value and result.metric == "roc_auc"
    assert result.metrics["accuracy"] == pytest.approx(m.accuracy_score(y, p))
    assert result.metrics["f1"] == pytest.approx(m.f1_score(y, p))
    assert result.metrics["log_loss"] == pytest.approx(m.log_loss(y, np.column_stack([1 - s, s])))
    assert result.metrics["positive_rate"] == pytest.approx(y.mean())
    assert result.metrics["predicted_positive_rate"] == pytest.approx(p.mean())
    bins = np.minimum((s * 10).astype(int), 9)  # expected calibration error, by hand
    ece = sum(
        abs(y[bins == b].mean() - s[bins == b].mean()) * (bins == b).mean() for b in range(10) if (bins == b).any()
    )
    assert result.metrics["calibration_error"] == pytest.approx(ece)
    assert result.low < result.value < result.high and result.high - result.low < 0.15
    assert result.method.startswith("bootstrap of the rows")
    again = realized_metrics(joined, churn_config, positive=1, classes=[0, 1], n_boot=500, seed=1)
    assert (again.low, again.high) == (result.low, result.high)  # seeded


def test_text_labels_use_the_positive_class(churn_config):
    from sklearn import metrics as m

    predictions, labels = synthetic_day(DAY, 300, 0.8, seed=4)
    predictions["predicted"] = predictions["predicted"].map({0: "No", 1: "Yes"})
    labels["churned"] = labels["churned"].map({0: "No", 1: "Yes"})
    joined = join_day(predictions, labels, ["customer_id"], "churned").joined
    result = realized_metrics(joined, churn_config, positive="Yes", classes=["No", "Yes"], n_boot=200, seed=1)
    assert result.value == pytest.approx(m.roc_auc_score(joined["actual"] == "Yes", joined["score"]))
    assert result.metrics["f1"] == pytest.approx(m.f1_score(joined["actual"], joined["predicted"], pos_label="Yes"))


@pytest.mark.parametrize("primary", ["roc_auc", "log_loss", "f1"])
def test_the_fast_bootstrap_of_a_big_day_agrees_with_resampling_the_rows(churn_config, monkeypatch, primary):
    config = churn_config._replace(metrics=churn_config.metrics._replace(primary=primary))
    predictions, labels = synthetic_day(DAY, 60_000, 0.8, seed=5)
    predictions["score"] = predictions["score"].round(3)
    joined = join_day(predictions, labels, ["customer_id"], "churned").joined
    fast = realized_metrics(joined, config, positive=1, n_boot=400, seed=2)
    monkeypatch.setattr(metrics, "EXACT_MAX_ROWS", 10**9)
    exact = realized_metrics(joined, config, positive=1, n_boot=400, seed=2)
    assert fast.method.startswith("Poisson bootstrap") and exact.method.startswith("bootstrap of the rows")
    assert fast.value == exact.value
    width = exact.high - exact.low
    assert abs(fast.low - exact.low) < 0.15 * width and abs(fast.high - exact.high) < 0.15 * width


def test_regression_metrics_match_scikit_learn():
    from sklearn import metrics as m

    config = load_config(CHURN_CONFIG.parent / "diabetes.yaml")
    rng = np.random.default_rng(0)
    actual = rng.normal(150, 50, 300)
    joined = pd.DataFrame({"actual": actual, "score": actual + rng.normal(0, 30, 300)})
    joined["predicted"] = joined["score"]
    result = realized_metrics(joined, config, n_boot=300, seed=1)
    assert result.metrics["rmse"] == pytest.approx(m.root_mean_squared_error(actual, joined["score"]))
    assert result.metrics["mae"] == pytest.approx(m.mean_absolute_error(actual, joined["score"]))
    assert result.metrics["r2"] == pytest.approx(m.r2_score(actual, joined["score"]))
    assert result.low < result.value < result.high


def test_a_day_with_one_class_has_no_interval_and_is_not_judged(churn_config):
    predictions, labels = synthetic_day(DAY, 300, 0.8)
    labels["churned"] = 0
    joined = join_day(predictions, labels, ["customer_id"], "churned").joined
    result = realized_metrics(joined, churn_config, positive=1, n_boot=200, seed=1)
    assert math.isnan(result.value) and result.low is None
    assert "one class only" in result.notes[0]
    verdict = judge(result, 0.8, tolerance=0.02, min_rows=200)
    assert not verdict.judged and "no interval" in verdict.reason


# --------------------------------------------------------------------------- the decay rule


def _realized(value, low, high, rows=1000, metric="roc_auc"):
    return metrics.RealizedMetrics("1", rows, metric, value, low, high, 0.95)


def test_judge_decay_only_when_the_interval_lies_beyond_promised_minus_tolerance():
    covers = judge(_realized(0.76, 0.73, 0.79), 0.80, tolerance=0.02, min_rows=200)
    assert covers.judged and not covers.decay and covers.threshold == pytest.approx(0.78)
    assert "not wholly below promised 0.8000 - tolerance 0.02 = 0.7800: no decay" in covers.reason
    below = judge(_realized(0.72, 0.69, 0.775), 0.80, tolerance=0.02, min_rows=200)
    assert below.decay and below.verdict == "decay" and "DECAY" in below.reason
    # lower is better (log_loss): mirrored
    assert judge(_realized(0.60, 0.56, 0.64, metric="log_loss"), 0.50, tolerance=0.05, min_rows=200).decay
    assert not judge(_realized(0.58, 0.54, 0.62, metric="log_loss"), 0.50, tolerance=0.05, min_rows=200).decay


def test_judge_reports_without_judging_thin_days_and_missing_promises():
    thin = judge(_realized(0.5, 0.3, 0.7, rows=50), 0.80, tolerance=0.02, min_rows=200)
    assert (
        not thin.judged
        and "50 labelled row(s) of the model, fewer than monitoring.performance.min_rows (200)" in thin.reason
    )
    assert not judge(_realized(0.5, 0.4, 0.6), None, tolerance=0.02, min_rows=200).judged
    assert not judge(None, 0.8, tolerance=0.02, min_rows=200).judged


def test_the_rule_on_seeded_days_requests_on_the_second_decayed_day_then_cools_down(churn_config):
    """Days drawn with a known true AUC: healthy days (true AUC = the promise) never decay; after the true
    AUC drops by 0.12, the first decayed day is not enough, the second requests, the third is in the cool-down."""
    promised, perf = 0.80, churn_config.monitoring.performance
    history, decisions = [], []
    start = dt.datetime(2026, 3, 1, 7, tzinfo=dt.UTC)
    for i, true_auc in enumerate([0.80] * 6 + [0.68] * 3):
        day = DAY + dt.timedelta(days=i)
        predictions, labels = synthetic_day(day, 400, true_auc, seed=11)
        joined = join_day(predictions, labels, ["customer_id"], "churned").joined
        realized = realized_metrics(joined, churn_config, positive=1, n_boot=1000, seed=[42, day.toordinal()])
        verdict = judge(realized, promised, tolerance=perf.tolerance, min_rows=perf.min_rows)
        now = start + dt.timedelta(hours=8 * i)  # checks 8 h apart: the third decayed day is inside the cool-down
        requested, reason = monitoring.should_request_retrain(
            [*history, {"at": now, "drift": verdict.decay, "requested": False}],
            now=now,
            confirm_checks=perf.confirm_days,
            of_last_checks=perf.of_last_days,
            cooldown_hours=perf.cooldown_hours,
            what="decay",
            unit="labelled day",
        )
        history.append({"at": now, "drift": verdict.decay, "requested": requested})
        decisions.append((verdict.decay, requested, reason))
    assert [d[0] for d in decisions] == [False] * 6 + [True] * 3
    assert [d[1] for d in decisions] == [False] * 7 + [True, False]
    assert "decay in 1 of the last 3 labelled day(s); 2 of 3 are needed" in decisions[6][2]
    assert "cool-down of 24 h" in decisions[8][2]


# --------------------------------------------------------------------------- whole checks on MLflow


def _day(config, day, auc, rows=400, **kwargs):
    predictions, labels = synthetic_day(day, rows, auc, seed=21, **kwargs)
    write_predictions(config, day, predictions)
    return write_labels(labels_dir(config), day, labels)


def test_checks_request_on_the_second_decayed_day_cool_down_and_count_a_rechecked_day_once(
    config, champion, capsys, tmp_path
):
    client = champion
    days = [DAY + dt.timedelta(days=i) for i in range(4)]
    for day, auc in zip(days, [0.80, 0.66, 0.66, 0.66], strict=True):
        _day(config, day, auc)
    at = [NOW + dt.timedelta(hours=h) for h in (0, 1, 2, 3, 4)]

    healthy = check_day(client, config, days[0], now=at[0])
    assert healthy.judgement.verdict == "no_decay" and not healthy.requested
    assert healthy.promise.run_id and healthy.judgement.promised == pytest.approx(0.80)
    assert "predicted classes of the day" in healthy.classes_from  # the fake v1 has no training snapshot
    first = check_day(client, config, days[1], now=at[1])
    assert first.judgement.decay and not first.requested
    assert "decay in 1 of the last 2 labelled day(s)" in first.reason
    second = check_day(client, config, days[2], now=at[2])
    assert second.requested and "decay in 2 of the last 3 labelled days" in second.reason
    again = check_day(client, config, days[2], now=at[3])  # the same day checked again: still one day, cooling down
    assert again.judgement.decay and not again.requested and "cool-down of 24 h" in again.reason
    third = check_day(client, config, days[3], now=at[4])
    assert not third.requested and "cool-down" in third.reason

    runs = perf_runs(client)
    assert len(runs) == 5 and all(r.info.status == "FINISHED" for r in runs)
    tags = runs[2].data.tags
    assert tags["mlops.step"] == "performance" and tags["performance.day"] == "2026-03-03"
    assert tags["performance.version"] == "1" and tags["performance.verdict"] == "decay"
    assert tags["retrain.requested"] == "true" and tags["mlops.model"] == MODEL
    m = runs[2].data.metrics
    assert m["join_rate"] == 1.0 and m["rows"] == 400 and m["promised"] == pytest.approx(0.80)
    assert m["realized.high"] < m["threshold"] == pytest.approx(0.78)
    assert {"realized.calibration_error", "realized.positive_rate", "realized.accuracy", "join.matched"} <= set(m)
    artifacts = {a.path for a in client.list_artifacts(runs[4].info.run_id, "performance")}
    assert artifacts == {
        "performance/days.csv",
        "performance/days.json",
        "performance/check.json",
        "performance/summary.txt",
        "performance/realized_roc_auc.png",
    }
    table = json.loads(
        Path(client.download_artifacts(runs[4].info.run_id, "performance/days.json", str(tmp_path))).read_text()
    )
    assert [r["day"] for r in table] == [d.isoformat() for d in days]
    assert [r["decay"] for r in table] == ["no", "yes", "yes", "yes"]

    rows = evidence.performance_table(client, config)
    assert [r["day"] for r in rows] == [d.isoformat() for d in days]  # the latest check of each day
    assert [r["requested"] for r in rows] == [False, False, False, False]  # day 3's latest check did not ask

    code = cli.main(["performance", "churn"])
    out = capsys.readouterr().out
    assert code == 0 and "DAY" in out and "JOIN RATE" in out and "2026-03-04" in out and "100.0%" in out
    assert out.count("yes") == 3
    assert cli.main(["performance", "churn", "--json", "--days", "2"]) == 0
    assert [r["day"] for r in json.loads(capsys.readouterr().out)] == ["2026-03-03", "2026-03-04"]
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "churn_classifier v1 (champion) in production: realized roc_auc" in out
    assert "over 4 labelled day(s) 2026-03-01..2026-03-04; decay on 3 of 4 judged); promised 0.8000" in out


def test_a_day_scored_by_two_versions_is_reported_per_version_and_judged_on_the_champion(config, champion):
    predictions, labels = synthetic_day(DAY, 500, 0.80, seed=8)
    predictions.loc[400:, "model_version"] = "7"  # the rest of the day was scored by another version
    write_predictions(config, DAY, predictions)
    write_labels(labels_dir(config), DAY, labels)
    check = check_day(champion, config, DAY, now=NOW)
    assert set(check.realized) == {"1", "7"} and check.realized["7"].rows == 100
    assert check.judged_metrics.rows == 400 and check.judgement.judged
    assert check.join.main_version == "1" and check.join.counts()["other_version_rows"] == 100
    [run] = perf_runs(champion)
    assert run.data.metrics["rows"] == 400 and run.data.metrics["v7.rows"] == 100 and "v7.roc_auc" in run.data.metrics


def test_status_works_without_any_monitoring_run(champion, capsys):
    assert cli.main(["status", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["champion"] == "1" and row["performance"] is None
    assert cli.main(["performance", "churn"]) == 0
    assert "no performance checks yet" in capsys.readouterr().out
    assert cli.main(["performance", "nope"]) == 2


def test_nothing_to_check_without_a_champion_or_before_the_labels_arrive(config, mlflow_client, champion):
    with pytest.raises(NothingToCheck, match="labels of 2026-03-01 have not arrived.*it was not scored either"):
        check_day(champion, config, DAY)
    predictions, _ = synthetic_day(DAY, 50, 0.8)
    write_predictions(config, DAY, predictions)
    with pytest.raises(NothingToCheck, match="its predictions are waiting. They are due by 2026-03-08"):
        check_day(champion, config, DAY)
    mlflow_client.delete_registered_model_alias(MODEL, "champion")
    with pytest.raises(NothingToCheck, match="has no champion"):
        check_day(champion, config, DAY)
    assert perf_runs(champion) == []


def test_a_join_under_min_join_rate_fails_and_is_logged_as_failed_not_as_a_day(config, champion):
    predictions, labels = synthetic_day(DAY, 400, 0.8)
    write_predictions(config, DAY, predictions)
    write_labels(labels_dir(config), DAY, labels.head(300))
    with pytest.raises(PerformanceError) as err:
        check_day(champion, config, DAY, now=NOW)
    assert "300 of 400 prediction(s) matched a label (join rate 75.0%)" in str(err.value)
    assert "100 prediction(s) without a label yet" in str(err.value)
    [run] = perf_runs(champion)
    assert run.info.status == "FAILED" and run.data.tags["performance.verdict"] == "join_failed"
    assert err.value.run_id == run.info.run_id and run.data.metrics["join.matched"] == 300
    assert evidence.performance_table(champion, config) == []  # not a labelled day


# --------------------------------------------------------------------------- bad input: a clear message, nothing written


def _nothing_written(client, config, day):
    assert perf_runs(client) == []


def test_labels_for_a_future_day_are_refused(config, champion):
    future = dt.date.today() + dt.timedelta(days=3)
    _day(config, future, 0.8, rows=50)
    with pytest.raises(PerformanceError, match=rf"labels for {future}, a future day \(today is"):
        check_day(champion, config, future)
    _nothing_written(champion, config, future)


def test_label_rows_dated_in_the_future_or_another_day_are_refused(config, champion):
    predictions, labels = synthetic_day(DAY, 50, 0.8)
    write_predictions(config, DAY, predictions)
    labels.loc[3, "event_date"] = "2026-02-27"
    write_labels(labels_dir(config), DAY, labels)
    with pytest.raises(
        PerformanceError,
        match=r"churn_labels_2026-03-01.csv: the labels file of 2026-03-01 holds 1 "
        r"row\(s\) of other day\(s\) \(2026-02-27\)",
    ):
        check_day(champion, config, DAY)
    labels.loc[3, "event_date"] = (dt.date.today() + dt.timedelta(days=5)).isoformat()
    write_labels(labels_dir(config), DAY, labels)
    with pytest.raises(PerformanceError, match=r"1 label row\(s\) dated in the future"):
        check_day(champion, config, DAY)
    _nothing_written(champion, config, DAY)


def test_labels_for_a_day_without_predictions_name_the_day_and_the_path(config, champion):
    _, labels = synthetic_day(DAY, 50, 0.8)
    write_labels(labels_dir(config), DAY, labels)
    with pytest.raises(PerformanceError) as err:
        check_day(champion, config, DAY)
    assert "labels for 2026-03-01 arrived" in str(err.value)
    assert f"{predictions_path(config, DAY)} does not exist" in str(err.value)
    _nothing_written(champion, config, DAY)


def test_labels_with_unknown_classes_are_refused(config, champion):
    predictions, labels = synthetic_day(DAY, 50, 0.8)
    write_predictions(config, DAY, predictions)
    labels["churned"] = labels["churned"].map({0: "no", 1: "yes"})
    write_labels(labels_dir(config), DAY, labels)
    with pytest.raises(
        PerformanceError,
        match=r"target column 'churned' holds class\(es\) 'no', 'yes' \(50 row\(s\)\) "
        r"that the model does not know \(its classes: 0, 1\)",
    ):
        check_day(champion, config, DAY)
    _nothing_written(champion, config, DAY)


@pytest.mark.parametrize("drop", ["customer_id", "churned"])
def test_labels_missing_the_id_or_target_column_are_refused(config, champion, drop):
    predictions, labels = synthetic_day(DAY, 50, 0.8)
    write_predictions(config, DAY, predictions)
    write_labels(labels_dir(config), DAY, labels.drop(columns=[drop]))
    with pytest.raises(PerformanceError, match=rf"labels lack column\(s\) '{drop}' \(present: "):
        check_day(champion, config, DAY)
    _nothing_written(champion, config, DAY)


def test_a_labels_source_outside_the_allowed_folders_is_refused(config, champion):
    with pytest.raises(PerformanceError, match="source path is outside the allowed folders"):
        check_day(champion, config, DAY, labels_source="/etc")
    with pytest.raises(PerformanceError, match="NUL byte"):
        read_labels(config, DAY, source="data/x\x00y")


def test_the_predictions_path_is_one_parquet_partition_per_day(config, mlops_home):
    assert (
        predictions_path(config, DAY) == mlops_home / "predictions" / "churn" / "day=2026-03-01" / "predictions.parquet"
    )


def test_performance_config_defaults_are_the_ones_the_docs_name():
    assert PerformanceConfig() == PerformanceConfig(
        tolerance=0.02,
        min_join_rate=0.9,
        min_rows=200,
        bootstrap_samples=1000,
        confirm_days=2,
        of_last_days=3,
        cooldown_hours=24.0,
    )
