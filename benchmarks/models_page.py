"""The Models page vs the Airflow UI's own DAG list endpoint, on the same API server and state, side by side.

Goal: the Models page answers in <= 2x the time of `GET /api/v2/dags` (the list Airflow's DAGs page loads),
with a model of 1,000 versions and a ledger of 1,000 alias moves (the page shows 25 of each at a time; the
newest page, and an older page of each).
State: a fresh Airflow SQLite DB with this project's DAGs serialized, a real MLflow SQLite store where the real
gate judged churn_classifier v2 against v1; then 1,000 more versions and 1,000 ledger entries written
through the registry's own writers, and the 3,000 lock/intent/unlock parameters 1,000 real moves leave on the
ledger run. Requests alternate so machine noise hits both alike; after 3 warm-ups.

    python benchmarks/models_page.py [--rounds 30] [--versions 1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "ui"), str(ROOT / "plugins")]


def add_versions(client, model: str, n: int) -> None:
    """`n` more versions of `model` (the champion's artifacts) and `n` ledger entries, as the registry writes them."""
    from airflow_mlops.core import registry

    champion = client.get_model_version_by_alias(model, "champion")
    for i in range(n):
        client.create_model_version(
            model,
            champion.source,
            champion.run_id,
            tags={
                "data.digest": f"sha256:{i:040x}",
                "mlops.trigger": "schedule",
                "decision": "reject",
                "airflow.dag_id": "churn_retrain",
                "airflow.run_id": f"scheduled__{i}",
            },
        )
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    entries = [
        {
            "at": (start + dt.timedelta(minutes=i)).isoformat(),
            "model": model,
            "action": "promote",
            "alias": "champion",
            "from": str(i),
            "to": str(i + 1),
            "by": "airflow:churn_retrain/x/deploy",
            "actor": {"airflow.dag_id": "churn_retrain"},
            "reason": f"bench move {i}",
        }
        for i in range(n)
    ]
    registry.append_ledger(client, model, entries)
    # each real move also leaves its lock, intent and unlock parameters on the ledger run
    from mlflow.entities import Param

    run_id = client.get_registered_model(model).tags[registry.LEDGER_RUN_TAG]
    params = [
        Param(f"{kind}.{i + 100}", json.dumps({"by": "airflow:churn_retrain/x/deploy", "i": i}))
        for i in range(n)
        for kind in ("lock", "intent", "unlock")
    ]
    for first in range(0, len(params), 100):
        client.log_batch(run_id, params=params[first : first + 100])


def timed(http, path: str) -> tuple[float, int]:
    t = time.perf_counter()
    r = http.get(path)
    elapsed = time.perf_counter() - t
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return elapsed, len(r.content)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--versions", type=int, default=1000)
    args = parser.parse_args()

    import conftest  # the test session's isolated Airflow home and DB (environment variables)
    from ui_server import MODEL_FROM_CHURN, running_server

    from airflow_mlops.core.config import load_config

    env = dict(os.environ)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "airflow", "dags", "reserialize"], env=env, check=True, capture_output=True)
    home = Path(tempfile.mkdtemp(prefix="bench-models-page-"))
    config = load_config(conftest.CHURN_CONFIG)
    t = time.perf_counter()
    with running_server(home, config, prepare=lambda c: add_versions(c, MODEL_FROM_CHURN, args.versions)) as server:
        print(
            f"state: {args.versions + 2} versions, {args.versions + 3} ledger entries, "
            f"set up in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        paths = {
            "models": "/mlops/models",
            "model": f"/mlops/models/{MODEL_FROM_CHURN}",
            "older": f"/mlops/models/{MODEL_FROM_CHURN}?versions_before=951&ledger_page=3",
            "dags": "/api/v2/dags?limit=50",
        }
        samples: dict[str, list[float]] = {k: [] for k in paths}
        sizes: dict[str, int] = {}
        with server.http("admin") as http:
            for _ in range(3):
                for path in paths.values():
                    timed(http, path)
            for _ in range(args.rounds):
                for key, path in paths.items():
                    elapsed, sizes[key] = timed(http, path)
                    samples[key].append(elapsed)
    dags = statistics.median(samples["dags"])
    print("\n| page | median | bytes | ratio to the DAG list | goal |\n|---|---|---|---|---|")
    print(f"| GET /api/v2/dags?limit=50 (Airflow) | {dags * 1000:.1f} ms | {sizes['dags']:,} | 1.00 | |")
    for key in ("models", "model", "older"):
        median = statistics.median(samples[key])
        ratio = median / dags
        print(
            f"| GET {paths[key]} | {median * 1000:.1f} ms | {sizes[key]:,} | {ratio:.2f} | "
            f"<= 2 {'ok' if ratio <= 2 else '**missed**'} |"
        )


if __name__ == "__main__":
    main()
