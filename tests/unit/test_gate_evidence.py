"""The gate's evidence (issue 21, items 3-4): events counted per class, a stratified paired bootstrap that
refuses when resamples cannot score, what the margin means (evaluation.require), guard rails judged by
their interval, and evaluation.baseline_guard against the model's first champion (real MLflow SQLite)."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from conftest import churn_stream

from airflow_mlops.core import evaluation, registry, rows, training
from airflow_mlops.core.config import ApprovalConfig, parse_config
from airflow_mlops.core.evaluation import PROMOTE, REJECT, BootstrapResult, decide, paired_bootstrap, paired_bootstraps
from airflow_mlops.core.evaluation.bootstrap import multinomial_resamples
from airflow_mlops.core.evaluation.models import Loaded

DIGEST = "sha256:" + "ab" * 32
ACTOR = {"actor": "unit-test"}
# churn.yaml: margin 0.005, guard rails accuracy 0.02 / log_loss 0.03, floors roc_auc 0.65 / log_loss 0.70
CHAMPION = {"roc_auc": 0.82, "accuracy": 0.79, "f1": 0.58, "log_loss": 0.47}
BETTER = {"roc_auc": 0.85, "accuracy": 0.80, "f1": 0.60, "log_loss": 0.45}


def interval(gain, low, high, metric):
    return BootstrapResult(gain, low, high, np.linspace(low, high, 1000), metric=metric, confidence=0.95)


def steady_rails(challenger, champion, spread=0.005):
    out = {}
    for m in ("accuracy", "log_loss"):
        gain = champion[m] - challenger[m] if m == "log_loss" else challenger[m] - champion[m]
        out[m] = interval(gain, gain - spread, gain + spread, m)
    return out


def failing(verdict):
    return [r for r in verdict.reasons if r.startswith("FAIL")]


def with_evaluation(config, **changes):
    raw = copy.deepcopy(config.raw)
    raw["model"]["candidates"] = [c for c in raw["model"]["candidates"] if c["name"] == "logistic_regression"]
    raw["evaluation"].update(changes)
    return parse_config(raw, file=config.path, check_estimators=False)


def days(first: str, n: int, rows_per_day: int = 200) -> pd.DataFrame:
    start = dt.date.fromisoformat(first)
    return pd.concat(
        [churn_stream.daily_batch(start + dt.timedelta(days=i), rows=rows_per_day) for i in range(n)], ignore_index=True
    )


def fitted(config, train, *, shuffle_labels=False, name="m") -> Loaded:
    if shuffle_labels:  # a model that learned nothing: the same rows, the labels permuted
        train = train.assign(**{config.target: np.random.default_rng(0).permutation(train[config.target].to_numpy())})
    model, _ = training.fit_candidate(train, config, "logistic_regression")
    return Loaded(uri=f"models:/unit/{name}", model=model, signature=None)


# --------------------------------------------------------------------------- events, not rows


def test_one_positive_among_500_test_rows_cannot_promote_and_the_verdict_names_the_count(churn_config):
    config = with_evaluation(churn_config)
    assert config.evaluation.min_test_events == 50 and config.evaluation.min_test_rows == 500
    train = days("2026-01-01", 7)
    weak, strong = fitted(config, train, shuffle_labels=True, name="weak"), fitted(config, train, name="strong")
    fresh = days("2026-01-08", 4)
    test = pd.concat([fresh[fresh["churned"] == 0].head(499), fresh[fresh["churned"] == 1].head(1)], ignore_index=True)
    test_rows = rows.gate_rows(test, config, champion=None, has_champion=False)
    result = evaluation.judge(config, test_rows, strong, weak)  # a far better challenger: still judged on one event
    v = result.verdict
    assert v.decision == REJECT and not v.promote
    [fail] = failing(v)
    assert fail.startswith(
        "FAIL: 1 positive (1) and 499 negative (0) test rows: fewer than "
        "evaluation.min_test_events (50) of the positive class"
    )
    assert "the champion stays" in fail and "split.test_days" in fail
    assert "PASS: 500 clean test rows >= evaluation.min_test_rows (500)" in v.reasons
    assert result.bootstrap is None and result.n_rows == 0  # nothing was scored
    assert result.to_dict()["class_counts"] == {"counts": {"0": 499, "1": 1}, "positive": 1}
    # the first model is held to the same bar
    assert evaluation.judge(config, test_rows, strong, None).verdict.decision == REJECT


def test_the_event_counts_are_stated_when_they_pass(churn_config, churn_frame):
    config = with_evaluation(churn_config)
    split = rows.split_roles(churn_frame, config)
    model = fitted(config, split.train)
    test_rows = rows.gate_rows(split.test, config, champion=None, has_champion=False)
    result = evaluation.judge(config, test_rows, model, None)
    positives, negatives = int((split.test["churned"] == 1).sum()), int((split.test["churned"] == 0).sum())
    assert positives >= 50 and negatives >= 50
    want = (
        f"PASS: {positives:,} positive (1) and {negatives:,} negative (0) test rows >= evaluation.min_test_events (50)"
    )
    assert want in result.verdict.reasons


# --------------------------------------------------------------------------- the stratified paired bootstrap


def one_positive(n=500, seed=3):
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=int)
    y[17] = 1
    a = np.clip(rng.uniform(0, 0.6, n) + 0.4 * y, 0, 1)
    b = np.clip(rng.uniform(0, 0.6, n) + 0.2 * y, 0, 1)
    return y, a, b


def test_every_stratified_resample_holds_both_classes_so_every_auc_is_finite():
    y, a, b = one_positive()
    res = paired_bootstrap(
        y, a, b, "roc_auc", task="binary_classification", labels=[0, 1], n=1000, seed=1, confidence=0.95
    )
    assert res.unusable == 0 and res.resamples == 1000 and len(res.samples) == 1000
    assert np.isfinite(res.samples).all() and res.usable
    # each class keeps its count in every resample (the one positive is drawn exactly once)
    strata = [np.flatnonzero(y == 0), np.flatnonzero(y == 1)]
    kept = multinomial_resamples(
        np.random.default_rng(0), len(y), 200, lambda w: [w[strata[0]].sum(), w[strata[1]].sum()], strata=strata
    )
    assert kept.shape == (200, 2) and (kept[:, 0] == 499).all() and (kept[:, 1] == 1).all()


def test_with_the_events_check_lowered_the_gate_scores_every_resample(churn_config):
    config = with_evaluation(churn_config, min_test_events=1)
    train = days("2026-01-01", 7)
    champion, challenger = fitted(config, train, shuffle_labels=True, name="weak"), fitted(config, train, name="good")
    fresh = days("2026-01-08", 4)
    test = pd.concat([fresh[fresh["churned"] == 0].head(499), fresh[fresh["churned"] == 1].head(1)], ignore_index=True)
    result = evaluation.judge(
        config, rows.gate_rows(test, config, champion=None, has_champion=False), challenger, champion
    )
    for name, b in result.intervals.items():
        assert b.resamples == config.evaluation.bootstrap_samples and b.unusable == 0, name
        assert np.isfinite(b.samples).all(), name
    assert (
        "PASS: 1 positive (1) and 499 negative (0) test rows >= evaluation.min_test_events (1)"
        in result.verdict.reasons
    )


def test_more_than_1_percent_unusable_resamples_refuse_to_judge(churn_config):
    # r2 is undefined on a resample whose target is constant: one non-zero target among 500 rows is
    # missing from about 37% of resamples
    n = 500
    rng = np.random.default_rng(4)
    y = np.zeros(n)
    y[3] = 5.0
    good, bad = y + rng.normal(0, 0.1, n), y + rng.normal(0, 0.3, n)
    kw = dict(task="regression", labels=None, n=1000, seed=0, confidence=0.95)
    res = paired_bootstrap(y, good, bad, "r2", **kw)
    assert not res.usable and 0.3 < res.unusable / res.resamples < 0.45
    config = churn_config._replace(
        task="regression",
        metrics=churn_config.metrics._replace(primary="r2", others=()),
        evaluation=churn_config.evaluation._replace(guard_rails={}, floors={}, margin=0.0, leakage_threshold=None),
    )
    metrics = {k: training.compute_metrics("regression", y, p, None, ["r2"]) for k, p in (("good", good), ("bad", bad))}
    v = decide(config, metrics["good"], metrics["bad"], res)
    assert v.decision == REJECT
    [fail] = failing(v)
    assert f"{res.unusable:,} of 1,000 bootstrap resamples" in fail and "could not compute r2 (more than 1%)" in fail
    assert "refuses to judge" in fail
    # seven non-zero targets: a constant resample is rare (about 0.1%), the interval is used
    y7 = np.zeros(n)
    y7[:7] = 5.0
    ok = paired_bootstrap(y7, y7 + rng.normal(0, 0.1, n), y7 + rng.normal(0, 0.3, n), "r2", **kw)
    assert ok.usable and ok.unusable <= 10
    m7 = {"r2": 0.99}
    assert not any("refuses" in r for r in decide(config, m7, {"r2": 0.9}, ok).reasons)


def test_guard_rails_use_the_primary_metrics_resamples():
    rng = np.random.default_rng(8)
    y = (rng.random(3000) < 0.3).astype(int)
    a = np.clip(0.3 + 0.3 * y + rng.normal(0, 0.2, len(y)), 0.01, 0.99)
    b = np.clip(0.3 + 0.25 * y + rng.normal(0, 0.2, len(y)), 0.01, 0.99)
    kw = dict(task="binary_classification", labels=[0, 1], n=300, seed=5, confidence=0.95)
    together = paired_bootstraps(y, a, b, ["roc_auc", "accuracy", "log_loss"], **kw)
    for metric in ("roc_auc", "accuracy", "log_loss"):
        alone = paired_bootstrap(y, a, b, metric, **kw)
        np.testing.assert_array_equal(together[metric].samples, alone.samples)  # the same draws, metric by metric


# --------------------------------------------------------------------------- what the margin means


def test_lower_bound_promotes_only_when_the_interval_clears_the_margin(churn_config):
    point = churn_config
    lower = churn_config._replace(evaluation=churn_config.evaluation._replace(require="lower_bound"))
    rails = steady_rails(BETTER, CHAMPION)
    gain_over_margin_bound_under = interval(0.03, 0.003, 0.05, "roc_auc")  # gain >= 0.005 > low > 0
    assert decide(point, BETTER, CHAMPION, gain_over_margin_bound_under, intervals=rails).decision == PROMOTE
    v = decide(lower, BETTER, CHAMPION, gain_over_margin_bound_under, intervals=rails)
    assert v.decision == REJECT
    [fail] = failing(v)
    assert "roc_auc improved by 0.0300 (95% CI 0.0030..0.0500" in fail
    assert "the lower bound 0.0030 < margin 0.005: a gain of at least the margin is not established" in fail
    assert "evaluation.require: lower_bound" in fail
    clears = decide(lower, BETTER, CHAMPION, interval(0.03, 0.006, 0.05, "roc_auc"), intervals=rails)
    assert clears.decision == PROMOTE
    assert any(
        "the lower bound 0.0060 >= margin 0.005: a gain of at least the margin is established "
        "(evaluation.require: lower_bound)" in r
        for r in clears.reasons
    )
    # approval: the band is measured from the margin, not from zero
    reviewed = lower._replace(
        evaluation=lower.evaluation._replace(approval=ApprovalConfig(mode="borderline", band=0.005))
    )
    near = decide(reviewed, BETTER, CHAMPION, interval(0.03, 0.001, 0.05, "roc_auc"), intervals=rails)
    assert near.decision == REJECT and near.needs_approval and "is below the margin" in near.approval_reasons[0]
    far = decide(reviewed, BETTER, CHAMPION, interval(0.03, -0.001, 0.05, "roc_auc"), intervals=rails)
    assert far.decision == REJECT and not far.needs_approval


def test_a_gain_hidden_by_a_wide_interval_says_how_many_more_test_rows_would_show_it(churn_config):
    """The cause of the tree families' missed power (docs/benchmarks.md): the interval, not the gain. The verdict
    says so, with the factor of test rows that would narrow it enough (the half-width shrinks as 1/sqrt(rows))."""
    rails = steady_rails(BETTER, CHAMPION)
    wide = decide(churn_config, BETTER, CHAMPION, interval(0.03, -0.004, 0.064, "roc_auc"), intervals=rails)
    [fail] = failing(wide)
    assert (
        "not significant; the interval's half-width 0.0340 is wider than the gain over 0 (0.0300): about 1.3x "
        "today's clean test rows would establish a gain this size (lengthen split.test_days" in fail
    )
    slightly = {**BETTER, "roc_auc": CHAMPION["roc_auc"] + 0.003}
    small = decide(churn_config, slightly, CHAMPION, interval(0.003, -0.002, 0.008, "roc_auc"), intervals=rails)
    assert not any("today's clean test rows" in r for r in small.reasons)  # under the margin: more rows will not help


# --------------------------------------------------------------------------- guard rails by their interval


def test_a_guard_rail_within_tolerance_on_the_point_but_not_by_its_interval_fails(churn_config):
    challenger = {**BETTER, "accuracy": CHAMPION["accuracy"] - 0.015}  # point regression 0.015 < tolerance 0.02
    rails = {**steady_rails(challenger, CHAMPION), "accuracy": interval(-0.015, -0.026, -0.004, "accuracy")}
    v = decide(churn_config, challenger, CHAMPION, interval(0.03, 0.02, 0.04, "roc_auc"), intervals=rails)
    assert v.decision == REJECT
    [fail] = failing(v)
    assert fail == (
        "FAIL: accuracy regressed by 0.0150 (champion 0.7900 -> challenger 0.7750); its regression may be "
        "as large as 0.0260 (95% CI of the gain -0.0260..-0.0040) > guard rail tolerance 0.02"
    )
    narrow = {**rails, "accuracy": interval(-0.015, -0.019, -0.011, "accuracy")}
    ok = decide(churn_config, challenger, CHAMPION, interval(0.03, 0.02, 0.04, "roc_auc"), intervals=narrow)
    assert ok.decision == PROMOTE
    assert any("its regression is at most 0.0190" in r and "<= guard rail tolerance 0.02" in r for r in ok.reasons)
    # no interval at all: the rail cannot be judged, fail closed
    missing = decide(
        churn_config,
        challenger,
        CHAMPION,
        interval(0.03, 0.02, 0.04, "roc_auc"),
        intervals={"log_loss": rails["log_loss"]},
    )
    assert missing.decision == REJECT and any("accuracy" in r and "no interval" in r for r in failing(missing))


def test_the_evidence_shows_every_metrics_interval(churn_config, churn_frame):
    config = with_evaluation(churn_config)
    split = rows.split_roles(churn_frame, config)
    result = evaluation.judge(
        config,
        rows.gate_rows(split.test, config, champion=None, has_champion=False),
        fitted(config, split.train, name="a"),
        fitted(config, split.train, shuffle_labels=True),
    )
    table = {row["metric"]: row for row in result.metric_table()}
    for name in ("roc_auc", "accuracy", "f1", "log_loss"):
        assert table[name]["ci_low"] is not None and table[name]["ci_low"] <= table[name]["ci_high"], name
        assert table[name]["ci_low"] == result.intervals[name].low
    basis = result.to_dict()
    assert basis["require"] == "point" and basis["bootstrap"]["stratified"] is True
    assert basis["bootstrap"]["unusable"] == 0
    assert set(basis["intervals"]) >= {"roc_auc", "accuracy", "log_loss"}
    assert basis["intervals"]["accuracy"]["low"] == result.intervals["accuracy"].low


# --------------------------------------------------------------------------- baseline_guard, real MLflow


def register(client, config, frame, *, shuffle_labels=False, tag):
    if shuffle_labels:
        frame = frame.assign(churned=np.random.default_rng(1).permutation(frame["churned"].to_numpy()))
    split = rows.split_roles(frame, config)
    result = training.train_candidate(
        split,
        config,
        "logistic_regression",
        client=client,
        experiment=config.name,
        data_digest=DIGEST,
        data_uri="file:///snapshots/churn.parquet",
        tags={},
    )
    reg = registry.register_challenger(
        client,
        config.model_name,
        result["model_uri"],
        result["run_id"],
        tags={"data.digest": DIGEST, "airflow.run_id": tag},
        alias="challenger",
    )
    return str(reg["version"])


def gate(client, config, test, challenger, champion):
    return evaluation.evaluate(
        client,
        config,
        test,
        challenger_uri=f"models:/{config.model_name}/{challenger}",
        champion_uri=f"models:/{config.model_name}/{champion}",
    )


def baseline_lines(verdict):
    return [r for r in verdict.reasons if "first champion" in r or "baseline guard" in r]


def test_the_baseline_guard_compares_the_guard_rails_with_the_first_champion(mlflow_client, churn_config, tmp_path):
    config = with_evaluation(churn_config, baseline_guard=True, min_test_rows=400)
    name = config.model_name
    stream = days("2026-01-01", 13)
    first = register(mlflow_client, config, stream[stream["event_date"] <= "2026-01-10"], tag="first")
    registry.promote(mlflow_client, name, first, expected_champion=None, actor=ACTOR, reason="first model")
    later = stream[stream["event_date"] >= "2026-01-04"]
    test = rows.split_roles(later, config).test

    # the first champion is the champion: nothing more to compare
    same = register(mlflow_client, config, later, tag="same")
    only = gate(mlflow_client, config, test, same, first)
    assert only.baseline.is_champion
    assert (
        f"PASS: baseline guard: the first champion (version {first}) is the current champion: the guard rails "
        f"above compare with it" in only.verdict.reasons
    )

    # a champion that learned nothing was promoted after it; a challenger as weak passes against that champion
    # on every guard rail, but not against the first champion
    weak = register(
        mlflow_client, config, stream[stream["event_date"] <= "2026-01-10"], shuffle_labels=True, tag="weak"
    )
    registry.promote(mlflow_client, name, weak, expected_champion=first, actor=ACTOR, reason="unit")
    weaker = register(mlflow_client, config, later, shuffle_labels=True, tag="weaker")
    result = gate(mlflow_client, config, test, weaker, weak)
    assert result.verdict.decision == REJECT
    b = result.baseline
    assert b.version == first and b.why is None and not b.is_champion and b.n_rows == result.n_rows
    assert b.excluded == 0  # its days ended before the test days
    fails = [r for r in failing(result.verdict) if "against the first champion" in r]
    assert fails and any(
        r.startswith(
            f"FAIL: log_loss against the first champion (version {first}, on "
            f"{b.n_rows:,} test rows it never saw) regressed by"
        )
        for r in fails
    )
    assert b.metrics["log_loss"] < b.challenger["log_loss"] - 0.03  # the first champion's real numbers
    assert not any("log_loss" in r and "champion " in r and "first" not in r for r in failing(result.verdict))
    assert result.to_dict()["baseline"]["version"] == first
    run = mlflow_client.get_run(
        evaluation.log_evaluation(
            mlflow_client,
            result,
            experiment="churn-evaluation",
            run_name="baseline",
            tags={},
            model_name=name,
            challenger_version=weaker,
            champion_version=weak,
        )
    )
    assert run.data.params["baseline.version"] == first and run.data.params["require"] == "point"
    assert run.data.metrics["first_champion.log_loss"] == b.metrics["log_loss"]
    assert run.data.metrics["gain_low.accuracy"] == result.intervals["accuracy"].low
    assert run.data.metrics["test_rows.class.1"] == result.class_counts.counts[1]
    page = Path(mlflow_client.download_artifacts(run.info.run_id, "evaluation/report.html", str(tmp_path))).read_text()
    assert f"baseline guard against the first champion, version {first}" in page

    # a challenger as good as the first champion (trained on its rows: the same model) passes against it
    good = register(mlflow_client, config, stream[stream["event_date"] <= "2026-01-10"], tag="good")
    passing = gate(mlflow_client, config, test, good, weak)
    lines = baseline_lines(passing.verdict)
    assert len(lines) == 2 and all(r.startswith("PASS: ") and "no regression within its 95% CI" in r for r in lines), (
        lines
    )
    assert str(registry.get_alias_version(mlflow_client, name, "champion").version) == weak  # untouched


def test_an_unverifiable_baseline_guard_rejects_and_says_why(mlflow_client, churn_config):
    config = with_evaluation(churn_config, baseline_guard=True, min_test_rows=400)
    name = config.model_name
    stream = days("2026-01-01", 13)
    early = stream[stream["event_date"] <= "2026-01-10"]
    later = stream[stream["event_date"] >= "2026-01-04"]
    test = rows.split_roles(later, config).test
    first = register(mlflow_client, config, early, tag="first")
    # a champion set outside airflow-mlops: the ledger records no promotion, the first champion is unknown
    registry.set_alias(mlflow_client, name, "champion", first)
    second = register(mlflow_client, config, later, tag="second")
    unknown = gate(mlflow_client, config, test, second, first)
    assert unknown.verdict.decision == REJECT
    assert any(
        r.startswith("FAIL: baseline guard: unverified: the registry ledger of")
        and "records no move of the champion alias" in r
        for r in unknown.verdict.reasons
    )

    # promoted through the ledger, but the first champion's rows record is gone
    registry.promote(mlflow_client, name, second, expected_champion=first, actor=ACTOR, reason="unit")
    run_id = mlflow_client.get_model_version(name, first).run_id
    (Path(urlparse(mlflow_client.get_run(run_id).info.artifact_uri).path) / "training_rows.parquet").unlink()
    third = register(mlflow_client, config, later, tag="third")
    lost = gate(mlflow_client, config, test, third, second)
    assert lost.verdict.decision == REJECT and lost.baseline.why is not None
    [why] = [r for r in failing(lost.verdict) if "baseline guard" in r]
    assert why.startswith(
        f"FAIL: baseline guard: unverified: the first champion models:/{name}/{first}: its training "
        f"run {run_id} has no training_rows.parquet"
    )
    assert str(registry.get_alias_version(mlflow_client, name, "champion").version) == second  # untouched
