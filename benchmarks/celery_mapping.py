"""Dynamic task mapping on Celery: 4 candidates trained by 2 workers vs 1, in one run (by hand, not in CI).

    python benchmarks/celery_mapping.py          # needs local PostgreSQL and Redis, like make stack-test

Brings up the native cluster stack in .stack-bench/ (fresh databases), runs `churn_retrain` with a
4-candidate variant of the churn config twice through the REST API: once with both Celery workers,
once after stopping worker 2. The training phase is measured from the first mapped `train` task's
start to the last one's end, as Airflow recorded them. Each worker runs one task at a time with
OMP_NUM_THREADS=1 (a slot is a core). Goal: speed-up >= 1.7x.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from datetime import datetime

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the checkout's tools/
from tools.stack import manager, processes  # noqa: E402
from tools.stack.api import AirflowApi  # noqa: E402
from tools.stack.components import PROJECT_ROOT, StackSettings, load_secrets  # noqa: E402

VARIANT = "bench_celery_mapping"
CANDIDATES = [  # four of similar cost, single-threaded
    {"name": f"random_forest_{i}", "estimator": "sklearn.ensemble.RandomForestClassifier",
     "params": {"n_estimators": 300, "max_depth": 10, "n_jobs": 1, "random_state": i}}
    for i in range(4)
]  # fmt: skip


def training_seconds(api: AirflowApi, run_id: str) -> tuple[float, set[str]]:
    train = [ti for ti in api.task_instances("churn_retrain", run_id) if ti["task_id"] == "train"]
    assert len(train) == len(CANDIDATES) and all(ti["state"] == "success" for ti in train), train
    start = min(datetime.fromisoformat(ti["start_date"]) for ti in train)
    end = max(datetime.fromisoformat(ti["end_date"]) for ti in train)
    return (end - start).total_seconds(), {ti["hostname"].split("@")[0] for ti in train}


def main() -> None:
    home = PROJECT_ROOT / ".stack-bench"
    stack = dataclasses.replace(StackSettings.from_env("cluster", home=home), database_prefix="airflow_mlops_bench")
    manager.down(stack, log=lambda _: None)
    shutil.rmtree(home, ignore_errors=True)
    manager.drop_databases(stack)
    data = home / "data" / "churn"
    subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "include" / "churn_stream.py"),
            "--out",
            str(data),
            "--start",
            "2026-01-01",
            "--days",
            "40",
        ],
        check=True,
        capture_output=True,
    )
    config = yaml.safe_load((PROJECT_ROOT / "include" / "pipelines" / "churn.yaml").read_text())
    config["model"]["candidates"] = CANDIDATES
    config["variant_of"] = "churn"  # runs as churn_retrain's `config` param; a second `pipeline: churn` would clash
    # The DAG takes config variants by name from include/pipelines/: this one lives there for the run only.
    config_path = PROJECT_ROOT / "include" / "pipelines" / f"{VARIANT}.yaml"
    config_path.write_text(yaml.safe_dump(config))

    os.environ["OMP_NUM_THREADS"] = "1"
    manager.up(stack, log=print, timeout=600)
    try:
        api = AirflowApi(stack.api_url, "admin", load_secrets(stack)["AIRFLOW_ADMIN_PASSWORD"])
        api.wait_for_dag("churn_retrain")
        api.unpause_skipping_missed_run("churn_retrain")
        results = {}
        for label, as_of in (("2 workers", "2026-02-05"), ("1 worker", "2026-02-06")):
            if label == "1 worker":
                pid = processes.running(stack.run_dir)["airflow-worker-2"]
                os.killpg(pid, 15)
                processes.wait_until(
                    lambda: "airflow-worker-2" not in processes.running(stack.run_dir), 60, "worker 2 to stop"
                )
            run_id = api.trigger("churn_retrain", {"as_of": as_of, "source": str(data), "config": VARIANT})
            run = api.wait_for_run("churn_retrain", run_id, timeout=1800)
            seconds, workers = training_seconds(api, run_id)
            results[label] = seconds
            print(
                f"{label}: {len(CANDIDATES)} candidates trained in {seconds:.1f} s on {sorted(workers)} "
                f"(run {run['state']})",
                flush=True,
            )
        print(f"\nspeed-up 2 workers vs 1: {results['1 worker'] / results['2 workers']:.2f}x (goal >= 1.7x)")
    finally:
        manager.down(stack, log=lambda _: None)
        config_path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
