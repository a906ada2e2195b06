"""How often the champion/challenger gate decides right, on seeded scenarios with known truth.

    .venv/bin/python benchmarks/decision_quality.py [--reps 200] [--jobs 2] [--bootstrap 400]

Each replication draws its own churn stream (include/churn_stream.py, seed = replication),
trains a champion on one window and a challenger on a later one, runs the gate, and also scores
both models on a large fresh sample that neither saw (the truth the gate estimates):

- null: the challenger is the same recipe one day later, same distribution (truth: no gain);
- improvement: the champion was trained before the generating process changed (the stream's
  drift), the challenger on a window half after it (truth: a large gain on fresh data);
- harmful: as null, but 20% of the challenger's training labels are flipped (truth: no gain).

Config: include/pipelines/churn.yaml with one candidate (`--candidate`, by default
logistic_regression, the fast one) and `--bootstrap` resamples, to fit 2 cores. The last line reads
``false_promotion=<rate> power=<rate> harmful=<rate> bias=<value>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "include")]

SCENARIOS = ("null", "improvement", "harmful")
START = dt.date(2026, 1, 1)
WINDOW = 28  # days in a training window (churn.yaml source.window_days)
FRESH_DAYS = 25  # 10,000 fresh rows at 400 a day
FLIP_SHARE = 0.2


def load_config(bootstrap: int, candidate_name: str = "logistic_regression"):
    from airflow_mlops.core.config import load_config as load

    config = load(ROOT / "include" / "pipelines" / "churn.yaml")
    candidate = config.candidate(candidate_name)
    return dataclasses.replace(
        config,
        candidates=(candidate,),
        evaluation=dataclasses.replace(config.evaluation, bootstrap_samples=bootstrap),
    )


def stream(seed: int, first: dt.date, days: int, drift_from: dt.date | None):
    import pandas as pd
    from churn_stream import daily_batch

    return pd.concat(
        [daily_batch(first + dt.timedelta(days=i), seed=seed, drift_from=drift_from) for i in range(days)],
        ignore_index=True,
    )


def windows(scenario: str, seed: int):
    """(champion window, challenger window, fresh sample) for one replication."""
    champion_first = START
    if scenario == "improvement":
        drift_from = START + dt.timedelta(days=WINDOW)  # the day after the champion's window
        challenger_first = START + dt.timedelta(days=WINDOW // 2)  # half its window after the change
    else:
        drift_from = None
        challenger_first = START + dt.timedelta(days=1)
    every = stream(seed, START, (challenger_first - START).days + WINDOW + FRESH_DAYS, drift_from)
    day = every["event_date"]
    champion = every[(day >= champion_first.isoformat()) & (day < (champion_first + dt.timedelta(WINDOW)).isoformat())]
    challenger_last = challenger_first + dt.timedelta(WINDOW - 1)
    challenger = every[(day >= challenger_first.isoformat()) & (day <= challenger_last.isoformat())]
    fresh = every[day > challenger_last.isoformat()]
    return (champion.reset_index(drop=True), challenger.reset_index(drop=True), fresh.reset_index(drop=True))


def flip_labels(frame, config, seed: int):
    import numpy as np

    rng = np.random.default_rng([seed, 99])
    flipped = frame.copy()
    rows = rng.random(len(frame)) < FLIP_SHARE
    flipped.loc[rows, config.target] = 1 - flipped.loc[rows, config.target]
    return flipped


# --------------------------------------------------------------------------- the gate under test
# The code as it was before issue 10: a random 20% holdout of the challenger's window, which
# the champion's training window overlaps, is both where candidates are ranked and where the gate judges.


def fit(frame, config, *, flip_seed: int | None = None):
    """(fitted model, gate rows) through the project's own split and pipeline builder."""
    from airflow_mlops.core.data import split_frame
    from airflow_mlops.core.training import build_pipeline

    train, holdout = split_frame(frame, config)
    if flip_seed is not None:
        train = flip_labels(train, config, flip_seed)
    model = build_pipeline(config, config.candidates[0]).fit(train[config.feature_names], train[config.target])
    return model, holdout


def gate(config, challenger, champion, rows):
    """The project's scoring metrics, paired bootstrap and decide on the gate rows."""
    from airflow_mlops.core.evaluation import decide, paired_bootstrap

    y = rows[config.target].to_numpy()
    ch_metrics, ch_proba, labels = metrics_of(challenger, rows, config)
    cp_metrics, cp_proba, _ = metrics_of(champion, rows, config)
    ev = config.evaluation
    boot = paired_bootstrap(
        y, ch_proba, cp_proba, config.metrics.primary, task=config.task, labels=labels,
        n=ev.bootstrap_samples, seed=config.seed, confidence=ev.confidence,
    )
    verdict = decide(config, ch_metrics, cp_metrics, boot)
    return verdict, boot, len(rows), 0


def metrics_of(model, rows, config):
    from airflow_mlops.core.training import compute_metrics

    names = list(dict.fromkeys([*config.metrics.all, *config.evaluation.guard_rails, *config.evaluation.floors]))
    x, y = rows[config.feature_names], rows[config.target]
    proba = model.predict_proba(x)
    labels = list(model.classes_)
    return compute_metrics(config.task, y, model.predict(x), proba, names, labels=labels), proba, labels


def replicate(args: tuple[str, int, int, str]) -> dict:
    scenario, rep, bootstrap, candidate = args
    config = load_config(bootstrap, candidate)
    seed = 10_000 + rep
    champion_frame, challenger_frame, fresh = windows(scenario, seed)
    champion, _ = fit(champion_frame, config)
    challenger, gate_rows = fit(challenger_frame, config, flip_seed=seed if scenario == "harmful" else None)
    verdict, boot, n_test, n_excluded = gate(config, challenger, champion, gate_rows)
    primary = config.metrics.primary
    fresh_gain = metrics_of(challenger, fresh, config)[0][primary] - metrics_of(champion, fresh, config)[0][primary]
    return {
        "scenario": scenario,
        "promote": verdict.promote,
        "gate_gain": boot.diff,
        "low": boot.low,
        "high": boot.high,
        "fresh_gain": fresh_gain,
        "n_test": n_test,
        "n_excluded": n_excluded,
    }


# --------------------------------------------------------------------------- report


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(results: list[dict], margin: float) -> dict[str, dict]:
    import numpy as np

    table = {}
    for scenario in SCENARIOS:
        rows = [r for r in results if r["scenario"] == scenario]
        if not rows:
            continue
        promoted = sum(r["promote"] for r in rows)
        bias = np.array([r["gate_gain"] - r["fresh_gain"] for r in rows])
        table[scenario] = {
            "n": len(rows),
            "promoted": promoted,
            "rate": promoted / len(rows),
            "ci": wilson(promoted, len(rows)),
            "gate_gain": float(np.mean([r["gate_gain"] for r in rows])),
            "fresh_gain": float(np.mean([r["fresh_gain"] for r in rows])),
            "fresh_gain_min": float(np.min([r["fresh_gain"] for r in rows])),
            "bias": float(bias.mean()),
            "bias_se": float(bias.std(ddof=1) / math.sqrt(len(rows))) if len(rows) > 1 else math.nan,
            "below_zero": sum(r["high"] < 0 for r in rows),
            "n_test": float(np.mean([r["n_test"] for r in rows])),
            "n_excluded": float(np.mean([r["n_excluded"] for r in rows])),
        }
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="replications per scenario")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=400, help="bootstrap resamples per gate decision")
    parser.add_argument("--candidate", default="logistic_regression", help="the candidate of churn.yaml both models use")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    args = parser.parse_args(argv)
    config = load_config(args.bootstrap, args.candidate)
    margin = config.evaluation.margin
    work = [(s, rep, args.bootstrap, args.candidate) for s in args.scenarios for rep in range(args.reps)]
    print(f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {len(work)} replications "
          f"({args.reps} per scenario), {args.jobs} processes, candidate {config.candidates[0].name}, "
          f"{args.bootstrap} bootstrap resamples, margin {margin:g}", flush=True)
    started = time.perf_counter()
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for i, result in enumerate(pool.map(replicate, work, chunksize=4), 1):
            results.append(result)
            if i % 50 == 0 or i == len(work):
                print(f"  {i}/{len(work)} replications, {time.perf_counter() - started:.0f} s", flush=True)
    table = summarise(results, margin)
    print()
    print("| scenario | replications | promoted | rate (95% CI) | gate gain, mean | fresh gain, mean (min) "
          "| bias: gate - fresh (SE) | interval entirely below 0 | test rows, mean | excluded as seen by the champion, mean |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for scenario, t in table.items():
        print(f"| {scenario} | {t['n']} | {t['promoted']} | {t['rate']:.3f} ({t['ci'][0]:.3f}..{t['ci'][1]:.3f}) "
              f"| {t['gate_gain']:+.4f} | {t['fresh_gain']:+.4f} ({t['fresh_gain_min']:+.4f}) "
              f"| {t['bias']:+.4f} ({t['bias_se']:.4f}) | {t['below_zero']} | {t['n_test']:.0f} | {t['n_excluded']:.0f} |")
    import numpy as np

    pooled = float(np.mean([r["gate_gain"] - r["fresh_gain"] for r in results]))
    print(f"\nbias pooled over {len(results)} replications: {pooled:+.5f} "
          f"({pooled / margin:+.2f}x margin; goal within +-0.1x); {time.perf_counter() - started:.0f} s in all")
    rate = {s: table[s]["rate"] if s in table else math.nan for s in SCENARIOS}
    print(f"false_promotion={rate['null']:.3f} power={rate['improvement']:.3f} "
          f"harmful={rate['harmful']:.3f} bias={pooled:+.5f}")


if __name__ == "__main__":
    main()
