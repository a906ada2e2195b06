"""Batch scoring with the champion (core.scoring): overhead over a plain predict_proba, and 10M rows in bounded memory.

Goals (issue 13):
  (a) 1M churn rows: core.scoring's scoring step <= 1.3x a plain ``model.predict_proba`` on the same loaded
      model and the same rows. Measured: ``Scorer.score`` + ``predictions_table`` over the 1M-row frame in chunks
      of ``scoring.chunk_rows`` (feature selection, predict_proba, the positive class's column, the predicted class,
      the output Arrow table with ids, version, digest, timestamp), against ``model.predict_proba(x)`` on the
      already selected 1M x 7 features in one call. Also "in one chunk" (all 1M rows in one call): the overhead
      alone, without the (favourable) effect of smaller chunks. Not measured here: reading, checking, validating and
      writing (they are in (b)). All alternate in one process, --repeat times; medians, and the median of the
      paired ratios. For the registered champion (a logistic regression: the cheapest model, so the largest relative
      overhead) and a histogram gradient boosting fitted in memory (OpenMP: on a busy machine set OMP_NUM_THREADS=1,
      or oversubscribed threads make its timings erratic).
  (b) 10M rows scored end to end by ``score_day`` from one CSV file (or Parquet with --format parquet): the
      streaming pre-pass (sha256, CSV shape), chunked read, per-chunk checks and GX validation, scoring and the
      atomic Parquet write; peak RSS (VmHWM of a fresh child process) <= 2 GB.

The data are generated into a temporary folder (removed at the end): churn_stream batches of 100k rows with unique
ids. source.max_file_mb is raised for (b): a 10M-row CSV is ~750 MB.

    python benchmarks/scoring.py [--rows 1000000] [--big-rows 10000000] [--repeat 3] [--format csv|parquet]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
CONFIG = ROOT / "include" / "pipelines" / "churn.yaml"
DAY = dt.date(2026, 2, 12)
BLOCK = 100_000


def _stream():
    spec = importlib.util.spec_from_file_location("churn_stream", ROOT / "include" / "churn_stream.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def records(rows: int, block: int = 0):
    """`rows` unlabeled churn records with ids unique across blocks."""
    frame = _stream().daily_batch(DAY + dt.timedelta(days=block % 40), rows=rows).drop(columns="churned")
    frame["customer_id"] = [f"C{block:04d}-{i:06d}" for i in range(rows)]
    frame["event_date"] = DAY.isoformat()
    return frame


def config(max_file_mb: float = 4096.0):
    from airflow_mlops.core.config import load_config

    c = load_config(CONFIG)
    return c._replace(source=c.source._replace(max_file_mb=max_file_mb))


def client():
    from mlflow import MlflowClient

    from airflow_mlops import settings
    from airflow_mlops.core import tracking

    c = MlflowClient(tracking_uri=settings.default_tracking_uri(), registry_uri=settings.default_tracking_uri())
    tracking.configure(c)
    return c


def train_champion(tmp: Path) -> str:
    """A logistic-regression champion of churn_classifier, trained and registered through core as the DAG does."""
    from airflow_mlops.core import registry, training
    from airflow_mlops.core.data import read_snapshot, take_snapshot
    from airflow_mlops.core.rows import split_roles

    cfg, mlflow_client = config(), client()
    source = tmp / "train"
    _stream().write_stream(source, dt.date(2026, 1, 1), 28, rows=400)
    snap = take_snapshot(cfg, source=str(source), window_end=dt.date(2026, 1, 28))
    result = training.train_candidate(
        split_roles(read_snapshot(snap["uri"]), cfg),
        cfg,
        "logistic_regression",
        client=mlflow_client,
        experiment="churn",
        data_digest=snap["digest"],
        data_uri=snap["uri"],
        tags={"data.digest": snap["digest"]},
    )
    version = registry.register_challenger(
        mlflow_client, cfg.model_name, result["model_uri"], result["run_id"], tags={"data.digest": snap["digest"]}
    )["version"]
    registry.set_alias(mlflow_client, cfg.model_name, registry.CHAMPION, version)
    return version


# --------------------------------------------------------------------------- (a) overhead


def overhead(rows: int, repeat: int, version: str) -> list[dict]:
    import pandas as pd

    from airflow_mlops.core import training
    from airflow_mlops.core.scoring import Scorer, predictions_table

    cfg = config()
    frame = pd.concat([records(min(BLOCK, rows - b), b // BLOCK) for b in range(0, rows, BLOCK)], ignore_index=True)
    x = frame[cfg.feature_names]
    champion = training.load_model(f"models:/{cfg.model_name}/{version}")
    train = pd.concat(
        [_stream().daily_batch(dt.date(2026, 1, 1) + dt.timedelta(days=d), rows=400) for d in range(28)],
        ignore_index=True,
    )
    hgb, _ = training.fit_candidate(train, cfg, "hist_gradient_boosting")
    chunk = cfg.scoring.chunk_rows
    scored_at = dt.datetime.now(dt.UTC)
    results = []
    for label, model in (
        ("logistic_regression (the champion, loaded from MLflow)", champion),
        ("hist_gradient_boosting (fitted in memory)", hgb),
    ):
        scorer = Scorer.of(model, cfg)

        def ours(scorer=scorer, size=chunk):
            for start in range(0, len(frame), size):
                predictions_table(
                    scorer,
                    frame.iloc[start : start + size],
                    id_columns=cfg.source.id_columns,
                    model_version=version,
                    data_digest="sha256:bench",
                    scored_at=scored_at,
                )

        def ours_one_chunk(scorer=scorer):
            ours(scorer, len(frame))

        def plain(model=model):
            model.predict_proba(x)

        runs = {"ours": ours, "ours_one_chunk": ours_one_chunk, "plain": plain}
        for fn in runs.values():  # warm-up
            fn()
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(repeat):
            for name, fn in runs.items():
                started = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - started)

        def ratio(name: str, times: dict[str, list[float]] = times) -> float:
            return statistics.median(o / p for o, p in zip(times[name], times["plain"], strict=True))

        results.append(
            {
                "model": label,
                "rows": len(frame),
                "chunk_rows": chunk,
                **{f"{name}_s": statistics.median(t) for name, t in times.items()},
                "ratio": ratio("ours"),
                "ratio_one_chunk": ratio("ours_one_chunk"),
                "runs": times,
            }
        )
    return results


# --------------------------------------------------------------------------- (b) 10M rows, peak RSS


def write_big(path: Path, rows: int, fmt: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    blocks = (records(min(BLOCK, rows - b), b // BLOCK) for b in range(0, rows, BLOCK))
    if fmt == "csv":
        with path.open("w", encoding="utf-8") as fh:
            for i, frame in enumerate(blocks):
                frame.to_csv(fh, index=False, header=i == 0)
    else:
        writer = None
        for frame in blocks:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
    print(
        f"  wrote {rows:,} rows to {path.name}: {path.stat().st_size / 1e6:,.0f} MB in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return path


def child_score(path: str) -> None:
    """In a fresh process: import, then score the file with score_day; print JSON with the peak RSS."""
    import resource

    from airflow_mlops.core.scoring import score_day

    def status(key: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB -> MB
        return float("nan")

    before = status("VmRSS")
    summary = score_day(config(), DAY, client=client(), source=path)
    print(
        json.dumps(
            {
                "summary": summary,
                "rss_after_imports_mb": before,
                "vmhwm_mb": status("VmHWM"),
                "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def big(rows: int, fmt: str, tmp: Path) -> dict:
    path = write_big(tmp / f"churn_{DAY.isoformat()}.{fmt}", rows, fmt)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child-score", str(path)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=7200,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - started
    out["file_mb"] = path.stat().st_size / 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--child-score", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_score:
        child_score(args.child_score)
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    os.environ["AIRFLOW_MLOPS_HOME"] = str(tmp / "mlops")
    os.environ["AIRFLOW_MLOPS_DATA_ROOTS"] = str(tmp)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    try:
        version = train_champion(tmp)
        print(f"(a) scoring {args.rows:,} rows: core.scoring vs plain predict_proba, medians of {args.repeat}")
        for r in overhead(args.rows, args.repeat, version):
            print(
                f"  {r['model']}: plain predict_proba {r['plain_s']:.2f} s; ours in chunks of {r['chunk_rows']:,} "
                f"(as score_day runs) {r['ours_s']:.2f} s = {r['ratio']:.2f}x, ours in one chunk "
                f"{r['ours_one_chunk_s']:.2f} s = {r['ratio_one_chunk']:.2f}x (goal <= 1.3x)",
                flush=True,
            )
        if not args.skip_big:
            print(f"(b) {args.big_rows:,} rows scored end to end by score_day from one {args.format} file")
            r = big(args.big_rows, args.format, tmp)
            s = r["summary"]
            print(
                f"  {s['rows']:,} rows in {s['chunks']} chunks, {s['seconds']:.0f} s ({s['rows_per_s']:,.0f} rows/s), "
                f"file {r['file_mb']:,.0f} MB; peak RSS {r['vmhwm_mb']:,.0f} MB (goal <= 2048 MB; "
                f"{r['rss_after_imports_mb']:,.0f} MB after imports)",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
