"""What the importance panel (core.evaluation.importance) costs: 10,000 rows x 50 features, and the churn gate.

    .venv/bin/python benchmarks/importance_cost.py [--rows 10000] [--features 50] [--repeats 5] [--rounds 1]
                                                  [--families logistic_regression,random_forest,...] [--skip-churn]

Goal (issue 24, item 7): scikit-learn's permutation importance within 60 s for 10,000 rows x 50 features on
2 cores.

(a) 10,000 rows x 50 features. A synthetic binary pipeline (40 numeric features, 10 categorical of 5 levels; the
    label depends on 12 of them) with churn.yaml's three candidate families and parameters (logistic regression,
    random forest of 200 trees of depth 8, histogram gradient boosting of 200 iterations), each fitted on 10,000
    training rows by the project's own training code (`training.fit_candidate`: the real Pipeline, with its
    imputers, scaler and one-hot encoder). On 10,000 other rows, timed:
    - one model's permutation importance (`importance.measure`: the panel's scorer, ROC AUC, `--repeats`
      shuffles of each of the 50 columns = 251 predict_proba calls) with n_jobs=1 and n_jobs=2 worker processes,
      one native thread each (importance.THREADS); for gradient boosting also with OpenMP's default threads;
    - the panel (`importance.run`: both models, champion and challenger of the family, the comparison) as it
      runs in the gate (importance.N_JOBS, importance.THREADS), on all `--rows` rows and on the default
      explain.sample_rows sample of them;
    - with --gate-scoring: one model scored as the gate scores (`models.score`: predict and predict_proba) instead
      of the panel's scorer (probabilities only), to show what asking only for what the metric needs saves.
    Wall and CPU seconds (this process, its threads and joblib's workers), each / 60 (<= 1.0 meets the goal).
    On a busy machine the wall time is mostly waiting; CPU seconds are what the work takes a core.
(b) Churn-sized (7 features): the demo's data (400 rows a day, churn.yaml's 3 test days: 1,200 test rows) and
    a 5-day test window (2,000 rows: the default explain.sample_rows), a hist_gradient_boosting champion and a
    random_forest challenger: `evaluation.judge` with only the importance panel on against every panel off; the
    difference is what the panel adds to the gate (the MLflow logging of the task is not in either; for the whole
    task see benchmarks/evaluation_cost.py).

Timings are wall-clock on whatever else the machine runs; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]

GOAL_SECONDS = 60.0
FAMILIES = ("logistic_regression", "random_forest", "hist_gradient_boosting")
CATEGORICAL = 10
LEVELS = ("a", "b", "c", "d", "e")


def base_raw() -> dict:
    import yaml

    raw = yaml.safe_load((ROOT / "include" / "pipelines" / "churn.yaml").read_text())
    raw.pop("alerts", None)
    raw["validation"]["suite"] = str(ROOT / "include" / "expectations" / "churn.json")
    # the other panels off: only importance is timed
    raw["evaluation"].update(slices={}, fairness={}, robustness={"enabled": False})
    return raw


def wide_config(features: int, rows: int, repeats: int):
    """churn.yaml's candidates and gate over `features` synthetic features (the last CATEGORICAL categorical)."""
    from airflow_mlops.core.config import parse_config

    raw = base_raw()
    raw["pipeline"] = "importance_cost"
    raw["model"]["name"] = "importance_cost"
    numeric = features - CATEGORICAL
    raw["features"] = [{"name": f"x{i:02d}", "type": "numeric"} for i in range(numeric)] + [
        {"name": f"c{i:02d}", "type": "categorical"} for i in range(CATEGORICAL)
    ]
    raw["source"]["id_columns"] = ["row_id"]
    raw["evaluation"]["explain"] = {"sample_rows": rows, "repeats": repeats}
    return parse_config(raw, file=str(ROOT / "include" / "pipelines" / "importance_cost.yaml"), check_estimators=False)


def wide_rows(config, n: int, seed: int):
    """`n` rows: the label's log-odds depend on x00..x08 (a threshold, an interaction) and c00..c02."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    numeric = [f.name for f in config.features if f.type == "numeric"]
    categorical = [f.name for f in config.features if f.type == "categorical"]
    x = rng.normal(size=(n, len(numeric)))
    frame = pd.DataFrame(x, columns=numeric)
    for name in categorical:
        frame[name] = rng.choice(LEVELS, size=n)
    weights = np.array([1.2, -1.0, 0.8, 0.6, -0.5, 0.4, 0.3, 0.2, 0.1])
    logit = x[:, : len(weights)] @ weights + 0.8 * (x[:, 0] > 0.5) + 0.5 * x[:, 1] * x[:, 2]
    logit += 0.9 * (frame["c00"] == "a") - 0.7 * (frame["c01"] == "b") + 0.4 * (frame["c02"] == "c")
    frame[config.target] = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    frame["row_id"] = [f"r{seed}-{i}" for i in range(n)]
    return frame


def loaded(model, name: str):
    from airflow_mlops.core.evaluation.models import Loaded

    return Loaded(uri=f"models:/bench/{name}", model=model, signature=None)


def panel_inputs(config, frame, challenger, champion):
    from airflow_mlops.core.evaluation.models import score
    from airflow_mlops.core.evaluation.panels import PanelInputs

    y = frame[config.target].to_numpy()
    ch, _, labels = score(challenger, frame, config, role="challenger")
    cp = None if champion is None else score(champion, frame, config, role="champion")[0]
    return PanelInputs(config, frame, y, labels, 1, challenger, champion, ch, cp)


def gate_scorer(config, model_loaded):
    """The primary metric as the gate computes it (`models.score`: predict and predict_proba), for comparison."""
    from airflow_mlops.core.evaluation.models import Loaded, score
    from airflow_mlops.core.training import compute_metrics

    def scorer(model, x, y):
        scores, pred, labels = score(Loaded(model_loaded.uri, model, None), x, config, role="challenger")
        return compute_metrics(config.task, y, pred, scores, ["roc_auc"], labels=labels, positive=1)["roc_auc"]

    return scorer


def cpu_seconds() -> float:
    """CPU seconds of this process, its threads and its children (joblib's worker processes, alive or reaped)."""
    import psutil

    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in me.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += child_times.user + child_times.system
    return total


def timed(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds), medians over `rounds`."""
    wall, cpu = [], []
    for _ in range(rounds):
        started, cpu_started = time.perf_counter(), cpu_seconds()
        fn()
        wall.append(time.perf_counter() - started)
        cpu.append(cpu_seconds() - cpu_started)
    return statistics.median(wall), statistics.median(cpu)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} cores"


def family_cases(family: str, config, train, test, args) -> list[tuple[str, Callable[[], object]]]:
    """The timed cases of one candidate family: its challenger (and, for the panel, a champion) fitted first."""
    from sklearn.inspection import permutation_importance

    from airflow_mlops.core import training
    from airflow_mlops.core.config import ExplainConfig
    from airflow_mlops.core.evaluation import importance

    challenger = loaded(training.fit_candidate(train, config, family)[0], f"{family}-challenger")
    champion = loaded(training.fit_candidate(wide_rows(config, args.rows, 3), config, family)[0], family)
    y = test[config.target].to_numpy()

    def one_model(jobs: int, threads: int | None = importance.THREADS) -> Callable[[], object]:
        return lambda: importance.measure(
            challenger, test, y, config, 1, role="challenger", n_jobs=jobs, threads=threads
        )

    def panel() -> object:
        return importance.run(panel_inputs(config, test, challenger, champion))

    def panel_at_defaults() -> object:
        defaults = config.evaluation.explain._replace(sample_rows=ExplainConfig().sample_rows)
        at_defaults = config._replace(evaluation=config.evaluation._replace(explain=defaults))
        return importance.run(panel_inputs(at_defaults, test, challenger, champion))

    def gate_scoring() -> object:
        x = test[config.feature_names]
        scorer = gate_scorer(config, challenger)
        return permutation_importance(
            challenger.model, x, y, scoring=scorer, n_repeats=args.repeats, random_state=config.seed, n_jobs=1
        )

    cases = [
        ("one model, n_jobs=1", one_model(1)),
        ("one model, n_jobs=2", one_model(2)),
        (f"panel, two models, all {len(test):,} rows", panel),
        (f"panel, two models, {ExplainConfig().sample_rows:,}-row sample", panel_at_defaults),
    ]
    if family == "hist_gradient_boosting":  # OpenMP: its own threads (the libraries' default: one per core)
        cases.insert(2, ("one model, n_jobs=1, OpenMP default", one_model(1, None)))
    if args.gate_scoring:
        cases.append(("one model, gate's scoring, n_jobs=1", gate_scoring))
    return cases


def wide(args) -> list[tuple[str, float]]:
    config = wide_config(args.features, args.rows, args.repeats)
    train, test = wide_rows(config, args.rows, 1), wide_rows(config, args.rows, 2)
    print(
        f"\n(a) {args.rows:,} rows x {args.features} features, {args.repeats} repeats, ROC AUC (goal {GOAL_SECONDS:g} s)"
    )
    print(f"{'family':<24} {'what':<38} {'wall s':>7} {'/ 60 s':>7} {'CPU s':>7} {'/ 60 s':>7}")
    results = []
    for family in args.families:
        for what, fn in family_cases(family, config, train, test, args):
            wall, cpu = timed(fn, args.rounds)
            results.append((f"{family}: {what}", wall))
            print(
                f"{family:<24} {what:<38} {wall:>7.1f} {wall / GOAL_SECONDS:>7.2f} {cpu:>7.1f} {cpu / GOAL_SECONDS:>7.2f}",
                flush=True,
            )
    return results


def churn(args) -> None:
    import churn_stream
    import pandas as pd

    from airflow_mlops.core import evaluation, rows, training
    from airflow_mlops.core.config import parse_config

    raw = base_raw()
    off = copy.deepcopy(raw)
    off["evaluation"]["explain"] = {"importance": False}
    path = str(ROOT / "include" / "pipelines" / "churn.yaml")
    on_config = parse_config(raw, file=path, check_estimators=False)
    off_config = parse_config(off, file=path, check_estimators=False)
    start = dt.date(2026, 2, 1)

    def days(first: int, n: int) -> pd.DataFrame:
        return pd.concat(
            [churn_stream.daily_batch(start + dt.timedelta(days=first + i), rows=400) for i in range(n)],
            ignore_index=True,
        )

    champion = loaded(training.fit_candidate(days(0, 22), on_config, "hist_gradient_boosting")[0], "champion")
    challenger = loaded(training.fit_candidate(days(3, 22), on_config, "random_forest")[0], "challenger")
    print("\n(b) churn (7 features), HGB champion vs random-forest challenger, importance at explain defaults")
    print(f"{'test rows':>10} {'gate without':>13} {'with importance':>16} {'panel adds':>11} {'ratio':>6}")
    for n_days in (3, 5):
        test = rows.gate_rows(days(25, n_days), on_config, champion=None, has_champion=False)
        without, without_cpu = timed(partial(evaluation.judge, off_config, test, challenger, champion), args.rounds)
        with_panel, with_cpu = timed(partial(evaluation.judge, on_config, test, challenger, champion), args.rounds)
        print(
            f"{n_days * 400:>10,} {without:>12.2f}s {with_panel:>15.2f}s {with_panel - without:>10.2f}s "
            f"{with_panel / without:>6.2f}   CPU {without_cpu:.2f}s -> {with_cpu:.2f}s",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1, help="timings per case (the median is printed)")
    parser.add_argument("--families", type=lambda s: s.split(","), default=list(FAMILIES))
    parser.add_argument("--skip-churn", action="store_true")
    parser.add_argument(
        "--gate-scoring", action="store_true", help="also time the gate's scoring (predict + predict_proba) per call"
    )
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    print(load())
    results = wide(args)
    if not args.skip_churn:
        churn(args)
    print(load())
    ones = [r for r in results if r[0].endswith("one model, n_jobs=1")]
    worst = max(ones, key=lambda r: r[1])
    print(
        f"\nslowest one model (n_jobs=1): {worst[0]} {worst[1]:.1f} s wall = {worst[1] / GOAL_SECONDS:.2f} x the goal"
    )


if __name__ == "__main__":
    main()
