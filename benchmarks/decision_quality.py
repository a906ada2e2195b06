"""How often the champion/challenger gate decides right, on seeded scenarios with known truth.

    .venv/bin/python benchmarks/decision_quality.py [--reps 200] [--jobs 2] [--bootstrap 400]

Each replication draws its own churn stream (include/churn_stream.py, seed = replication),
trains a champion on one window and a challenger on a later one, runs the gate, and also scores
both models on a large fresh sample that neither saw (the truth the gate estimates):

- null: the challenger is the same recipe one day later, same distribution (truth: no gain);
- improvement: the champion was trained before the generating process changed (the stream's
  drift), the challenger on a window half after it (truth: a large gain on fresh data);
- small_improvement: as improvement, but after the change only 60% of each day's rows follow the
  new process (truth: a gain of about 2x the margin on fresh data, the hardest case the goal covers);
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

SCENARIOS = ("null", "improvement", "small_improvement", "harmful")
#: small_improvement: after the change, this share of each day's rows follows the new process (the
#: rest the old one), so the retrained model gains about 2x the margin on fresh data, not 6x.
SMALL_SHARE = 0.6
START = dt.date(2026, 1, 1)
WINDOW = 28  # days in a training window (churn.yaml source.window_days)
FRESH_DAYS = 25  # 10,000 fresh rows at 400 a day
FLIP_SHARE = 0.2


def load_config(bootstrap: int, candidate_name: str = "logistic_regression"):
    from airflow_mlops.core.config import load_config as load

    config = load(ROOT / "include" / "pipelines" / "churn.yaml")
    candidate = config.candidate(candidate_name)
    return config._replace(
        candidates=(candidate,),
        evaluation=config.evaluation._replace(bootstrap_samples=bootstrap),
    )


def stream(seed: int, first: dt.date, days: int, drift_from: dt.date | None, share: float = 1.0):
    """Daily churn batches; from `drift_from` on, `share` of each day's rows follow the changed process."""
    import numpy as np
    import pandas as pd
    from churn_stream import daily_batch

    frames = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        frame = daily_batch(day, seed=seed, drift_from=drift_from)
        if drift_from is not None and day >= drift_from and share < 1.0:
            old = daily_batch(day, seed=seed + 1_000_000)
            keep_new = np.random.default_rng([seed, day.toordinal(), 3]).random(len(frame)) < share
            frame = frame.where(pd.Series(keep_new, index=frame.index), old, axis=0)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def windows(scenario: str, seed: int):
    """(champion window, challenger window, fresh sample) for one replication."""
    champion_first = START
    if scenario in ("improvement", "small_improvement"):
        drift_from = START + dt.timedelta(days=WINDOW)  # the day after the champion's window
        challenger_first = START + dt.timedelta(days=WINDOW // 2)  # half its window after the change
    else:
        drift_from = None
        challenger_first = START + dt.timedelta(days=1)
    share = SMALL_SHARE if scenario == "small_improvement" else 1.0
    every = stream(seed, START, (challenger_first - START).days + WINDOW + FRESH_DAYS, drift_from, share)
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
# Everything below goes through the project's own functions: core.rows splits the window into
# train / validation / test and records the rows a model saw, core.training fits and ranks the
# candidates on the validation rows, core.evaluation.judge scores the clean test rows and decides.


def fit(frame, config, *, flip_seed: int | None = None):
    """(the best candidate fitted on the train rows, its split) as the training tasks do it."""
    from airflow_mlops.core import rows, training

    split = rows.split_roles(frame, config)
    if flip_seed is not None:  # the labels the challenger learns from (train and validation), not the test rows
        split = dataclasses.replace(
            split, train=flip_labels(split.train, config, flip_seed), validation=flip_labels(split.validation, config, flip_seed + 1)
        )
    fitted = {c.name: training.fit_candidate(split.train, config, c.name)[0] for c in config.candidates}
    ranked = [{"candidate": name, "metrics": training.model_metrics(model, split.validation, config)} for name, model in fitted.items()]
    best = training.select_best(ranked, config)["candidate"]
    return fitted[best], split


def gate(config, challenger, champion, challenger_split, champion_split):
    """The challenger's test rows minus the champion's rows, judged by core.evaluation (verdict, gain, rows)."""
    from airflow_mlops.core import evaluation, rows

    test_rows = rows.gate_rows(
        challenger_split.test, config, champion=rows.record_of(champion_split, "the champion's split"), has_champion=True,
    )
    result = evaluation.judge(config, test_rows, loaded(challenger, challenger_split, config, "challenger"),
                              loaded(champion, champion_split, config, "champion"))
    boot = result.bootstrap
    gain = (boot.diff, boot.low, boot.high) if boot is not None else (math.nan, math.nan, math.nan)
    return result.verdict, gain, test_rows.n_rows, test_rows.excluded


def loaded(model, split, config, name: str):
    from airflow_mlops.core import evaluation, training

    signature = training.model_signature(config, split.train[config.feature_names], split.train[config.target])
    return evaluation.Loaded(uri=f"benchmark:{name}", model=model, signature=signature)


def replicate(args: tuple[str, int, int, str]) -> dict:
    scenario, rep, bootstrap, candidate = args
    config = load_config(bootstrap, candidate)
    seed = 10_000 + rep
    champion_frame, challenger_frame, fresh = windows(scenario, seed)
    champion, champion_split = fit(champion_frame, config)
    challenger, challenger_split = fit(challenger_frame, config, flip_seed=seed if scenario == "harmful" else None)
    verdict, (gain, low, high), n_test, n_excluded = gate(config, challenger, champion, challenger_split, champion_split)
    primary = config.metrics.primary
    from airflow_mlops.core.training import model_metrics

    fresh_gain = model_metrics(challenger, fresh, config)[primary] - model_metrics(champion, fresh, config)[primary]
    return {
        "scenario": scenario,
        "promote": verdict.promote,
        "gate_gain": gain,
        "low": low,
        "high": high,
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
        bias = np.array([r["gate_gain"] - r["fresh_gain"] for r in rows if math.isfinite(r["gate_gain"])])
        table[scenario] = {
            "n": len(rows),
            "promoted": promoted,
            "rate": promoted / len(rows),
            "ci": wilson(promoted, len(rows)),
            "gate_gain": float(np.nanmean([r["gate_gain"] for r in rows])),
            "fresh_gain": float(np.mean([r["fresh_gain"] for r in rows])),
            "fresh_gain_min": float(np.min([r["fresh_gain"] for r in rows])),
            "bias": float(bias.mean()),
            "bias_se": float(bias.std(ddof=1) / math.sqrt(len(bias))) if len(bias) > 1 else math.nan,
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

    pooled = float(np.nanmean([r["gate_gain"] - r["fresh_gain"] for r in results]))
    print(f"\nbias pooled over {len(results)} replications: {pooled:+.5f} "
          f"({pooled / margin:+.2f}x margin; goal within +-0.1x); {time.perf_counter() - started:.0f} s in all")
    rate = {s: table[s]["rate"] if s in table else math.nan for s in SCENARIOS}
    print(f"false_promotion={rate['null']:.3f} power={min(rate['improvement'], rate['small_improvement']):.3f} "
          f"harmful={rate['harmful']:.3f} bias={pooled:+.5f}")


if __name__ == "__main__":
    main()
