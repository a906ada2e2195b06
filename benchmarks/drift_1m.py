"""The drift check at 1M and 10M rows: core.drift vs a plain histogram pass (and Evidently, when it installs).

Goals (docs/benchmarks.md):
  1M rows x 20 features (12 numeric, 8 categorical), reference and current from Parquet:
      compute_drift <= 2x a plain numpy histogram pass over the same data (same reader, same chunks)
  10M rows x 20 features, chunked: peak RSS <= 2 GB and time <= 11x the 1M time
  Evidently 0.7 DataDriftPreset on the same 1M files (goal: ours >= 20x faster): only when a separate
      venv with evidently 0.7 exists (pandas 3 breaks its import), e.g.
      python3.11 -m venv /tmp/evidently-venv && /tmp/evidently-venv/bin/pip install "evidently==0.7.*" "pandas<3"

Every measurement runs in a fresh child process (peak RSS by resource.getrusage in the child);
ours and the baseline alternate, medians of --repeat runs (the ratio: median of the paired ratios).

    python benchmarks/drift_1m.py [--rows 1000000] [--big-rows 10000000] [--repeat 3] [--evidently-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 1_000_000
NUMERIC = [f"n{i:02d}" for i in range(12)]
CATEGORICAL = [f"c{i:02d}" for i in range(8)]
CARDINALITY = [3, 5, 10, 20, 50, 4, 8, 30]
DRIFTING = {
    "n00": "mean +0.5 sd",
    "n01": "sd x1.6",
    "n02": "mean +0.03 sd (significant, trivial)",
    "c00": "mix change",
    "c01": "new category (10%)",
    "c02": "slight mix change",
}


def _block(rng, n: int, current: bool):
    import numpy as np
    import pandas as pd

    cols = {}
    cols["n00"] = rng.normal(0.5 if current else 0.0, 1.0, n)
    cols["n01"] = rng.normal(10.0, 1.6 if current else 1.0, n)
    cols["n02"] = rng.normal(0.03 if current else 0.0, 1.0, n)
    cols["n03"] = rng.lognormal(2.5, 0.6, n)
    cols["n04"] = rng.gamma(2.0, 12.0, n).round(0)
    cols["n05"] = rng.poisson(1.2, n).astype(float)
    cols["n06"] = rng.uniform(0, 100, n)
    cols["n07"] = rng.exponential(3.0, n)
    cols["n08"] = rng.normal(65, 20, n).round(2)
    cols["n09"] = rng.integers(0, 1000, n).astype(float)
    cols["n10"] = rng.standard_t(5, n)
    cols["n11"] = rng.beta(2, 5, n)
    for name, k in zip(CATEGORICAL, CARDINALITY, strict=True):
        labels = np.array([f"{name}_v{j}" for j in range(k)] + [f"{name}_new"], dtype=object)
        p = np.r_[np.linspace(2, 1, k), 0.0]
        if current and name == "c00":
            p = np.r_[np.linspace(1, 3, k), 0.0]
        if current and name == "c01":
            p[-1] = p[:-1].sum() / 9  # 10% of the rows in a category the reference never had
        if current and name == "c02":
            p[0] *= 1.05
        cols[name] = rng.choice(labels, n, p=p / p.sum())
    return pd.DataFrame(cols)


def write_data(path: Path, rows: int, *, current: bool, seed: int) -> Path:
    """rows x 20 features in blocks of 1M (row groups of 250k): bounded memory for 10M rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    writer = None
    for b in range(0, rows, BLOCK):
        rng = np.random.default_rng([seed, int(current), b // BLOCK])
        table = pa.Table.from_pandas(_block(rng, min(BLOCK, rows - b), current), preserve_index=False)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=250_000)
    assert writer is not None
    writer.close()
    tmp.rename(path)
    return path


CHILD_PRELUDE = f"""
import json, resource, sys, time
sys.path.insert(0, {str(ROOT / "plugins")!r})
import numpy as np, pandas as pd, pyarrow.parquet as pq, scipy.stats, scipy.special
"""

OURS = (
    CHILD_PRELUDE
    + """
from airflow_mlops.core.config import MonitoringConfig
from airflow_mlops.core.drift import compute_drift
t0 = time.perf_counter()
report = compute_drift({ref!r}, {cur!r}, MonitoringConfig())
seconds = time.perf_counter() - t0
print(json.dumps({{"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "drift": report.drift, "drifted": report.drifted,
                  "features": {{f.name: [f.statistic_name, f.statistic, f.p_adjusted, f.effect_name, f.effect, f.drifted]
                               for f in report.features}}}}))
"""
)

# The least any drift check must do: read both windows once and histogram every column.
BASELINE = (
    CHILD_PRELUDE
    + """
numeric, categorical = {numeric!r}, {categorical!r}
t0 = time.perf_counter()
for path in ({ref!r}, {cur!r}):
    hist, counts, ranges = {{}}, {{}}, {{}}
    pf = pq.ParquetFile(path)
    for batch in (b for g in range(pf.metadata.num_row_groups) for b in pf.iter_batches(250_000, row_groups=[g])):
        chunk = batch.to_pandas()
        for name in numeric:
            x = chunk[name].to_numpy(dtype=float)
            rng = ranges.setdefault(name, (float(x.min()), float(x.max())))
            hist[name] = hist.get(name, 0) + np.histogram(x, bins=10, range=rng)[0]
        for name in categorical:
            vc = chunk[name].value_counts()
            counts[name] = vc if name not in counts else counts[name].add(vc, fill_value=0)
seconds = time.perf_counter() - t0
print(json.dumps({{"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
)

EVIDENTLY = """
import json, resource, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
numeric, categorical = {numeric!r}, {categorical!r}
t0 = time.perf_counter()
ref, cur = pd.read_parquet({ref!r}), pd.read_parquet({cur!r})
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
snapshot = Report([DataDriftPreset()]).run(current_data=Dataset.from_pandas(cur, data_definition=definition),
                                           reference_data=Dataset.from_pandas(ref, data_definition=definition))
out = snapshot.dict()
seconds = time.perf_counter() - t0
columns = {{}}
for m in out["metrics"]:
    cfg = m["config"]
    if cfg.get("type", "").endswith("ValueDrift"):
        method, threshold, value = cfg["method"], cfg["threshold"], float(m["value"])
        drifted = value < threshold if "p_value" in method else value >= threshold
        columns[cfg["column"]] = [method, value, drifted]
print(json.dumps({{"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "columns": columns}}))
"""


def run_child(python: str, code: str, timeout: float = 1800) -> dict:
    proc = subprocess.run(
        [python, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="0 skips the chunked run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "airflow-mlops-drift-bench")
    parser.add_argument("--evidently-python", default="/tmp/evidently-venv/bin/python")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    ref = write_data(args.data_dir / f"ref_{args.rows}.parquet", args.rows, current=False, seed=1)
    cur = write_data(args.data_dir / f"cur_{args.rows}.parquet", args.rows, current=True, seed=2)
    print(
        f"data: {args.rows:,} rows x {len(NUMERIC) + len(CATEGORICAL)} features per window "
        f"({ref.stat().st_size / 1e6:.0f} + {cur.stat().st_size / 1e6:.0f} MB Parquet), "
        f"made in {time.perf_counter() - t:.0f} s",
        flush=True,
    )

    fmt = {"ref": str(ref), "cur": str(cur), "numeric": NUMERIC, "categorical": CATEGORICAL}
    ours, base = [], []
    for _ in range(args.repeat):
        ours.append(run_child(sys.executable, OURS.format(**fmt)))
        base.append(run_child(sys.executable, BASELINE.format(**fmt)))
    t_ours = statistics.median(r["seconds"] for r in ours)
    t_base = statistics.median(r["seconds"] for r in base)
    ratio = statistics.median(o["seconds"] / b["seconds"] for o, b in zip(ours, base, strict=True))
    result = ours[-1]
    print(
        f"\n1M: compute_drift {t_ours:.2f} s (peak RSS {max(r['rss_mb'] for r in ours):.0f} MB) vs "
        f"numpy histogram pass {t_base:.2f} s: ratio {ratio:.2f} (median of paired runs; goal <= 2) "
        f"{'ok' if ratio <= 2 else 'MISSED'}"
    )
    print(f"verdict: drift={result['drift']} drifted={result['drifted']}")

    evidently = None
    if args.evidently_python and Path(args.evidently_python).exists():
        try:
            evidently = run_child(args.evidently_python, EVIDENTLY.format(**fmt), timeout=3600)
            print(
                f"\nEvidently DataDriftPreset {evidently['seconds']:.2f} s (peak RSS {evidently['rss_mb']:.0f} MB): "
                f"ours is {evidently['seconds'] / t_ours:.1f}x faster (goal >= 20)"
            )
        except Exception as exc:  # report, do not hide
            print(f"\nEvidently failed: {exc}")
    else:
        print(f"\nEvidently: no interpreter at {args.evidently_python}; skipped")

    print("\n| feature | true change | ours: statistic | ours: effect | ours | Evidently: method | value | Evidently |")
    print("|---|---|---|---|---|---|---|---|")
    for name in NUMERIC + CATEGORICAL:
        stat_name, stat, _p_adj, eff_name, eff, drifted = result["features"][name]
        ev = (evidently or {}).get("columns", {}).get(name)
        ev_cells = f"{ev[0]} | {ev[1]:.4f} | {'DRIFT' if ev[2] else '-'}" if ev else "- | - | -"
        print(
            f"| {name} | {DRIFTING.get(name, '-')} | {stat_name} {stat:.4f} | {eff_name} {eff:.4f} | "
            f"{'DRIFT' if drifted else '-'} | {ev_cells} |"
        )

    if args.big_rows:
        t = time.perf_counter()
        big_ref = write_data(args.data_dir / f"ref_{args.big_rows}.parquet", args.big_rows, current=False, seed=1)
        big_cur = write_data(args.data_dir / f"cur_{args.big_rows}.parquet", args.big_rows, current=True, seed=2)
        print(
            f"\ndata: {args.big_rows:,} rows per window ({big_ref.stat().st_size / 1e6:.0f} + "
            f"{big_cur.stat().st_size / 1e6:.0f} MB), made in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        big = run_child(sys.executable, OURS.format(**{**fmt, "ref": str(big_ref), "cur": str(big_cur)}))
        ratio = big["seconds"] / t_ours
        print(
            f"{args.big_rows // 1_000_000}M chunked: {big['seconds']:.2f} s = {ratio:.2f}x the 1M time "
            f"(goal <= 11) {'ok' if ratio <= 11 else 'MISSED'}; peak RSS {big['rss_mb']:.0f} MB (goal <= 2048) "
            f"{'ok' if big['rss_mb'] <= 2048 else 'MISSED'}; drifted={big['drifted']}"
        )


if __name__ == "__main__":
    main()
