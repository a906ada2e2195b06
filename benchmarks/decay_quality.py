"""How often the performance monitor's decay rule decides right, on seeded scenarios with known truth.

    .venv/bin/python benchmarks/decay_quality.py [--reps 200] [--jobs 1] [--rows 400] [--bootstrap 1000]

Each replication is one champion's life in the performance monitor: a promise measured like the gate
measures it (ROC AUC on ``--test-rows`` test rows drawn with the champion's true AUC), then
``--before`` labelled days at that true AUC and ``--after`` days at the true AUC minus the scenario's
drop, checked once a day (24 h apart) through the project's own functions: ``join_day``,
``realized_metrics`` (the seeded bootstrap interval), ``judge`` (interval below promised - tolerance) and
the drift monitor's ``should_request_retrain`` (2 of the last 3 days, 24 h cool-down), with
``include/pipelines/churn.yaml``'s ``monitoring.performance`` settings. Scores are binormal with a known
AUC (positives shifted by sqrt(2) * Phi^-1(AUC)), so the truth of every day is known exactly.

Scenarios (drop of the true AUC after the change): ``none`` (0), ``at_tolerance`` (0.02 = the
tolerance: the boundary, where the rule should rarely fire), ``twice_tolerance`` (0.04) and
``concept_drift`` (0.10, a little less than the churn stream's concept drift costs its champion: 0.12-0.16).

Reported: the false alarm rate (replications with a retrain request while the truth had not moved:
all days of ``none``, the days before the change of the others), the detection rate (a request within
the days after the change), days to detection (first request - change + 1; 2 is the fastest 2-of-3
allows) and the per-day decay-flag rates. The last line reads
``false_alarm=<rate> detection@0.10=<rate> detection@0.04=<rate> days_to_detection@0.10=<median>``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins")]

SCENARIOS = {"none": 0.0, "at_tolerance": 0.02, "twice_tolerance": 0.04, "concept_drift": 0.10}
START = dt.date(2026, 3, 1)


def load_config(bootstrap: int):
    from airflow_mlops.core.config import load_config as load

    config = load(ROOT / "include" / "pipelines" / "churn.yaml", check_estimators=False)
    perf = config.monitoring.performance._replace(bootstrap_samples=bootstrap)
    return config._replace(monitoring=config.monitoring._replace(performance=perf))


def day_frames(seed: list[int], rows: int, auc: float, rate: float = 0.35):
    """Predictions and labels of `rows` records whose true ROC AUC is `auc`."""
    import numpy as np
    import pandas as pd
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    y = rng.random(rows) < rate
    shift = math.sqrt(2) * norm.ppf(auc)
    score = 1 / (1 + np.exp(-(rng.normal(0, 1, rows) + shift * y - shift / 2 - 0.6)))
    ids = np.char.add("c", np.arange(rows).astype(str))
    predictions = pd.DataFrame(
        {"customer_id": ids, "score": score, "predicted": (score >= 0.5).astype(int), "model_version": "1"}
    )
    labels = pd.DataFrame({"customer_id": ids, "churned": y.astype(int)})
    return predictions, labels


def replicate(args: tuple[str, int, argparse.Namespace]) -> dict:
    from sklearn.metrics import roc_auc_score

    from airflow_mlops.core.monitoring import should_request_retrain
    from airflow_mlops.core.performance import join_day, judge, realized_metrics

    scenario, rep, opts = args
    config = load_config(opts.bootstrap)
    perf = config.monitoring.performance
    test_p, test_l = day_frames([rep, 0], opts.test_rows, opts.base_auc)
    promised = float(roc_auc_score(test_l["churned"], test_p["score"]))
    history: list[dict] = []
    flags, requests = [], []
    start = dt.datetime(2026, 3, 1, 7, tzinfo=dt.UTC)
    for i in range(opts.before + opts.after):
        truth = opts.base_auc - (SCENARIOS[scenario] if i >= opts.before else 0.0)
        predictions, labels = day_frames([rep, i + 1, int(SCENARIOS[scenario] * 1000)], opts.rows, truth)
        joined = join_day(predictions, labels, ["customer_id"], "churned").joined
        day = START + dt.timedelta(days=i)
        realized = realized_metrics(
            joined,
            config,
            positive=1,
            n_boot=perf.bootstrap_samples,
            seed=[config.seed, day.toordinal(), 1],
            confidence=config.evaluation.confidence,
        )
        verdict = judge(realized, promised, tolerance=perf.tolerance, min_rows=perf.min_rows)
        now = start + dt.timedelta(days=i)
        requested, _ = should_request_retrain(
            [*history, {"at": now, "drift": verdict.decay, "requested": False}],
            now=now,
            confirm_checks=perf.confirm_days,
            of_last_checks=perf.of_last_days,
            cooldown_hours=perf.cooldown_hours,
        )
        history.append({"at": now, "drift": verdict.decay, "requested": requested})
        flags.append(verdict.decay)
        requests.append(requested)
    return {"scenario": scenario, "rep": rep, "promised": promised, "flags": flags, "requests": requests}


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(results: list[dict], before: int) -> dict[str, dict]:
    out = {}
    for scenario in SCENARIOS:
        rs = [r for r in results if r["scenario"] == scenario]
        n = len(rs)
        quiet_days = slice(None) if scenario == "none" else slice(0, before)
        false_alarm = sum(any(r["requests"][quiet_days]) for r in rs)
        detected = [r for r in rs if scenario != "none" and any(r["requests"][before:])]
        days = [r["requests"][before:].index(True) + 1 for r in detected]
        pre_flags = [f for r in rs for f in r["flags"][quiet_days]]
        post_flags = [f for r in rs for f in r["flags"][before:]] if scenario != "none" else []
        out[scenario] = {
            "n": n,
            "false_alarm": false_alarm,
            "detected": len(detected),
            "days": days,
            "flag_rate_quiet": sum(pre_flags) / max(1, len(pre_flags)),
            "flag_rate_after": sum(post_flags) / max(1, len(post_flags)) if post_flags else None,
            "promised_mean": statistics.fmean(r["promised"] for r in rs),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--rows", type=int, default=400, help="labelled rows a day (the churn demo: 400)")
    parser.add_argument("--test-rows", type=int, default=1200, help="test rows of the promise (3 days of 400)")
    parser.add_argument("--base-auc", type=float, default=0.80)
    parser.add_argument("--before", type=int, default=10, help="days before the change")
    parser.add_argument("--after", type=int, default=10, help="days after the change")
    parser.add_argument("--bootstrap", type=int, default=1000)
    opts = parser.parse_args()

    started = time.perf_counter()
    tasks = [(s, rep, opts) for s in SCENARIOS for rep in range(opts.reps)]
    if opts.jobs > 1:
        with ProcessPoolExecutor(opts.jobs) as pool:
            results = list(pool.map(replicate, tasks, chunksize=4))
    else:
        results = [replicate(t) for t in tasks]
    summary = summarise(results, opts.before)
    print(
        f"{opts.reps} replications per scenario, {opts.rows} labelled rows a day, promise on {opts.test_rows} test "
        f"rows, true AUC {opts.base_auc}, {opts.before} days before and {opts.after} after the change, "
        f"{opts.bootstrap} resamples; {time.perf_counter() - started:.0f} s\n"
    )
    print(
        "| scenario | AUC drop | replications | false alarm (95% CI) | detected within "
        f"{opts.after} days (95% CI) | days to detection, median (min..max) | decay flag rate, quiet days | "
        "decay flag rate, after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for scenario, s in summary.items():
        fa = s["false_alarm"] / s["n"]
        lo, hi = wilson(s["false_alarm"], s["n"])
        if scenario == "none":
            det, days, after = "-", "-", "-"
        else:
            dlo, dhi = wilson(s["detected"], s["n"])
            det = f"{s['detected'] / s['n']:.3f} ({dlo:.3f}..{dhi:.3f})"
            days = f"{statistics.median(s['days']):g} ({min(s['days'])}..{max(s['days'])})" if s["days"] else "-"
            after = f"{s['flag_rate_after']:.3f}"
        print(
            f"| {scenario} | {SCENARIOS[scenario]:.2f} | {s['n']} | {fa:.3f} ({lo:.3f}..{hi:.3f}) | {det} | {days} | "
            f"{s['flag_rate_quiet']:.3f} | {after} |"
        )
    alarms = sum(s["false_alarm"] for s in summary.values())
    total = sum(s["n"] for s in summary.values())
    big, mid = summary["concept_drift"], summary["twice_tolerance"]
    print(
        f"\nfalse_alarm={alarms / total:.3f} detection@0.10={big['detected'] / big['n']:.3f} "
        f"detection@0.04={mid['detected'] / mid['n']:.3f} "
        f"days_to_detection@0.10={statistics.median(big['days']) if big['days'] else float('nan'):g}"
    )


if __name__ == "__main__":
    main()
