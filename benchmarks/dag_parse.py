"""DAG parse cost: each dags/ file vs a same-shape DAG of EmptyOperators, side by side.

Goal: ratio <= 1.2. Each sample is a fresh interpreter that has already imported
airflow.sdk and EmptyOperator (as Airflow's DAG processor has), then times one parse of
the file. Real and baseline samples alternate so machine noise hits both alike.

    python benchmarks/dag_parse.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"

TIMER = """
import sys, time, runpy
sys.path.insert(0, {plugins!r})
import airflow.sdk
from airflow.providers.standard.operators.empty import EmptyOperator
t0 = time.perf_counter()
runpy.run_path({path!r})
print(time.perf_counter() - t0)
"""


def same_shape_source(dag) -> str:
    """Python source of a DAG with the same id, schedule, tasks and edges, all EmptyOperators."""
    lines = [
        "from datetime import datetime, timezone",
        "from airflow.sdk import DAG",
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        f"with DAG(dag_id={dag.dag_id + '_empty'!r}, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),"
        f" catchup=False, tags={list(dag.tags)!r}) as dag:",
    ]
    names = {}
    for i, task in enumerate(dag.tasks):
        names[task.task_id] = f"t{i}"
        lines.append(f"    t{i} = EmptyOperator(task_id={task.task_id!r}, retries=2)")
    for task in dag.tasks:
        for down in sorted(task.downstream_task_ids):
            lines.append(f"    {names[task.task_id]} >> {names[down]}")
    return "\n".join(lines) + "\n"


def time_parse(path: Path) -> float:
    code = TIMER.format(plugins=str(ROOT / "plugins"), path=str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "plugins"))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dag_id, dag in sorted(bag.dags.items()):
            real = Path(dag.fileloc)
            empty = Path(tmp) / f"{dag_id}_empty.py"
            empty.write_text(same_shape_source(dag))
            real_t, empty_t = [], []
            for _ in range(args.rounds):
                real_t.append(time_parse(real))
                empty_t.append(time_parse(empty))
            ratio = statistics.median(real_t) / statistics.median(empty_t)
            results[real.name] = {
                "dag_id": dag_id,
                "tasks": len(dag.tasks),
                "median_ms": round(statistics.median(real_t) * 1000, 2),
                "empty_median_ms": round(statistics.median(empty_t) * 1000, 2),
                "ratio": round(ratio, 3),
                "goal": "<= 1.2",
                "ok": ratio <= 1.2,
            }
            print(f"{real.name:32s} {results[real.name]['median_ms']:8.2f} ms vs EmptyOperator DAG "
                  f"{results[real.name]['empty_median_ms']:8.2f} ms -> ratio {ratio:.3f} (goal <= 1.2)")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
