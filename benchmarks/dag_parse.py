"""DAG parse cost: each dags/ file vs a file of same-shape DAGs of EmptyOperators, side by side.

Goal: ratio <= 1.2. The baseline holds, for every DAG the file builds (dags/pipelines.py builds
two per pipeline YAML), one with the same schedule, params, tasks, edges and mapping, every task
an EmptyOperator. Each sample is a fresh interpreter that has already imported
airflow.sdk and EmptyOperator, then times one parse of the file, including the import of
our operator modules (--with-plugin: after the plugin is loaded, as in a DAG processor
that has serialized a DAG before). Real and baseline samples alternate so machine noise
hits both alike. Our modules are byte-compiled first, as in a deployment.

    python benchmarks/dag_parse.py [--rounds 31] [--with-plugin]
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
if {with_plugin!r}:
    import airflow_mlops.plugin
t0 = time.perf_counter()
runpy.run_path({path!r})
print(time.perf_counter() - t0)
"""


HEADER = [
    "from datetime import datetime, timezone",
    "from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param",
    "from airflow.providers.standard.operators.empty import EmptyOperator",
]


def same_shape_source(dags: list) -> str:
    """Python source of a file with, for each of `dags`, a DAG of the same shape made of EmptyOperators."""
    return "\n".join(HEADER) + "\n" + "".join(same_shape_dag(dag) for dag in dags)


def same_shape_dag(dag) -> str:
    """Python source of a DAG with the same schedule, params, tasks and edges, all EmptyOperators."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    schedule = schedule_source(dag.timetable)
    params = {k: dag.params.get_param(k) for k in dag.params}
    param_src = "{" + ", ".join(f"{k!r}: Param({p.value!r}, **{p.schema!r}, description={p.description!r})"
                                for k, p in params.items()) + "}"
    lines = [
        f"with DAG(dag_id={dag.dag_id + '_empty'!r}, schedule={schedule},"
        f" start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False, max_active_runs=1,"
        f" params={param_src}, tags={list(dag.tags)!r}) as dag:",
    ]
    names = {task.task_id: f"t{i}" for i, task in enumerate(dag.tasks)}
    mapped_over = {}
    for task in dag.tasks:
        if hasattr(task, "expand_input"):  # a mapped task: map an EmptyOperator over the same upstream
            refs = [op.task_id for v in task.expand_input.value.values() for op, _ in XComArg.iter_xcom_references(v)]
            mapped_over[task.task_id] = refs[0]
    for task in dag.topological_sort():
        var = names[task.task_id]
        if task.task_id in mapped_over:
            lines.append(f"    {var} = EmptyOperator.partial(task_id={task.task_id!r}, retries=2)"
                         f".expand(doc={names[mapped_over[task.task_id]]}.output)")
        else:
            lines.append(f"    {var} = EmptyOperator(task_id={task.task_id!r}, retries=2)")
    for task in dag.tasks:
        for down in sorted(task.downstream_task_ids):
            lines.append(f"    {names[task.task_id]} >> {names[down]}")
    return "\n".join(lines) + "\n"


def schedule_source(timetable) -> str:
    """Source code for the same schedule: None, a cron string, or cron OR Assets."""
    inner = getattr(timetable, "timetable", None)
    condition = getattr(timetable, "asset_condition", None)
    if inner is not None and condition is not None:
        uris = [a.uri for a in getattr(condition, "objects", [])]
        assets = ", ".join(f"Asset({u!r})" for u in uris)
        return (f"AssetOrTimeSchedule(timetable=CronTriggerTimetable({inner.expression!r}, timezone='UTC'),"
                f" assets=[{assets}])")
    if condition is not None:
        return "[" + ", ".join(f"Asset({a.uri!r})" for a in getattr(condition, "objects", [])) + "]"
    expression = getattr(timetable, "expression", None) or getattr(timetable, "_expression", None)
    return repr(expression)


def time_parse(path: Path, with_plugin: bool) -> float:
    code = TIMER.format(plugins=str(ROOT / "plugins"), path=str(path), with_plugin=with_plugin)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--with-plugin", action="store_true")
    args = parser.parse_args()

    import compileall

    compileall.compile_dir(str(ROOT / "plugins"), quiet=1)
    sys.path.insert(0, str(ROOT / "plugins"))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    results = {}
    files: dict[str, list] = {}
    for dag in bag.dags.values():
        files.setdefault(dag.fileloc, []).append(dag)
    with tempfile.TemporaryDirectory() as tmp:
        for fileloc, dags in sorted(files.items()):
            real = Path(fileloc)
            empty = Path(tmp) / f"{real.stem}_empty.py"
            empty.write_text(same_shape_source(dags))
            real_t, empty_t = [], []
            for _ in range(args.rounds):
                real_t.append(time_parse(real, args.with_plugin))
                empty_t.append(time_parse(empty, args.with_plugin))
            ratio = statistics.median(real_t) / statistics.median(empty_t)
            results[real.name] = {
                "dag_ids": sorted(d.dag_id for d in dags),
                "tasks": sum(len(d.tasks) for d in dags),
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
