"""How well the robustness panel tells a brittle model from a smooth one, and how often it blocks for nothing.

    .venv/bin/python benchmarks/robustness_quality.py [--reps 50] [--jobs 1] [--save results.json]
    .venv/bin/python benchmarks/robustness_quality.py --cost [--repeats 5]  # seconds the panel adds to judge

Each replication (seed = 10,000 + replication: the churn stream's seed and the pipeline's) trains churn.yaml's
logistic regression on 28 days of the churn stream (400 rows a day, include/churn_stream.py) and judges models
on the 5 days after (2,000 test rows, which none trained on) with the panel's own `run`, PanelInputs built as
`core.evaluation.gate.judge` builds them; the config is churn.yaml's with `monthly_charges` declared increasing.

- brittle: a real fitted logistic regression whose churn probability jumps at the median tenure (half its
  probability plus 0.45 below it, plus 0.05 above: a hard threshold at a common value), as the challenger
  against the smooth logistic regression. Goal: its flip rate above the smooth one's in every replication.
- self: the smooth model, and the brittle one, each compared with itself. Goal: blocked 0 times.
- null (reported, no goal): two smooth models trained on windows one day apart, the later one the challenger:
  how often the panel blocks a challenger no less robust or calibrated than the champion.

``--cost``: churn's three candidates (logistic_regression, random_forest, hist_gradient_boosting) trained on
the 28 days; `core.evaluation.judge` on ~2,000 and ~10,000 test rows (5 and 25 days) with the robustness panel
on and off (the other panels off), each candidate as the challenger against the logistic champion.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import importlib.util
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

START = dt.date(2026, 1, 1)
WINDOW = 28
TEST_DAYS = 5
ROWS_PER_DAY = 400
CANDIDATES = ("logistic_regression", "random_forest", "hist_gradient_boosting")


def _stream():
    spec = importlib.util.spec_from_file_location("churn_stream", ROOT / "include" / "churn_stream.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def days(first: dt.date, n: int, seed: int):
    import pandas as pd

    stream = _stream()
    return pd.concat(
        [stream.daily_batch(first + dt.timedelta(days=i), rows=ROWS_PER_DAY, seed=seed) for i in range(n)],
        ignore_index=True,
    )


def churn_config(seed: int, *, candidates=("logistic_regression",), evaluation: dict | None = None):
    """churn.yaml with `candidates`, monthly_charges declared increasing, `seed`, and `evaluation` keys."""
    from airflow_mlops.core.config import load_config, parse_config

    base = load_config(ROOT / "include" / "pipelines" / "churn.yaml")
    raw = copy.deepcopy(dict(base.raw))
    raw["model"]["candidates"] = [c for c in raw["model"]["candidates"] if c["name"] in candidates]
    raw["seed"] = seed
    for feature in raw["features"]:
        if feature["name"] == "monthly_charges":
            feature["monotonic"] = "increasing"
    raw["evaluation"].update(evaluation or {})
    return parse_config(raw, file=base.path, check_estimators=False)


def brittle_model(smooth, config, train):
    """The smooth fitted pipeline wrapped so that its probability jumps at the median tenure (scikit-learn API)."""
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin, clone

    class Brittle(ClassifierMixin, BaseEstimator):
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

    return Brittle(inner=smooth).fit(train[config.feature_names], train[config.target])


def panel_inputs(config, frame, challenger, champion):
    """PanelInputs as core.evaluation.gate.judge builds them."""
    from airflow_mlops.core import labels as class_labels
    from airflow_mlops.core.evaluation.models import align_classes, score
    from airflow_mlops.core.evaluation.panels import PanelInputs

    y = frame[config.target].to_numpy()
    ch_scores, _, labels = score(challenger, frame, config, role="challenger")
    positive, _ = class_labels.resolve(config, labels)
    cp_scores = None
    if champion is not None:
        cp_scores, _, cp_labels = score(champion, frame, config, role="champion")
        if labels is not None and cp_labels is not None:
            cp_scores = align_classes(cp_scores, cp_labels, labels, [])
    return PanelInputs(config, frame, y, labels, positive, challenger, champion, ch_scores, cp_scores)


def replicate(rep: int) -> dict:
    """One replication's figures (see the module docstring)."""
    from airflow_mlops.core import training
    from airflow_mlops.core.evaluation import robustness
    from airflow_mlops.core.evaluation.models import Loaded

    seed = 10_000 + rep
    config = churn_config(seed)
    train = days(START, WINDOW, seed)
    earlier = days(START - dt.timedelta(days=1), WINDOW, seed)
    test = days(START + dt.timedelta(days=WINDOW), TEST_DAYS, seed)
    smooth_model, _ = training.fit_candidate(train, config, "logistic_regression")
    earlier_model, _ = training.fit_candidate(earlier, config, "logistic_regression")
    smooth = Loaded("models:/churn/smooth", smooth_model, None)
    earlier_smooth = Loaded("models:/churn/earlier", earlier_model, None)
    brittle = Loaded("models:/churn/brittle", brittle_model(smooth_model, config, train), None)

    def judged(challenger, champion) -> dict:
        result = robustness.run(panel_inputs(config, test, challenger, champion))
        assert result is not None  # evaluation.robustness.enabled is true
        flip = next(row for row in result.table if row["check"] == "flip_rate")
        failed = [row["check"] for row in result.table if row["passed"] is False]
        return {"flip": flip["challenger"], "champion_flip": flip["champion"], "high": flip["high"], "failed": failed}

    started = time.perf_counter()
    out = {
        "rep": rep,
        "test_rows": len(test),
        "brittle": judged(brittle, smooth),
        "self_smooth": judged(smooth, smooth),
        "self_brittle": judged(brittle, brittle),
        "null": judged(smooth, earlier_smooth),
    }
    out["seconds_per_panel"] = (time.perf_counter() - started) / 4
    return out


def report(results: list[dict], seconds: float) -> None:
    n = len(results)

    def count(key: str, test) -> int:
        return sum(1 for r in results if test(r[key]))

    ranked = sum(1 for r in results if r["brittle"]["flip"] > r["brittle"]["champion_flip"])
    rows = [
        ("brittle ranks above smooth (higher flip rate)", "every replication", ranked, n),
        (
            "brittle challenger blocked (flip-rate guard rail)",
            "reported",
            count("brittle", lambda b: "flip_rate" in b["failed"]),
            n,
        ),
        ("smooth model vs itself: blocked", "0", count("self_smooth", lambda b: bool(b["failed"])), n),
        ("brittle model vs itself: blocked", "0", count("self_brittle", lambda b: bool(b["failed"])), n),
        ("null, two smooth models a day apart: blocked", "reported", count("null", lambda b: bool(b["failed"])), n),
    ]
    mean = lambda key, field: sum(r[key][field] for r in results) / n  # noqa: E731
    print(f"\nrobustness panel quality: {n} replications, {results[0]['test_rows']:,} test rows each, {seconds:.0f} s")
    print("\n| figure | goal | result | rate |")
    print("|---|---|---|---|")
    for name, goal, hits, total in rows:
        print(f"| {name} | {goal} | {hits}/{total} | {hits / total:.1%} |")
    print("\n| model | mean flip rate | mean upper bound of the increase vs the champion |")
    print("|---|---|---|")
    print(f"| smooth (logistic regression) | {mean('brittle', 'champion_flip'):.2%} | - |")
    print(f"| brittle (threshold at median tenure) | {mean('brittle', 'flip'):.2%} | {mean('brittle', 'high'):+.2%} |")
    print(f"| null challenger (a day later) | {mean('null', 'flip'):.2%} | {mean('null', 'high'):+.2%} |")
    null_checks: dict[str, int] = {}
    for r in results:
        for check in r["null"]["failed"]:
            null_checks[check] = null_checks.get(check, 0) + 1
    if null_checks:
        print(f"\nnull blocks by check: {', '.join(f'{k} {v}' for k, v in sorted(null_checks.items()))}")
    print(f"panel seconds per run (mean, under load): {sum(r['seconds_per_panel'] for r in results) / n:.2f}")
    ok = ranked == n and rows[2][2] == 0 and rows[3][2] == 0
    print(f"\nranked={ranked}/{n} self_blocked={rows[2][2] + rows[3][2]}/{2 * n} {'MET' if ok else 'NOT MET'}")


def cost(repeats: int) -> None:
    """Seconds `judge` takes with the robustness panel on and off (other panels off), churn's candidates."""
    import logging

    from airflow_mlops.core import evaluation, rows, training

    logging.getLogger("airflow_mlops").setLevel(logging.ERROR)  # unsigned in-memory models: a warning per judge
    from airflow_mlops.core.evaluation.models import Loaded

    seed = 10_000
    off = {"slices": {"columns": []}, "explain": {"importance": False}}
    on = churn_config(seed, candidates=CANDIDATES, evaluation=off)
    no = churn_config(seed, candidates=CANDIDATES, evaluation={**off, "robustness": {"enabled": False}})
    train = days(START, WINDOW, seed)
    models = {}
    for name in CANDIDATES:
        model, fit = training.fit_candidate(train, on, name)
        models[name] = Loaded(f"models:/churn/{name}", model, None)
        print(f"{name}: fit {fit:.1f} s on {len(train):,} rows")
    print("\nCPU seconds of one judge (the best of the repeats; wall seconds in brackets: the machine is shared)\n")
    print("| test rows | challenger | judge without the panel | with it | the panel adds | ratio |")
    print("|---|---|---|---|---|---|")
    for n_days in (TEST_DAYS, 25):
        test = days(START + dt.timedelta(days=WINDOW), n_days, seed)
        for name in CANDIDATES:
            cpu = {"without": float("inf"), "with": float("inf")}
            wall = dict(cpu)
            for _ in range(repeats):  # interleaved, the best of each
                for label, config in (("without", no), ("with", on)):
                    test_rows = rows.gate_rows(test, config, champion=None, has_champion=False)
                    started, started_cpu = time.perf_counter(), time.process_time()
                    evaluation.judge(config, test_rows, models[name], models["logistic_regression"])
                    cpu[label] = min(cpu[label], time.process_time() - started_cpu)
                    wall[label] = min(wall[label], time.perf_counter() - started)
            print(
                f"| {len(test):,} | {name} | {cpu['without']:.2f} ({wall['without']:.2f}) | {cpu['with']:.2f} "
                f"({wall['with']:.2f}) | {cpu['with'] - cpu['without']:.2f} ({wall['with'] - wall['without']:.2f}) | "
                f"{cpu['with'] / cpu['without']:.2f} |"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50, help="replications (default 50)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--save", type=Path, help="write every replication's figures to this JSON file")
    parser.add_argument("--cost", action="store_true", help="time the panel inside judge instead")
    parser.add_argument("--repeats", type=int, default=5, help="--cost: timings per case (the best is kept)")
    args = parser.parse_args(argv)
    if args.cost:
        cost(args.repeats)
        return 0
    started = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(replicate, range(args.reps)))
    else:
        results = [replicate(rep) for rep in range(args.reps)]
    if args.save:
        args.save.write_text(json.dumps(results, indent=1), encoding="utf-8")
    report(results, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
