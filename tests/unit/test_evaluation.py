"""core.evaluation: the champion/challenger gate (constructed numbers), the paired bootstrap, and
evaluate + log_evaluation on a real MLflow SQLite store with real trained models."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time

import numpy as np
import pytest

from airflow_mlops.core import evaluation, registry, training
from airflow_mlops.core.audit import audit_verdict
from airflow_mlops.core.config import EvaluationConfig, MetricsConfig, parse_config
from airflow_mlops.core.evaluation import (
    NO_BASELINE_PROMOTE,
    PROMOTE,
    REJECT,
    BootstrapResult,
    EvaluationError,
    decide,
    paired_bootstrap,
)

DIGEST = "sha256:" + "ef" * 32
CHAMPION = {"roc_auc": 0.82, "accuracy": 0.79, "f1": 0.58, "log_loss": 0.47}


def boot(diff, low, high, metric="roc_auc"):
    return BootstrapResult(diff, low, high, np.linspace(low, high, 101), metric=metric, confidence=0.95)


def rails(challenger, champion, spread=0.005, metrics=("accuracy", "log_loss")):
    """Guard-rail intervals around the point gains, `spread` either side (what the gate's bootstrap gives)."""
    out = {}
    for m in metrics:
        gain = champion[m] - challenger[m] if m in training.LOWER_IS_BETTER else challenger[m] - champion[m]
        out[m] = BootstrapResult(
            gain,
            gain - spread,
            gain + spread,
            np.linspace(gain - spread, gain + spread, 101),
            metric=m,
            confidence=0.95,
        )
    return out


def failing(verdict):
    return [r for r in verdict.reasons if r.startswith("FAIL")]


# --------------------------------------------------------------------------- decide: constructed numbers
# churn.yaml: margin 0.005, guard rails accuracy 0.02 / log_loss 0.03, floors roc_auc 0.65 / log_loss 0.70


def test_clearly_better_promotes_and_states_every_check(churn_config):
    challenger = {"roc_auc": 0.85, "accuracy": 0.80, "f1": 0.60, "log_loss": 0.45}
    v = decide(churn_config, challenger, CHAMPION, boot(0.03, 0.02, 0.04), intervals=rails(challenger, CHAMPION))
    assert v.decision == PROMOTE and v.promote
    assert not failing(v)
    text = "\n".join(v.reasons)
    assert "roc_auc improved by 0.0300 (95% CI 0.0200..0.0400" in text and ">= margin 0.005" in text
    assert "lies above zero" in text
    assert "accuracy improved by 0.0100" in text and "log_loss improved by 0.0200" in text
    assert "roc_auc 0.8500 >= floor 0.65" in text and "log_loss 0.4500 <= floor 0.7" in text
    assert "signature matches" in text and "no sign of target leakage" in text


def test_equal_rejects(churn_config):
    v = decide(churn_config, dict(CHAMPION), CHAMPION, boot(0.0, 0.0, 0.0), intervals=rails(dict(CHAMPION), CHAMPION))
    assert v.decision == REJECT and not v.promote
    assert any("roc_auc did not change" in r and "< margin" in r for r in failing(v))
    assert any("not significant" in r for r in failing(v))


def test_worse_rejects(churn_config):
    challenger = {**CHAMPION, "roc_auc": 0.80}
    v = decide(churn_config, challenger, CHAMPION, boot(-0.02, -0.03, -0.01), intervals=rails(challenger, CHAMPION))
    assert v.decision == REJECT
    assert any("roc_auc regressed by 0.0200" in r for r in failing(v))


def test_better_but_not_significant_rejects(churn_config):
    challenger = {**CHAMPION, "roc_auc": 0.83}
    v = decide(churn_config, challenger, CHAMPION, boot(0.01, -0.01, 0.03), intervals=rails(challenger, CHAMPION))
    assert v.decision == REJECT
    [fail] = failing(v)
    assert "95% CI -0.0100..0.0300" in fail and "not significant" in fail


def test_better_by_less_than_margin_rejects(churn_config):
    challenger = {**CHAMPION, "roc_auc": 0.823}
    v = decide(churn_config, challenger, CHAMPION, boot(0.003, 0.001, 0.005), intervals=rails(challenger, CHAMPION))
    assert v.decision == REJECT
    [fail] = failing(v)
    assert "roc_auc improved by 0.0030" in fail and "< margin 0.005" in fail


def test_guard_rail_regression_rejects_naming_the_metric(churn_config):
    challenger = {**CHAMPION, "roc_auc": 0.85, "accuracy": 0.759}
    v = decide(churn_config, challenger, CHAMPION, boot(0.03, 0.02, 0.04), intervals=rails(challenger, CHAMPION))
    assert v.decision == REJECT
    [fail] = failing(v)
    assert "accuracy regressed by 0.0310 (champion 0.7900 -> challenger 0.7590)" in fail
    assert "may be as large as 0.0360 (95% CI of the gain -0.0360..-0.0260) > guard rail tolerance 0.02" in fail


def test_floor_breach_rejects(churn_config):
    champion = {**CHAMPION, "log_loss": 0.76}
    challenger = {**CHAMPION, "roc_auc": 0.85, "log_loss": 0.75}
    v = decide(churn_config, challenger, champion, boot(0.03, 0.02, 0.04), intervals=rails(challenger, champion))
    assert v.decision == REJECT
    [fail] = failing(v)
    assert "log_loss 0.7500 > floor 0.7" in fail


def test_no_champion_floors_decide(churn_config):
    ok = decide(churn_config, {**CHAMPION}, None, None)
    assert ok.decision == NO_BASELINE_PROMOTE and ok.promote
    assert ok.reasons[0].startswith("no champion yet")
    bad = decide(churn_config, {**CHAMPION, "roc_auc": 0.6}, None, None)
    assert bad.decision == REJECT and not bad.promote
    assert any("roc_auc 0.6000 < floor 0.65" in r for r in failing(bad))


def test_signature_diff_and_leakage_reject(churn_config):
    challenger = {"roc_auc": 0.85, "accuracy": 0.80, "f1": 0.60, "log_loss": 0.45}
    v = decide(
        churn_config,
        challenger,
        CHAMPION,
        boot(0.03, 0.02, 0.04),
        intervals=rails(challenger, CHAMPION),
        signature_diff=["new column(s) 'x'"],
    )
    assert v.decision == REJECT and "'x'" in failing(v)[0]
    perfect = {**challenger, "roc_auc": 0.9995}
    v = decide(churn_config, perfect, None, None, leakage=["'leak' (univariate AUC 1.000)"])
    assert v.decision == REJECT
    assert any("leakage threshold 0.999" in r and "'leak'" in r for r in failing(v))


def custom(config, primary, others=(), **evaluation):
    return config._replace(
        metrics=MetricsConfig(primary=primary, others=tuple(others)), evaluation=EvaluationConfig(**evaluation)
    )


def test_lower_is_better_log_loss_primary(churn_config):
    config = custom(churn_config, "log_loss", ["roc_auc"], margin=0.01, floors={"log_loss": 0.6})
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    good = np.clip(np.where(y == 1, 0.75, 0.25) + rng.normal(0, 0.1, len(y)), 0.01, 0.99)
    weak = np.clip(np.where(y == 1, 0.6, 0.4) + rng.normal(0, 0.1, len(y)), 0.01, 0.99)
    metrics = {
        name: training.compute_metrics(
            "binary_classification",
            y,
            (p > 0.5).astype(int),
            np.column_stack([1 - p, p]),
            ["log_loss", "roc_auc"],
            labels=[0, 1],
        )
        for name, p in (("good", good), ("weak", weak))
    }
    b = paired_bootstrap(
        y, good, weak, "log_loss", task="binary_classification", labels=[0, 1], n=300, seed=1, confidence=0.95
    )
    assert b.diff == pytest.approx(metrics["weak"]["log_loss"] - metrics["good"]["log_loss"])  # positive = better
    assert b.diff > 0 and b.low > 0
    assert decide(config, metrics["good"], metrics["weak"], b).decision == PROMOTE
    reverse = paired_bootstrap(
        y, weak, good, "log_loss", task="binary_classification", labels=[0, 1], n=300, seed=1, confidence=0.95
    )
    assert reverse.high < 0
    v = decide(config, metrics["weak"], metrics["good"], reverse)
    assert v.decision == REJECT and any("log_loss regressed by" in r for r in failing(v))


def test_lower_is_better_rmse_regression(churn_config):
    config = custom(churn_config, "rmse", ["r2"], margin=0.05, guard_rails={"r2": 0.01})._replace(task="regression")
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 3000)
    close, loose = y + rng.normal(0, 1.0, len(y)), y + rng.normal(0, 1.5, len(y))
    m = {k: training.compute_metrics("regression", y, p, None, ["rmse", "r2"]) for k, p in (("c", close), ("l", loose))}
    kw = dict(task="regression", labels=None, n=300, seed=2, confidence=0.95)
    both = evaluation.bootstrap.paired_bootstraps(y, close, loose, ["rmse", "r2"], **kw)
    b = both["rmse"]
    assert b.diff == pytest.approx(m["l"]["rmse"] - m["c"]["rmse"]) and b.low > 0
    assert decide(config, m["c"], m["l"], b, intervals=both).decision == PROMOTE
    worse = evaluation.bootstrap.paired_bootstraps(y, loose, close, ["rmse", "r2"], **kw)
    assert decide(config, m["l"], m["c"], worse["rmse"], intervals=worse).decision == REJECT


# --------------------------------------------------------------------------- the paired bootstrap


def scores(rng, y, strength):
    p = np.clip(0.5 + strength * (y - 0.5) + rng.normal(0, 0.2, len(y)), 0.0, 1.0)
    return np.column_stack([1 - p, p])


@pytest.mark.parametrize(
    ("task", "metrics"),
    [
        ("binary_classification", ["roc_auc", "accuracy", "f1", "precision", "recall", "log_loss"]),
        ("multiclass_classification", ["roc_auc", "accuracy", "f1", "precision", "recall", "log_loss"]),
        ("regression", ["rmse", "mae", "r2"]),
    ],
)
def test_bootstrap_point_estimate_matches_compute_metrics(task, metrics):
    rng = np.random.default_rng(5)
    n = 1500
    if task == "regression":
        y = rng.normal(0, 1, n)
        a, b = y + rng.normal(0, 0.5, n), y + rng.normal(0, 0.7, n)
        labels, pa, pb = None, a, b
    else:
        labels = ["a", "b", "c"] if task.startswith("multi") else [0, 1]
        y = np.asarray(labels, dtype=object)[rng.integers(0, len(labels), n)]
        onehot = (y[:, None] == np.asarray(labels, dtype=object)[None, :]).astype(float)
        a = rng.dirichlet(np.ones(len(labels)), n) + 0.6 * onehot
        b = rng.dirichlet(np.ones(len(labels)), n) + 0.4 * onehot
        a, b = a / a.sum(1, keepdims=True), b / b.sum(1, keepdims=True)
        a[:50] = b[:50] = a[:50].round(1)  # ties between rows and between the models
        a, b = a / a.sum(1, keepdims=True), b / b.sum(1, keepdims=True)
        label_array = np.asarray(labels, dtype=object)
        pa, pb = label_array[a.argmax(1)], label_array[b.argmax(1)]
        if task == "binary_classification":
            y, pa, pb = y.astype(int), pa.astype(int), pb.astype(int)
    for metric in metrics:
        ref_a = training.compute_metrics(task, y, pa, None if labels is None else a, [metric], labels=labels)[metric]
        ref_b = training.compute_metrics(task, y, pb, None if labels is None else b, [metric], labels=labels)[metric]
        res = paired_bootstrap(y, a, b, metric, task=task, labels=labels, n=100, seed=0, confidence=0.9)
        sign = -1 if metric in training.LOWER_IS_BETTER else 1
        assert res.diff == pytest.approx(sign * (ref_a - ref_b), abs=1e-12), metric
        assert res.low <= res.high


def test_bootstrap_reproducible_by_seed_and_covers_the_true_difference():
    rng = np.random.default_rng(11)
    n = 5000
    y = rng.integers(0, 2, n)
    # challenger right 85% of the time, champion 80%, independently: the true accuracy gain is 0.05
    right_a, right_b = rng.random(n) < 0.85, rng.random(n) < 0.80
    pa = np.where(right_a, y, 1 - y) * 0.8 + 0.1
    pb = np.where(right_b, y, 1 - y) * 0.8 + 0.1
    kw = dict(task="binary_classification", labels=[0, 1], n=500, confidence=0.95)
    first = paired_bootstrap(y, pa, pb, "accuracy", seed=42, **kw)
    again = paired_bootstrap(y, pa, pb, "accuracy", seed=42, **kw)
    other = paired_bootstrap(y, pa, pb, "accuracy", seed=43, **kw)
    np.testing.assert_array_equal(first.samples, again.samples)
    assert (first.low, first.high) == (again.low, again.high)
    assert not np.array_equal(first.samples, other.samples)
    assert first.low < 0.05 < first.high
    assert first.low > 0  # and the gain is detectably positive
    assert 0.01 < first.high - first.low < 0.05  # about 4 standard errors of a difference of proportions


def test_bootstrap_200k_rows_is_fast():
    rng = np.random.default_rng(0)
    n = 200_000
    y = rng.integers(0, 2, n)
    a, b = scores(rng, y, 0.3), scores(rng, y, 0.28)
    started = time.process_time()  # CPU time: the test suite runs two workers on two cores
    res = paired_bootstrap(
        y, a, b, "roc_auc", task="binary_classification", labels=[0, 1], n=1000, seed=1, confidence=0.95
    )
    elapsed = time.process_time() - started
    assert len(res.samples) == 1000 and res.low < res.diff < res.high
    assert elapsed < 8.0, f"paired bootstrap took {elapsed:.1f} s of CPU"  # ~4 s on a 2-core runner (one BLAS thread)


def test_reasons_tag_fits():
    reasons = [f"FAIL: reason {i} " + "x" * 300 for i in range(40)]
    tag = evaluation.reasons_tag(reasons)
    assert len(tag) <= evaluation.REASONS_TAG_LIMIT
    kept = json.loads(tag)
    assert kept[0] == reasons[0] and "more reason(s)" in kept[-1]


# --------------------------------------------------------------------------- evaluate / log_evaluation, real MLflow


def config_from(churn_config, *, features=None, candidates=None, evaluation_overrides=None, name=None):
    raw = copy.deepcopy(churn_config.raw)
    if features is not None:
        raw["features"] = features
    if candidates is not None:
        raw["model"]["candidates"] = [c for c in raw["model"]["candidates"] if c["name"] in candidates]
    if evaluation_overrides:
        raw["evaluation"].update(evaluation_overrides)
    if name:
        raw["model"]["name"] = name
    return parse_config(raw, file=churn_config.path, check_estimators=False)


def train_and_register(client, df, config, candidate, *, alias="challenger", tag="a"):
    from airflow_mlops.core.rows import split_roles

    split = split_roles(df, config)
    result = training.train_candidate(
        split,
        config,
        candidate,
        client=client,
        experiment=config.name,
        data_digest=DIGEST,
        data_uri="file:///snapshots/churn.parquet",
        tags={},
    )
    tags = {"data.digest": DIGEST, "mlops.candidate": candidate, "airflow.run_id": tag}
    reg = registry.register_challenger(
        client, config.model_name, result["model_uri"], result["run_id"], tags=tags, alias=alias
    )
    return f"models:/{config.model_name}/{reg['version']}", reg["version"], split.test


@pytest.fixture
def fast_churn(churn_config):
    return config_from(churn_config, candidates={"logistic_regression", "random_forest"})


def test_evaluate_and_log_evaluation(mlflow_client, churn_frame, fast_churn, tmp_path):
    config = fast_churn
    champion_uri, champion_version, holdout = train_and_register(
        mlflow_client, churn_frame, config, "logistic_regression", alias="champion", tag="old"
    )
    challenger_uri, challenger_version, _ = train_and_register(
        mlflow_client, churn_frame, config, "random_forest", tag="new"
    )
    result = evaluation.evaluate(
        mlflow_client, config, holdout, challenger_uri=challenger_uri, champion_uri=champion_uri
    )
    assert result.verdict.decision in (PROMOTE, REJECT)
    assert result.signature_diff == [] and result.leakage == []
    assert set(result.challenger_metrics) == set(result.champion_metrics) >= {"roc_auc", "accuracy", "log_loss"}
    b = result.bootstrap
    assert b.metric == "roc_auc" and b.low <= b.diff <= b.high
    assert b.diff == pytest.approx(result.challenger_metrics["roc_auc"] - result.champion_metrics["roc_auc"])
    assert result.challenger_scores.shape == (len(holdout), 2)

    run_id = evaluation.log_evaluation(
        mlflow_client,
        result,
        experiment="churn-evaluation",
        run_name="evaluate",
        tags={"airflow.dag_id": "unit"},
        model_name=config.model_name,
        challenger_version=challenger_version,
        champion_version=champion_version,
    )
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED"
    m = run.data.metrics
    assert m["challenger.roc_auc"] == pytest.approx(result.challenger_metrics["roc_auc"])
    assert m["champion.roc_auc"] == pytest.approx(result.champion_metrics["roc_auc"])
    assert "diff.accuracy" in m and m["bootstrap.low"] == pytest.approx(b.low) and "bootstrap.high" in m
    assert run.data.tags["airflow.dag_id"] == "unit" and run.data.tags["decision"] == result.verdict.decision
    files = {a.path for a in mlflow_client.list_artifacts(run_id, "evaluation")}
    for name in (
        "roc.png",
        "bootstrap.png",
        "verdict.json",
        "metrics.json",
        "report.html",
        "metrics_table.json",
        "test_rows.parquet",
    ):
        assert f"evaluation/{name}" in files, files
    local = mlflow_client.download_artifacts(run_id, "evaluation", str(tmp_path))
    verdict = json.load(open(f"{local}/verdict.json"))
    assert verdict["decision"] == result.verdict.decision and verdict["reasons"] == result.verdict.reasons
    assert verdict["test_rows"]["test_rows"] == len(holdout) == result.n_rows
    assert verdict["test_rows"]["excluded_seen_by_champion"] == 0  # same split: the champion never saw these rows
    assert verdict["test_rows"]["first_day"] == "2026-01-08" and verdict["test_rows"]["last_day"] == "2026-01-10"
    assert result.verdict.reasons[0].startswith(f"judged on {len(holdout):,} test rows dated 2026-01-08..2026-01-10")
    assert run.data.params["test_rows.excluded"] == "0" and run.data.params["split.strategy"] == "time"
    page = open(f"{local}/report.html").read()
    assert result.verdict.decision in page and 'src="roc.png"' in page and 'src="bootstrap.png"' in page
    assert open(f"{local}/roc.png", "rb").read(4) == b"\x89PNG"

    mv = mlflow_client.get_model_version(config.model_name, challenger_version)
    assert mv.tags["decision"] == result.verdict.decision
    assert json.loads(mv.tags["decision.reasons"]) == result.verdict.reasons
    assert mv.tags["decision.at"].endswith("+00:00")
    assert mv.tags["evaluation.run_id"] == run_id
    assert mv.tags["evaluation.champion_version"] == str(champion_version)
    assert mv.tags["evaluation.test_rows"] == str(len(holdout)) and mv.tags["evaluation.excluded_rows"] == "0"
    # aliases untouched: evaluation never moves them
    assert str(registry.get_alias_version(mlflow_client, config.model_name, "champion").version) == champion_version


def test_first_model_no_baseline(mlflow_client, churn_frame, fast_churn):
    uri, version, holdout = train_and_register(mlflow_client, churn_frame, fast_churn, "logistic_regression")
    result = evaluation.evaluate(mlflow_client, fast_churn, holdout, challenger_uri=uri, champion_uri=None)
    assert result.verdict.decision == NO_BASELINE_PROMOTE and result.bootstrap is None
    evaluation.log_evaluation(
        mlflow_client,
        result,
        experiment="churn-evaluation",
        run_name="first",
        tags={},
        model_name=fast_churn.model_name,
        challenger_version=version,
        champion_version=None,
    )
    mv = mlflow_client.get_model_version(fast_churn.model_name, version)
    assert mv.tags["decision"] == NO_BASELINE_PROMOTE and mv.tags["evaluation.champion_version"] == "none"


def test_signature_change_rejects_naming_the_columns(mlflow_client, churn_frame, fast_churn, churn_config):
    df = churn_frame.assign(loyalty_points=np.arange(len(churn_frame)) % 50)
    champion_uri, _, holdout = train_and_register(
        mlflow_client, df, fast_churn, "logistic_regression", alias="champion", tag="old"
    )
    features = [f for f in churn_config.raw["features"] if f["name"] != "region"]
    features.append({"name": "loyalty_points", "type": "numeric"})
    changed = config_from(
        churn_config,
        features=features,
        candidates={"logistic_regression"},
        evaluation_overrides={"slices": {"columns": ["contract"]}},  # churn.yaml's region is gone
    )
    challenger_uri, _, _ = train_and_register(mlflow_client, df, changed, "logistic_regression", tag="new")
    result = evaluation.evaluate(
        mlflow_client, changed, holdout, challenger_uri=challenger_uri, champion_uri=champion_uri
    )
    assert result.verdict.decision == REJECT
    [fail] = [r for r in failing(result.verdict) if "signature" in r]
    assert "'loyalty_points'" in fail and "'region'" in fail


def test_one_class_test_rows_are_an_error_naming_the_target_and_what_to_change(mlflow_client, churn_frame, fast_churn):
    holdout = churn_frame[churn_frame["churned"] == 0]
    with pytest.raises(
        EvaluationError,
        match=r"pipeline 'churn', test rows 2026-01-01..2026-01-10: target column "
        r"'churned' has a single class .*split\.test_days",
    ):
        evaluation.evaluate(mlflow_client, fast_churn, holdout, challenger_uri="models:/x/1", champion_uri=None)


def test_perfect_score_rejects_naming_the_leaking_feature(mlflow_client, churn_frame, churn_config):
    df = churn_frame.assign(cancel_flag=churn_frame["churned"])
    features = [*churn_config.raw["features"], {"name": "cancel_flag", "type": "numeric"}]
    config = config_from(churn_config, features=features, candidates={"logistic_regression"}, name="leaky_model")
    uri, _, holdout = train_and_register(mlflow_client, df, config, "logistic_regression")
    result = evaluation.evaluate(mlflow_client, config, holdout, challenger_uri=uri, champion_uri=None)
    assert result.challenger_metrics["roc_auc"] >= 0.999
    assert result.verdict.decision == REJECT
    assert [s for s in result.leakage if "'cancel_flag'" in s] == result.leakage  # only the leak is named
    assert any("cancel_flag" in r and "leakage" in r for r in failing(result.verdict))


def test_deleted_version_is_a_clear_error(mlflow_client, churn_frame, fast_churn):
    name = fast_churn.model_name
    old_uri, old_version, holdout = train_and_register(
        mlflow_client, churn_frame, fast_churn, "logistic_regression", alias="champion", tag="old"
    )
    new_uri, new_version, _ = train_and_register(
        mlflow_client, churn_frame, fast_churn, "logistic_regression", tag="new"
    )
    mlflow_client.delete_model_version(name, old_version)
    with pytest.raises(EvaluationError, match=r"champion models:/.*/1: version 1 .* does not exist \(deleted\?\)"):
        evaluation.evaluate(mlflow_client, fast_churn, holdout, challenger_uri=new_uri, champion_uri=old_uri)
    with pytest.raises(EvaluationError, match="alias 'champion'.*nothing was evaluated or moved"):
        evaluation.evaluate(
            mlflow_client, fast_churn, holdout, challenger_uri=new_uri, champion_uri=f"models:/{name}@champion"
        )
    assert str(registry.get_alias_version(mlflow_client, name, "challenger").version) == new_version


# --------------------------------------------------------------------------- the gate's rows, through MLflow


def window(first: str, days: int, rows_per_day: int = 200):
    import pandas as pd
    from conftest import churn_stream

    start = dt.date.fromisoformat(first)
    return pd.concat(
        [churn_stream.daily_batch(start + dt.timedelta(days=i), rows=rows_per_day) for i in range(days)],
        ignore_index=True,
    )


def with_split(config, **split):
    raw = copy.deepcopy(config.raw)
    raw["split"] = split
    return parse_config(raw, file=config.path, check_estimators=False)


def test_rows_the_champion_saw_never_reach_the_gate_and_the_audit_confirms_it(mlflow_client, fast_churn):
    """A champion trained with a random split of days 1-12 under another seed, a challenger of days 2-13: most
    of the challenger's test rows were the champion's. They are excluded by hash, from MLflow."""
    from airflow_mlops.core import rows

    config = with_split(fast_churn, strategy="random", test_size=0.3, validation_size=0.2)
    stream = window("2026-01-01", 13)
    champion_config = config._replace(seed=config.seed + 1)
    champion_uri, champion_version, _ = train_and_register(
        mlflow_client,
        stream[stream["event_date"] <= "2026-01-12"],
        champion_config,
        "logistic_regression",
        alias="champion",
        tag="old",
    )
    challenger_rows = stream[stream["event_date"] >= "2026-01-02"]
    challenger_uri, challenger_version, test = train_and_register(
        mlflow_client, challenger_rows, config, "logistic_regression", tag="new"
    )
    lenient = config._replace(evaluation=config.evaluation._replace(min_test_rows=100))
    result = evaluation.evaluate(mlflow_client, lenient, test, challenger_uri=challenger_uri, champion_uri=champion_uri)
    seen = rows.split_roles(stream[stream["event_date"] <= "2026-01-12"], champion_config).seen
    seen_hashes = set(rows.row_hashes(seen).tolist())
    assert result.test_rows.excluded > len(test) / 2
    assert set(rows.row_hashes(result.test_rows.frame).tolist()).isdisjoint(seen_hashes)
    assert result.n_rows == len(test) - result.test_rows.excluded
    assert "by row hash" in result.verdict.reasons[0] and "training_rows.parquet of run" in result.verdict.reasons[0]

    evaluation.log_evaluation(
        mlflow_client,
        result,
        experiment="churn-evaluation",
        run_name="evaluate",
        tags={},
        model_name=config.model_name,
        challenger_version=challenger_version,
        champion_version=champion_version,
    )
    audit = audit_verdict(mlflow_client, config.model_name, challenger_version)
    assert audit["ok"] and audit["seen_by_champion"] == 0 and audit["seen_by_challenger"] == 0
    assert audit["scored"] == result.n_rows and audit["excluded"] == result.test_rows.excluded


def test_an_audit_finds_a_verdict_judged_on_the_champions_rows(mlflow_client, churn_frame, fast_churn):
    """What the audit is for: a verdict made the old way (scored on rows the champion saw) is caught."""
    from airflow_mlops.cli import main
    from airflow_mlops.core import rows

    champion_uri, champion_version, _ = train_and_register(
        mlflow_client, churn_frame, fast_churn, "logistic_regression", alias="champion", tag="old"
    )
    challenger_uri, challenger_version, test = train_and_register(
        mlflow_client, churn_frame, fast_churn, "logistic_regression", tag="new"
    )
    champion_train = rows.split_roles(churn_frame, fast_churn).train
    leaky = rows.gate_rows(champion_train, fast_churn, champion=None, has_champion=False)  # no exclusion at all
    challenger = evaluation.load(mlflow_client, challenger_uri, "challenger")
    champion = evaluation.load(mlflow_client, champion_uri, "champion")
    result = evaluation.judge(fast_churn, leaky, challenger, champion)
    evaluation.log_evaluation(
        mlflow_client,
        result,
        experiment="churn-evaluation",
        run_name="evaluate",
        tags={},
        model_name=fast_churn.model_name,
        challenger_version=challenger_version,
        champion_version=champion_version,
    )
    audit = audit_verdict(mlflow_client, fast_churn.model_name, challenger_version)
    assert not audit["ok"] and audit["seen_by_champion"] == len(champion_train) == audit["seen_by_challenger"]
    assert main(["audit", fast_churn.model_name, challenger_version]) == 4


def test_too_few_clean_test_rows_reject_without_scoring(mlflow_client, churn_frame, fast_churn):
    strict = fast_churn._replace(evaluation=fast_churn.evaluation._replace(min_test_rows=601))
    champion_uri, champion_version, _ = train_and_register(
        mlflow_client, churn_frame, strict, "logistic_regression", alias="champion", tag="old"
    )
    challenger_uri, challenger_version, test = train_and_register(
        mlflow_client, churn_frame, strict, "random_forest", tag="new"
    )
    result = evaluation.evaluate(mlflow_client, strict, test, challenger_uri=challenger_uri, champion_uri=champion_uri)
    assert result.verdict.decision == REJECT and not result.verdict.promote
    [fail] = failing(result.verdict)
    assert "only 600 clean test row(s)" in fail and "evaluation.min_test_rows (601)" in fail
    assert result.bootstrap is None and result.n_rows == 0
    run_id = evaluation.log_evaluation(
        mlflow_client,
        result,
        experiment="churn-evaluation",
        run_name="thin",
        tags={},
        model_name=strict.model_name,
        challenger_version=challenger_version,
        champion_version=champion_version,
    )
    files = {a.path for a in mlflow_client.list_artifacts(run_id, "evaluation")}
    assert "evaluation/verdict.json" in files and "evaluation/test_rows.parquet" in files
    assert mlflow_client.get_model_version(strict.model_name, challenger_version).tags["decision"] == REJECT
    # the first model is held to the same bar: no promotion on thin evidence
    first = evaluation.evaluate(mlflow_client, strict, test, challenger_uri=challenger_uri, champion_uri=None)
    assert first.verdict.decision == REJECT


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_champion_without_a_sound_record_falls_back_to_its_window_end(mlflow_client, fast_churn, damage):
    from pathlib import Path
    from urllib.parse import urlparse

    stream = window("2026-01-01", 12)
    champion_uri, _, _ = train_and_register(
        mlflow_client,
        stream[stream["event_date"] <= "2026-01-10"],
        fast_churn,
        "logistic_regression",
        alias="champion",
        tag="old",
    )
    challenger_uri, _, test = train_and_register(
        mlflow_client, stream[stream["event_date"] >= "2026-01-03"], fast_churn, "logistic_regression", tag="new"
    )
    run_id = mlflow_client.get_model_version(fast_churn.model_name, "1").run_id
    record = Path(urlparse(mlflow_client.get_run(run_id).info.artifact_uri).path) / "training_rows.parquet"
    if damage == "missing":
        record.unlink()
    else:
        record.write_bytes(b"not parquet at all")
    lenient = fast_churn._replace(evaluation=fast_churn.evaluation._replace(min_test_rows=100))
    result = evaluation.evaluate(
        mlflow_client,
        lenient,
        test,
        challenger_uri=challenger_uri,
        champion_uri=champion_uri,
        champion_window_end="2026-01-10",
    )
    # test days 01-10..01-12: the champion's window ended on 01-10, so that day is dropped
    assert result.test_rows.excluded == 200 and result.test_rows.span == ("2026-01-11", "2026-01-12")
    first = result.verdict.reasons[0]
    assert "by date" in first and "2026-01-10" in first
    assert ("has no training_rows.parquet" if damage == "missing" else "is corrupt") in first
    champion_alias = registry.get_alias_version(mlflow_client, fast_churn.model_name, "champion")
    assert str(champion_alias.version) == "1"  # untouched
