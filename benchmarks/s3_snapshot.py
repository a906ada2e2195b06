"""A snapshot from the S3 API vs the same bytes read by pyarrow from the same server, side by side in one run.

Goal (docs/benchmarks.md, issue 25): our snapshot of an object-storage source <= 1.5x pyarrow's own read.

The churn stream's 28 daily Parquet files (--rows in all, ~1M) are uploaded to moto's standalone S3 server on
loopback (tests/s3_server.py: `moto_server` as a subprocess). Then, alternating, --repeat times each:

- pyarrow: ``pyarrow.fs.S3FileSystem`` (Arrow's own C++ S3 client) pointed at the server reads the 28 objects
  into one Arrow table (``pyarrow.dataset``, Arrow's threads), and, reported beside it, the same plus
  ``to_pandas()`` (our snapshot ends as a pandas frame);
- ours: ``take_snapshot`` of ``s3://bench_s3@bench/churn/`` through the snapshot task's filesystem
  (hooks.objects: ``ObjectStoragePath`` -> the amazon provider's s3fs, credentials from the Airflow connection):
  listing, the window, every file's size, format, CSV/Parquet and frame checks, the content digest and the
  Parquet snapshot written to a fresh folder each time (so nothing is reused).

Beside them, to say where the time goes: ours' read stage alone (``read_object_source``: listing, downloads,
Parquet decoding and the per-file checks, no digest, no write) and the same snapshot from the files on the local
disk (what the snapshot costs whatever the source).

One warm-up of each first (provider discovery, the first connection). The ratio is the median of the paired
ratios. Both talk to the same single-process Python server, which serves one request at a time per thread: its
cost is part of both sides.

    python benchmarks/s3_snapshot.py [--rows 1000000] [--days 28] [--repeat 5] [--data /tmp/s3-bench-data]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "tests"))
from s3_server import S3Server  # noqa: E402

CONN_ID = "bench_s3"
BUCKET = "bench"
PREFIX = "churn/"
START = dt.date(2026, 1, 1)


def write_days(folder: Path, rows: int, days: int) -> list[Path]:
    """The churn stream's daily batches as Parquet files churn_YYYY-MM-DD.parquet (kept between runs)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = importlib.util.spec_from_file_location("churn_stream", ROOT / "include" / "churn_stream.py")
    stream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stream)
    folder.mkdir(parents=True, exist_ok=True)
    per_day = rows // days
    files = []
    for i in range(days):
        day = START + dt.timedelta(days=i)
        path = folder / f"churn_{day.isoformat()}.parquet"
        if not path.exists():
            frame = stream.daily_batch(day, rows=per_day + (1 if i < rows % days else 0))
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        files.append(path)
    return files


def bench_config(days: int):
    import yaml

    from airflow_mlops.core.config import parse_config

    raw = yaml.safe_load((ROOT / "include" / "pipelines" / "churn.yaml").read_text())
    raw["source"].update(
        path=f"s3://{CONN_ID}@{BUCKET}/{PREFIX}",
        format="parquet",
        window_days=days,
        allowed_roots=[f"s3://{CONN_ID}@{BUCKET}/{PREFIX.rstrip('/')}"],
    )
    return parse_config(raw, file=str(ROOT / "include" / "pipelines" / "churn.yaml"))


def pyarrow_read(server: S3Server, keys: dict[str, str], *, to_pandas: bool) -> tuple[float, int]:
    import pyarrow.dataset as ds
    from pyarrow import fs

    start = time.perf_counter()
    s3 = fs.S3FileSystem(
        access_key=keys["aws_access_key_id"],
        secret_key=keys["aws_secret_access_key"],
        endpoint_override=server.endpoint,
        scheme="http",
        region="us-east-1",
    )
    selector = fs.FileSelector(f"{BUCKET}/{PREFIX.rstrip('/')}")
    paths = sorted(i.path for i in s3.get_file_info(selector) if i.path.endswith(".parquet"))
    table = ds.dataset(paths, filesystem=s3, format="parquet").to_table()
    rows = table.num_rows
    if to_pandas:
        rows = len(table.to_pandas())
    return time.perf_counter() - start, rows


def ours(config, window_end: dt.date) -> tuple[float, int]:
    from airflow_mlops.core.data import take_snapshot
    from airflow_mlops.hooks.objects import object_filesystem

    with tempfile.TemporaryDirectory(prefix="s3-bench-snap-") as out:
        start = time.perf_counter()
        summary = take_snapshot(config, window_end=window_end, snapshot_root=Path(out), open_store=object_filesystem)
        seconds = time.perf_counter() - start
    return seconds, summary["rows"]


def ours_read(config, window_end: dt.date) -> tuple[float, int]:
    from airflow_mlops.core.data.files import window_start
    from airflow_mlops.core.data.objects import read_object_source
    from airflow_mlops.hooks.objects import object_filesystem

    start = time.perf_counter()
    first = window_start(window_end, config.source.window_days)
    _, _, frames = read_object_source(config, config.source.path, first, window_end, open_store=object_filesystem)
    return time.perf_counter() - start, sum(len(f) for f in frames)


def local(config, folder: Path, window_end: dt.date) -> tuple[float, int]:
    from airflow_mlops.core.data import take_snapshot

    with tempfile.TemporaryDirectory(prefix="s3-bench-snap-") as out:
        start = time.perf_counter()
        summary = take_snapshot(config, source=str(folder), window_end=window_end, snapshot_root=Path(out))
        seconds = time.perf_counter() - start
    return seconds, summary["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "airflow-mlops-s3-bench")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="s3-bench-home-"))
    os.environ.setdefault("AIRFLOW_HOME", str(home / "airflow"))
    os.environ["AIRFLOW_MLOPS_HOME"] = str(home / "mlops")
    os.environ["AIRFLOW_MLOPS_DATA_ROOTS"] = str(args.data)
    data = args.data / f"{args.rows}-{args.days}"
    files = write_days(data, args.rows, args.days)
    size_mb = sum(f.stat().st_size for f in files) / 1024 / 1024
    server = S3Server.start(home)
    try:
        keys = server.user_keys()
        server.upload_folder(data, BUCKET, PREFIX, **keys)
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = server.connection(
            keys["aws_access_key_id"], keys["aws_secret_access_key"]
        )
        config = bench_config(args.days)
        window_end = START + dt.timedelta(days=args.days - 1)
        ours(config, window_end)  # warm-up: provider discovery, the connection, the first s3fs client
        pyarrow_read(server, keys, to_pandas=True)

        sides = {
            "arrow": lambda: pyarrow_read(server, keys, to_pandas=False),
            "ours": lambda: ours(config, window_end),
            "arrow+pandas": lambda: pyarrow_read(server, keys, to_pandas=True),
            "ours_read": lambda: ours_read(config, window_end),
            "local": lambda: local(config, data, window_end),
        }
        rows: dict[str, list[int]] = {name: [] for name in sides}
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.repeat):
            for name, run in sides.items():
                seconds, n = run()
                times[name].append(seconds)
                rows[name].append(n)
        assert len({n for ns in rows.values() for n in ns}) == 1, rows  # the same rows on every side

        def paired(a: str, b: str) -> float:
            return round(statistics.median(x / y for x, y in zip(times[a], times[b], strict=True)), 2)

        result = {
            "rows": rows["ours"][0],
            "files": len(files),
            "mb": round(size_mb, 1),
            "repeat": args.repeat,
            "ours_s": round(statistics.median(times["ours"]), 3),
            "pyarrow_s": round(statistics.median(times["arrow"]), 3),
            "pyarrow_to_pandas_s": round(statistics.median(times["arrow+pandas"]), 3),
            "ours_read_stage_s": round(statistics.median(times["ours_read"]), 3),
            "local_snapshot_s": round(statistics.median(times["local"]), 3),
            "ratio": paired("ours", "arrow"),
            "goal": "ratio <= 1.5",
            "ratio_vs_pyarrow_to_pandas": paired("ours", "arrow+pandas"),
            "read_stage_vs_pyarrow_to_pandas": paired("ours_read", "arrow+pandas"),
            "s3_snapshot_vs_local_snapshot": paired("ours", "local"),
            "all_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
        }
        print(json.dumps(result, indent=2))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
