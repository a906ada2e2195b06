"""How often the per-slice guard rail (``evaluation.slices``) blocks rightly, replayed through ``core.evaluation.judge``.

    .venv/bin/python benchmarks/slice_quality.py [--reps 200] [--bootstrap 1000] [--jobs 1]
        [--scenarios null_20 regression_1000 regression_1000_tol0 regression_1600 self] [--save slices.jsonl] [--first 0]
    .venv/bin/python benchmarks/slice_quality.py --table slices.jsonl      # the table of saved rows

Each replication (seed = 20,000 + replication) draws the churn stream (include/churn_stream.py), fits real
scikit-learn logistic regressions (``core.training.fit_candidate``, churn.yaml's candidate), takes the gate's
test rows with ``core.rows.gate_rows`` and judges with ``core.evaluation.judge`` (the gate's code path: its
scoring, its bootstrap, its panels, ``evaluation.bootstrap_samples`` resamples). The other panels are off
(robustness, importance): only the slices are measured. Truth is measured, not assumed: both models score 40,000
fresh rows (10 later days of 4,000) that neither saw, sliced by the same definitions (``slices.define_slices`` on the
test rows, applied to the fresh rows), and the fresh gain of each slice is the truth.

Scenarios, each on its own row:

- null_20: 20 slices (region, payment_method, and 4 quantile bins of tenure_months, monthly_charges and
  data_usage_gb) and no true difference: champion and challenger are the same model family fitted on two
  disjoint weeks of a stationary stream (2,800 rows each); 4,000 test rows. A false block is a block naming a
  slice whose fresh gain is >= -slice_tolerance (the slice did not truly regress). Goal: <= 5%.
- regression_1000: the stream's drift begins after the champion's 28 days; the challenger is fitted on 14 days
  after it (it wins overall), and its scores in region south are blurred: ``SliceDegraded`` wraps the real fitted
  model and adds deterministic logistic noise (scale 0.76, a hash of the row's features) to the log-odds of that
  region's rows only, which costs about 0.05 of ROC AUC there (measured on the fresh rows of every replication).
  Slices: region and contract (churn's); 4,000 test rows, so region south holds about 1,000. Power: the share of
  replications whose slices block naming region=south, among those whose fresh overall gain is positive.
  Goal: >= 80%.
- regression_1000_tol0: the same models and rows judged with ``slice_tolerance: 0`` (how much of the power the
  default tolerance of 0.01 costs).
- regression_1600: the same models judged on 16 test days (6,400 rows, region south ~1,600): the slice size at
  which the default settings reach the goal (a paired ROC AUC gain on 1,000 such rows has a standard error of about
  0.015, so 80% power after Holm over 7 slices needs (0.05 - 0.01) / se >= 2.45 + 0.84).
- self: the null_20 challenger compared with itself (20 slices). Goal: 0 blocks.

The table prints one row per scenario; ``--save`` appends each replication's row as a JSON line as it goes.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # the benchmark's own processes (not a test importing SliceDegraded): one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT / "include"), str(ROOT / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

SCENARIOS = ("null_20", "regression_1000", "regression_1000_tol0", "regression_1600", "self")
REGRESSIONS = {  # scenario -> (test days, slice_tolerance)
    "regression_1000": (10, 0.01),
    "regression_1000_tol0": (10, 0.0),
    "regression_1600": (16, 0.01),
}
GOALS = {"null_20": "false blocks <= 5%", "self": "0 blocks", **dict.fromkeys(REGRESSIONS, "power >= 80%")}
START = dt.date(2026, 1, 1)
ROWS_PER_DAY = 400
TEST_DAYS = 10  # 4,000 test rows: region south ~1,000
FRESH_DAYS = 10  # of 4,000 rows each: 40,000 fresh rows measure the truth
FRESH_ROWS_PER_DAY = 4000
NOISE = 0.76  # SliceDegraded's scale: -0.05 ROC AUC in region south on average (fresh rows)
NULL_SLICES = {
    "columns": ["region", "payment_method", "tenure_months", "monthly_charges", "data_usage_gb"],
    "bins": 4,
}
REGION_SLICES = {"columns": ["region", "contract"]}


class SliceDegraded(ClassifierMixin, BaseEstimator):
    """A real fitted binary classifier whose scores on one slice (``column == value``) are blurred on purpose.

    The rows of the slice get deterministic logistic noise of scale `noise` added to their log-odds (drawn from a
    hash of the row's feature values, so the same row always scores the same); every other row is scored exactly
    as by `model`. ``fit`` refits `model`: a scikit-learn compatible estimator, not a mock.
    """

    def __init__(self, model: Any = None, column: str = "region", value: Any = "south", noise: float = NOISE):
        self.model = model
        self.column = column
        self.value = value
        self.noise = noise

    @property
    def classes_(self) -> np.ndarray:
        return self.model.classes_

    def fit(self, X: pd.DataFrame, y: Any) -> SliceDegraded:  # noqa: N803 (scikit-learn's name)
        self.model.fit(X, y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        proba = np.asarray(self.model.predict_proba(X), dtype=float)
        inside = (X[self.column] == self.value).to_numpy()
        hashed = pd.util.hash_pandas_object(X, index=False, hash_key="slice-degraded-1").to_numpy()
        u = ((hashed >> np.uint64(11)).astype(float) + 0.5) / 2.0**53
        p = np.clip(proba[:, 1], 1e-12, 1 - 1e-12)
        logit = np.log(p / (1 - p)) + self.noise * np.log(u / (1 - u)) * inside
        positive = 1.0 / (1.0 + np.exp(-logit))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


# --------------------------------------------------------------------------- data and models


def benchmark_config(slices: dict, bootstrap: int):
    """churn.yaml with its logistic regression only, `slices`, the other panels off."""
    from airflow_mlops.core.config import load_config, parse_config

    base = load_config(ROOT / "include" / "pipelines" / "churn.yaml")
    raw = copy.deepcopy(dict(base.raw))
    raw["model"]["candidates"] = [c for c in raw["model"]["candidates"] if c["name"] == "logistic_regression"]
    raw["evaluation"].update(
        bootstrap_samples=bootstrap,
        slices=dict(slices),
        robustness={"enabled": False},
        explain={"importance": False},
    )
    return parse_config(raw, file=base.path, check_estimators=False)


def days(seed: int, first: int, n: int, drift_from: dt.date | None = None, rows: int = ROWS_PER_DAY) -> pd.DataFrame:
    from churn_stream import daily_batch

    return pd.concat(
        [
            daily_batch(START + dt.timedelta(days=first + i), rows=rows, seed=seed, drift_from=drift_from)
            for i in range(n)
        ],
        ignore_index=True,
    )


def fit(config, train: pd.DataFrame, name: str):
    from airflow_mlops.core import training
    from airflow_mlops.core.evaluation.models import Loaded

    model, _ = training.fit_candidate(train, config, "logistic_regression")
    return Loaded(uri=f"models:/slice_quality/{name}", model=model, signature=None)


def judge(config, test: pd.DataFrame, challenger, champion):
    from airflow_mlops.core import evaluation, rows

    return evaluation.judge(
        config, rows.gate_rows(test, config, champion=None, has_champion=False), challenger, champion
    )


def fresh_gains(config, test: pd.DataFrame, fresh: pd.DataFrame, challenger, champion) -> dict[str, float]:
    """Each slice's fresh ROC AUC gain (the truth), slices defined on the test rows; "" = every fresh row."""
    from sklearn.metrics import roc_auc_score

    from airflow_mlops.core.evaluation.slicing import define_slices

    x, y = fresh[config.feature_names], fresh[config.target].to_numpy()
    ch, cp = challenger.model.predict_proba(x)[:, 1], champion.model.predict_proba(x)[:, 1]
    out = {"": float(roc_auc_score(y, ch) - roc_auc_score(y, cp))}
    for piece in define_slices(test, config):
        rows = piece.mask(fresh)
        if rows.sum() > 1 and len(set(y[rows].tolist())) == 2:
            out[piece.label] = float(roc_auc_score(y[rows], ch[rows]) - roc_auc_score(y[rows], cp[rows]))
    return out


def outcome(scenario: str, rep: int, result, truth: dict[str, float], tolerance: float, seconds: float) -> dict:
    [panel] = [p for p in result.panels if p.name == "slices"]
    blocked = [r["slice"] for r in panel.table if r["status"] == "regresses"]
    wrong = [s for s in blocked if truth.get(s, math.nan) >= -tolerance]
    return {
        "scenario": scenario,
        "rep": rep,
        "blocked": bool(panel.blocked),
        "named": blocked,
        "false_block": bool(wrong),
        "judged": int(panel.metrics.get("judged", 0)),
        "insufficient": int(panel.metrics.get("insufficient", 0)),
        "worst_gain": panel.metrics.get("worst_gain", math.nan),
        "fresh_overall": truth[""],
        "fresh_south": truth.get("region=south", math.nan),
        "fresh_worst": min(v for k, v in truth.items() if k) if len(truth) > 1 else math.nan,
        "gate_gain": result.bootstrap.diff if result.bootstrap is not None else math.nan,
        "decision": result.verdict.decision,
        "seconds": round(seconds, 2),  # the judge call
    }


def replicate(task: tuple[int, tuple[str, ...], int]) -> list[dict]:
    """One seed: each scenario asked for, judged by the gate, its truth measured on fresh rows."""
    rep, scenarios, bootstrap = task
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    seed = 20_000 + rep
    out = []
    if {"null_20", "self"} & set(scenarios):
        config = benchmark_config(NULL_SLICES, bootstrap)
        tolerance = config.evaluation.slices.slice_tolerance
        champion = fit(config, days(seed, 0, 7), "champion")
        challenger = fit(config, days(seed, 7, 7), "challenger")
        test = days(seed, 14, TEST_DAYS)
        fresh = days(seed, 14 + TEST_DAYS, FRESH_DAYS, rows=FRESH_ROWS_PER_DAY)
        if "null_20" in scenarios:
            started = time.perf_counter()
            result = judge(config, test, challenger, champion)
            seconds = time.perf_counter() - started
            truth = fresh_gains(config, test, fresh, challenger, champion)
            out.append(outcome("null_20", rep, result, truth, tolerance, seconds))
        if "self" in scenarios:
            started = time.perf_counter()
            result = judge(config, test, challenger, challenger)
            truth = {"": 0.0}  # the same model: every slice's true gain is 0
            out.append(outcome("self", rep, result, truth, tolerance, time.perf_counter() - started))
    wanted = [s for s in REGRESSIONS if s in scenarios]
    if wanted:
        drift = START + dt.timedelta(days=28)
        config = benchmark_config(REGION_SLICES, bootstrap)
        champion = fit(config, days(seed, 0, 28), "champion")
        base = fit(config, days(seed, 28, 14, drift), "challenger")
        challenger = type(base)(uri=base.uri, model=SliceDegraded(base.model, "region", "south", NOISE), signature=None)
        longest = max(REGRESSIONS[s][0] for s in wanted)
        test_days = days(seed, 42, longest, drift)
        fresh = days(seed, 42 + longest, FRESH_DAYS, drift, rows=FRESH_ROWS_PER_DAY)
        truth: dict[str, float] = {}
        for scenario in wanted:
            n_days, tolerance = REGRESSIONS[scenario]
            config = benchmark_config({**REGION_SLICES, "slice_tolerance": tolerance}, bootstrap)
            test = test_days.iloc[: n_days * ROWS_PER_DAY].reset_index(drop=True)
            started = time.perf_counter()
            result = judge(config, test, challenger, champion)
            seconds = time.perf_counter() - started
            truth = truth or fresh_gains(config, test, fresh, challenger, champion)
            out.append(outcome(scenario, rep, result, truth, tolerance, seconds))
    return out


# --------------------------------------------------------------------------- the table


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for scenario in SCENARIOS:
        mine = [r for r in rows if r["scenario"] == scenario]
        if not mine:
            continue
        seconds = float(np.mean([r["seconds"] for r in mine]))
        if scenario == "null_20":
            hits, n = sum(r["false_block"] for r in mine), len(mine)
            figure, met = hits / n, hits / n <= 0.05
            extra = f"blocked {sum(r['blocked'] for r in mine)}/{n}; fresh worst slice gain mean {np.mean([r['fresh_worst'] for r in mine]):+.4f}"
        elif scenario in REGRESSIONS:
            eligible = [r for r in mine if r["fresh_overall"] > 0]
            hits, n = sum(r["blocked"] and "region=south" in r["named"] for r in eligible), len(eligible)
            figure, met = (hits / n if n else math.nan), bool(n) and hits / n >= 0.8
            south = [r["fresh_south"] for r in mine]
            extra = (
                f"fresh south gain mean {np.mean(south):+.4f} (range {min(south):+.3f}..{max(south):+.3f}); "
                f"fresh overall gain mean {np.mean([r['fresh_overall'] for r in mine]):+.4f}; "
                f"{len(mine) - n} reps with overall gain <= 0 left out"
            )
        else:
            hits, n = sum(r["blocked"] for r in mine), len(mine)
            figure, met = hits / max(n, 1), hits == 0
            extra = ""
        judged = float(np.mean([r["judged"] for r in mine]))
        out.append(
            {
                "scenario": scenario,
                "goal": GOALS[scenario],
                "count": f"{hits}/{n}",
                "rate": figure,
                "met": met,
                "judged": judged,
                "s_per_rep": seconds,
                "note": extra,
            }
        )
    return out


def print_table(summary: list[dict]) -> None:
    print(f"{'scenario':<21} {'goal':<20} {'count':>9} {'rate':>7} {'met':>4} {'judged':>6} {'s/judge':>7}  note")
    for s in summary:
        print(
            f"{s['scenario']:<21} {s['goal']:<20} {s['count']:>9} {s['rate']:>7.1%} {'yes' if s['met'] else 'NO':>4} "
            f"{s['judged']:>6.1f} {s['s_per_rep']:>7.2f}  {s['note']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--first", type=int, default=0, help="first replication number (seed 20,000 + it)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--save", type=Path, help="append each replication's rows here (JSON lines)")
    parser.add_argument("--table", type=Path, help="only print the table of the rows saved in this file")
    args = parser.parse_args(argv)
    if args.table:
        saved = [json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]
        print(f"{len({r['rep'] for r in saved})} replications saved in {args.table}")
        summary = summarise(saved)
        print_table(summary)
        return 0 if all(s["met"] for s in summary) else 1
    tasks = [(rep, tuple(args.scenarios), args.bootstrap) for rep in range(args.first, args.first + args.reps)]
    rows: list[dict] = []
    started = time.perf_counter()

    def keep(found: list[dict]) -> None:
        rows.extend(found)
        if args.save:
            with args.save.open("a") as fh:
                for row in found:
                    fh.write(json.dumps(row) + "\n")
        print(" ".join(f"{r['scenario']}#{r['rep']}:{'BLOCK' if r['blocked'] else 'pass'}" for r in found), flush=True)

    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            for found in pool.map(replicate, tasks):
                keep(found)
    else:
        for task in tasks:
            keep(replicate(task))
    wall = time.perf_counter() - started
    print(f"\n{args.reps} replications in {wall:.0f} s ({wall / max(args.reps, 1):.1f} s per replication)")
    summary = summarise(rows)
    print_table(summary)
    return 0 if all(s["met"] for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
