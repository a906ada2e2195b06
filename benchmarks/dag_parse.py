"""DAG parse cost: each dags/ file vs a file of same-shape DAGs of EmptyOperators, side by side.

Goal: ratio <= 1.2. The baseline holds, for every DAG the file builds (dags/pipelines.py builds
two to four per pipeline YAML), one with the same schedule, params, docs, tasks, edges and mapping,
every task an EmptyOperator. Our modules are byte-compiled first, as in a deployment.

Sampling: like Airflow's DAG processor, one parent process imports what the processor's manager has
(and pre-imports the airflow.* modules both files name, `[dag_processor] parsing_pre_import_modules`),
then forks one child per sample, which times one parse of one file. Real and baseline samples
alternate, a fraction of a second apart, so the ratio is the median of the rounds' own ratios
(real / baseline); the ratio of the medians is printed too. `--fresh`: one fresh interpreter per
sample instead (the method of the results before 2026-12-01's eighth session; ~1.5 s a sample).

Two modes:
- default: times one import of the file (runpy), including the import of our modules, in an
  interpreter that has imported airflow.sdk and the airflow.* modules the files name
  (--with-plugin: and the plugin, as in a DAG processor that has serialized a DAG before).
- --processor: what the DAG processor's child does per file, parse (BundleDagBag) + serialize
  every DAG (which loads the plugins), after the manager's imports and pre-imports: the duration
  Airflow reports as the file's processing time.

`--instructions`: instead of timing, count the instructions of one parse of each file with valgrind's callgrind
(needs valgrind and gcc): the same count run after run, whatever else the machine is doing; ~1 minute.

    python benchmarks/dag_parse.py [--rounds 201] [--with-plugin | --processor] [--fresh | --instructions]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"

SAMPLER = """
import importlib, json, os, sys, time, traceback
from pathlib import Path
sys.path.insert(0, {plugins!r})
paths, rounds, n_dags, processor_mode, fork = {paths!r}, {rounds!r}, {n_dags!r}, {processor!r}, {fork!r}
measured, toggle = {measured!r} or paths, {toggle!r}
if toggle:  # --instructions: callgrind counts the instructions between cg_start() and cg_stop()
    import ctypes
    callgrind = ctypes.CDLL(toggle)
if processor_mode:
    import structlog
    import airflow.dag_processing.manager
    from airflow.dag_processing import processor
    log = structlog.get_logger()
    for path in paths:  # the manager pre-imports what each file names, and keeps it
        processor._pre_import_airflow_modules(path, log)
else:
    import runpy
    import airflow.sdk
    from airflow.utils.file import iter_airflow_imports
    for path in paths:
        for module in iter_airflow_imports(path):
            importlib.import_module(module)
    if {with_plugin!r}:
        import airflow_mlops.plugin


def parse(path):
    if not processor_mode:
        toggle and callgrind.cg_start()
        t0 = time.perf_counter()
        runpy.run_path(path)
        elapsed = time.perf_counter() - t0
        toggle and callgrind.cg_stop()
        return elapsed
    os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "client"
    request = processor.DagFileParseRequest(
        file=path, bundle_path=Path(path).parent, bundle_name="dags-folder", callback_requests=[])
    toggle and callgrind.cg_start()
    t0 = time.perf_counter()
    result = processor._parse_file(request, log)
    elapsed = time.perf_counter() - t0
    toggle and callgrind.cg_stop()
    assert not result.import_errors, result.import_errors
    assert len(result.serialized_dags) == n_dags, len(result.serialized_dags)
    return elapsed


def sample(path):
    if not fork:  # --fresh: this interpreter parses the file itself
        return parse(path)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one parse of one file, as the DAG processor forks one per file
        os.close(read)
        try:
            os.write(write, repr(parse(path)).encode())
        except BaseException:
            os.write(write, ("ERROR " + traceback.format_exc()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        out = pipe.read()
    os.waitpid(pid, 0)
    if not out or out.startswith("ERROR"):
        sys.exit(f"parse of {{path}} failed: {{out}}")
    return float(out)


print(json.dumps([[sample(path) for path in measured] for _ in range(rounds)]))
"""

HEADER = [
    "import datetime",
    "from datetime import timezone",
    "from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param",
    "from airflow.providers.standard.operators.empty import EmptyOperator",
]


def same_shape_source(dags: list) -> str:
    """Python source of a file with, for each of `dags`, a DAG of the same shape made of EmptyOperators."""
    return "\n".join(HEADER) + "\n" + "".join(same_shape_dag(dag) for dag in dags)


def same_shape_dag(dag) -> str:
    """Python source of a DAG with the same schedule, params, docs, retry policy, tasks, edges and outlets (Assets),
    all EmptyOperators. What is ours stays out: callbacks, template fields, extra links."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    schedule = schedule_source(dag.timetable)
    params = {k: dag.params.get_param(k) for k in dag.params}
    param_src = (
        "{"
        + ", ".join(
            f"{k!r}: Param({p.value!r}, **{p.schema!r}, description={p.description!r})" for k, p in params.items()
        )
        + "}"
    )
    default_args = {k: v for k, v in dag.default_args.items() if not callable(v) and not isinstance(v, list)}
    lines = [
        f"with DAG(dag_id={dag.dag_id + '_empty'!r}, schedule={schedule},"
        f" start_date=datetime.datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False, max_active_runs=1,"
        f" params={param_src}, tags={list(dag.tags)!r}, description={dag.description!r}, doc_md={dag.doc_md!r},"
        f" default_args={default_args!r}) as dag:",
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
            lines.append(
                f"    {var} = EmptyOperator.partial({task_args(task)})"
                f".expand(doc={names[mapped_over[task.task_id]]}.output)"
            )
        else:
            lines.append(f"    {var} = EmptyOperator({task_args(task)})")
    for task in dag.tasks:
        for down in sorted(task.downstream_task_ids):
            lines.append(f"    {names[task.task_id]} >> {names[down]}")
    return "\n".join(lines) + "\n"


def task_args(task) -> str:
    """The EmptyOperator's arguments: the same task id, retries and outlets."""
    outlets = ", ".join(f"Asset({a.uri!r})" for a in getattr(task, "outlets", None) or [])
    return f"task_id={task.task_id!r}, retries={task.retries!r}" + (f", outlets=[{outlets}]" if outlets else "")


def schedule_source(timetable) -> str:
    """Source code for the same schedule: None, a cron string, or cron OR Assets."""
    inner = getattr(timetable, "timetable", None)
    condition = getattr(timetable, "asset_condition", None)
    if inner is not None and condition is not None:
        uris = [a.uri for a in getattr(condition, "objects", [])]
        assets = ", ".join(f"Asset({u!r})" for u in uris)
        return (
            f"AssetOrTimeSchedule(timetable=CronTriggerTimetable({inner.expression!r}, timezone='UTC'),"
            f" assets=[{assets}])"
        )
    if condition is not None:
        return "[" + ", ".join(f"Asset({a.uri!r})" for a in getattr(condition, "objects", [])) + "]"
    expression = getattr(timetable, "expression", None) or getattr(timetable, "_expression", None)
    return repr(expression)


def sampler(
    paths: list[Path],
    rounds: int,
    *,
    fork: bool,
    measured: list[Path] | None = None,
    toggle: str | None = None,
    under: tuple[str, ...] = (),
    **fields,
) -> subprocess.CompletedProcess:
    """Run SAMPLER in a fresh interpreter (`under` a command such as valgrind): it pre-imports what each of `paths`
    names, then parses each of `measured` (default: `paths`) once per round."""
    code = SAMPLER.format(
        plugins=str(ROOT / "plugins"),
        paths=[str(p) for p in paths],
        rounds=rounds,
        fork=fork,
        measured=[str(p) for p in measured or []],
        toggle=toggle,
        **fields,
    )
    return subprocess.run(
        [*under, sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}
    )


def run_sampler(paths: list[Path], rounds: int, *, fork: bool, **fields) -> list[list[float]]:
    """Per round, the seconds of one parse of each of `paths`, timed by SAMPLER in a fresh interpreter."""
    out = sampler(paths, rounds, fork=fork, **fields)
    if out.returncode:
        sys.exit(f"sampling {[p.name for p in paths]} failed:\n{out.stderr[-5000:]}\n{out.stdout[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_samples(real: Path, empty: Path, rounds: int, **fields) -> tuple[list, list]:
    """(real, baseline) seconds, one fresh interpreter per sample, alternating."""
    real_t, empty_t = [], []
    for _ in range(rounds):
        for path, samples in ((real, real_t), (empty, empty_t)):
            samples.append(run_sampler([path], 1, fork=False, **fields)[0][0])
    return real_t, empty_t


def forked_samples(real: Path, empty: Path, rounds: int, **fields) -> tuple[list, list]:
    """(real, baseline) seconds, one forked child per sample of one prepared parent, alternating."""
    pairs = run_sampler([real, empty], rounds, fork=True, **fields)
    return [r for r, _ in pairs], [e for _, e in pairs]


CALLGRIND_TOGGLE = """
#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void cg_stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_STOP_INSTRUMENTATION; }
"""


def instruction_counts(real: Path, empty: Path, tmp: str, **fields) -> tuple[int, int]:
    """(real, baseline) instructions of one parse each, counted by valgrind's callgrind: the same count run after
    run (PYTHONHASHSEED fixed), whatever else the machine is doing. The interpreter runs uninstrumented until the
    parse starts (a small C library toggles callgrind around it, built here with gcc from valgrind's header)."""
    library = Path(tmp) / "libcgtoggle.so"
    source = library.with_suffix(".c")
    source.write_text(CALLGRIND_TOGGLE)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(source)], check=True)
    counts = []
    for path in (real, empty):
        out = sampler(
            [real, empty],
            1,
            fork=False,
            measured=[path],
            toggle=str(library),
            under=(
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                "--collect-atstart=no",
                f"--callgrind-out-file={tmp}/callgrind.%p",
            ),
            **fields,
        )
        collected = re.search(r"Collected : (\d+)", out.stderr)
        if out.returncode or not collected:
            sys.exit(f"callgrind run of {path.name} failed:\n{out.stderr[-3000:]}")
        counts.append(int(collected.group(1)))
    return counts[0], counts[1]


def median_interval(values: list[float], confidence: float = 0.95, resamples: int = 2000) -> tuple[float, float]:
    """A percentile bootstrap interval of the median of `values` (seeded): how far the reading could move."""
    import random

    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    tail = int(resamples * (1 - confidence) / 2)
    return medians[tail], medians[-tail - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, help="default 201 forked, 31 --fresh")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--with-plugin", action="store_true", help="default mode, with the plugin already loaded")
    mode.add_argument("--processor", action="store_true", help="time the DAG processor's parse + serialize")
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--fresh", action="store_true", help="a fresh interpreter per sample instead of a fork")
    sampling.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions (valgrind's callgrind, one parse each) instead of timing",
    )
    args = parser.parse_args()
    rounds = args.rounds or (31 if args.fresh else 201)
    collect = fresh_samples if args.fresh else forked_samples
    label = (" (DAG processor: parse + serialize)" if args.processor else "") + (" (fresh)" if args.fresh else "")

    import compileall

    compileall.compile_dir(str(ROOT / "plugins"), quiet=1)
    sys.path.insert(0, str(ROOT / "plugins"))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    results: dict[str, dict] = {}
    files: dict[str, list] = {}
    for dag in bag.dags.values():
        files.setdefault(dag.fileloc, []).append(dag)
    with tempfile.TemporaryDirectory() as tmp:
        for fileloc, dags in sorted(files.items()):
            real = Path(fileloc)
            empty = Path(tmp) / f"{real.stem}_empty.py"
            empty.write_text(same_shape_source(dags))
            fields = {"processor": args.processor, "with_plugin": args.with_plugin, "n_dags": len(dags)}
            shape = {"dag_ids": sorted(d.dag_id for d in dags), "tasks": sum(len(d.tasks) for d in dags)}
            if args.instructions:
                ours, baseline = instruction_counts(real, empty, tmp, **fields)
                results[real.name] = {
                    **shape,
                    "instructions": ours,
                    "empty_instructions": baseline,
                    "ratio": round(ours / baseline, 3),
                    "goal": "<= 1.2",
                    "ok": ours / baseline <= 1.2,
                }
                print(
                    f"{real.name:32s} {ours / 1e6:8.1f} M instructions vs EmptyOperator DAG {baseline / 1e6:8.1f} M "
                    f"-> ratio {ours / baseline:.3f} (goal <= 1.2) (callgrind){label}"
                )
                continue
            real_t, empty_t = collect(real, empty, rounds, **fields)
            # Each round's two samples ran moments apart: their ratio cancels the slow and fast phases of a shared
            # machine, which move the medians of either side by 20% between runs here.
            ratios = [r / e for r, e in zip(real_t, empty_t, strict=True)]
            paired, (low, high) = statistics.median(ratios), median_interval(ratios)
            ratio_of_medians = statistics.median(real_t) / statistics.median(empty_t)
            results[real.name] = {
                **shape,
                "rounds": rounds,
                "sampling": "fresh interpreters" if args.fresh else "forked from one parent",
                "median_ms": round(statistics.median(real_t) * 1000, 2),
                "empty_median_ms": round(statistics.median(empty_t) * 1000, 2),
                "ratio": round(paired, 3),
                "ratio_95": [round(low, 3), round(high, 3)],
                "ratio_of_medians": round(ratio_of_medians, 3),
                "goal": "<= 1.2",
                "ok": paired <= 1.2,
            }
            print(
                f"{real.name:32s} {results[real.name]['median_ms']:8.2f} ms vs EmptyOperator DAG "
                f"{results[real.name]['empty_median_ms']:8.2f} ms -> ratio {paired:.3f} (median of the rounds' "
                f"ratios, 95% interval {low:.3f}-{high:.3f}; of the medians {ratio_of_medians:.3f}) (goal <= 1.2)"
                f"{label}"
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
