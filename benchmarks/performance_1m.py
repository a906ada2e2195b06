"""Realized metrics with the bootstrap on 1M joined rows vs a single numpy pass over them.

    .venv/bin/python benchmarks/performance_1m.py [--rows 1000000] [--bootstrap 1000] [--repeat 7]

Goal (issue 13): ``core.performance.realized_metrics`` on 1M joined rows (binary, the churn config:
ROC AUC with a 1,000-resample bootstrap interval, accuracy, f1, log_loss, calibration error, positive
rates) <= 2x a single numpy pass: the ROC AUC computed once with a sort (argsort, then the rank sum).
Both run in this process on the same arrays, alternating, ``--repeat`` times; the ratio is the median of
the paired ratios. For scale, also: scikit-learn's ``roc_auc_score`` once, and what the gate's row
bootstrap (a multinomial resample of the rows per replicate, exact) would cost on these rows,
extrapolated from 10 resamples.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins")]


def data(rows: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    y = rng.random(rows) < 0.35
    score = 1 / (1 + np.exp(-(rng.normal(0, 1, rows) + 1.2 * y - 0.6)))  # continuous: every score distinct
    return pd.DataFrame(
        {"score": score, "predicted": (score >= 0.5).astype(int), "actual": y.astype(int), "model_version": "1"}
    )


def one_pass_auc(score, y) -> float:
    """The baseline: ROC AUC once, with one sort (Mann-Whitney rank sum)."""
    import numpy as np

    order = np.argsort(score)
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    n_pos = int(y.sum())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (len(score) - n_pos)))


def main() -> None:

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from airflow_mlops.core.config import load_config
    from airflow_mlops.core.evaluation.bootstrap import auc_kernel
    from airflow_mlops.core.performance import realized_metrics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    opts = parser.parse_args()

    config = load_config(ROOT / "include" / "pipelines" / "churn.yaml", check_estimators=False)
    config = config._replace(metrics=config.metrics._replace(primary="roc_auc"))
    joined = data(opts.rows)
    score, y = joined["score"].to_numpy(), joined["actual"].to_numpy() == 1
    realized_metrics(joined.head(100_000), config, positive=1, n_boot=50, seed=0)  # warm up imports and caches
    baseline_t, ours_t, ratios = [], [], []
    for i in range(opts.repeat):
        t = time.perf_counter()
        auc = one_pass_auc(score, y)
        baseline_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = realized_metrics(joined, config, positive=1, n_boot=opts.bootstrap, seed=[1, i])
        ours_t.append(time.perf_counter() - t)
        ratios.append(ours_t[-1] / baseline_t[-1])
    t = time.perf_counter()
    sk = roc_auc_score(y, score)
    sklearn_t = time.perf_counter() - t
    kernel = auc_kernel(y, score)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(10):
        kernel(np.bincount(rng.integers(0, opts.rows, opts.rows), minlength=opts.rows).astype(float))
    row_bootstrap_t = (time.perf_counter() - t) / 10 * opts.bootstrap

    print(f"{opts.rows:,} joined rows, {opts.bootstrap} resamples, {opts.repeat} paired runs")
    print(
        f"  realized AUC {result.value:.6f} (one-pass {auc:.6f}, scikit-learn {sk:.6f}), interval "
        f"[{result.low:.6f}, {result.high:.6f}] ({result.method})"
    )
    print(f"  baseline, AUC once with a sort:          median {statistics.median(baseline_t) * 1000:8.1f} ms")
    print(f"  realized_metrics with the bootstrap:     median {statistics.median(ours_t) * 1000:8.1f} ms")
    print(f"  scikit-learn roc_auc_score once:                {sklearn_t * 1000:8.1f} ms")
    print(f"  the gate's row bootstrap (extrapolated):        {row_bootstrap_t:8.1f} s")
    print(f"ratio={statistics.median(ratios):.2f} (goal <= 2; paired ratios {min(ratios):.2f}..{max(ratios):.2f})")


if __name__ == "__main__":
    main()
