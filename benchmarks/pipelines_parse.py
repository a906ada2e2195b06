"""dags/ parse time with 10 pipeline YAMLs vs with 1, side by side.

Goal: <= 10x (the per-pipeline cost does not grow with the number of pipelines). Two project roots
are made in a temporary folder: one with include/pipelines/p0.yaml, one with p0..p9.yaml (copies of
churn.yaml under their own pipeline and model names, each with its suite). Each sample is a fresh
interpreter that has imported airflow.sdk, then times `runpy.run_path` of every file in dags/
(pipelines.py builds the DAGs, pipeline_errors.py re-reads the YAMLs to report broken ones), with
$AIRFLOW_MLOPS_PROJECT_ROOT pointing at the root. One- and ten-pipeline samples alternate; medians.

    python benchmarks/pipelines_parse.py [--rounds 21] [--pipelines 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

TIMER = """
import sys, time, runpy, pathlib
sys.path.insert(0, {plugins!r})
import airflow.sdk
t0 = time.perf_counter()
dags = {{}}
for path in sorted(pathlib.Path({dags!r}).glob("*.py")):
    dags.update({{k: v for k, v in runpy.run_path(str(path)).items() if type(v).__name__ == "DAG"}})
print(time.perf_counter() - t0, len(dags))
"""


def make_project(folder: Path, count: int) -> Path:
    """A project root with `count` pipelines p0..p<count-1>, copies of churn.yaml under their own names."""
    base = yaml.safe_load((ROOT / "include" / "pipelines" / "churn.yaml").read_text())
    (folder / "include" / "pipelines").mkdir(parents=True)
    shutil.copytree(ROOT / "include" / "expectations", folder / "include" / "expectations")
    for i in range(count):
        config = {**base, "pipeline": f"p{i}", "model": {**base["model"], "name": f"p{i}_model"}}
        (folder / "include" / "pipelines" / f"p{i}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def time_parse(root: Path) -> tuple[float, int]:
    code = TIMER.format(plugins=str(ROOT / "plugins"), dags=str(ROOT / "dags"))
    env = {**os.environ, "AIRFLOW_MLOPS_PROJECT_ROOT": str(root)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    seconds, dags = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), int(dags)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--pipelines", type=int, default=10)
    args = parser.parse_args()

    import compileall

    compileall.compile_dir(str(ROOT / "plugins"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        one = make_project(Path(tmp) / "one", 1)
        many = make_project(Path(tmp) / "many", args.pipelines)
        one_t, many_t = [], []
        for _ in range(args.rounds):
            seconds, one_dags = time_parse(one)
            one_t.append(seconds)
            seconds, many_dags = time_parse(many)
            many_t.append(seconds)
    ratio = statistics.median(many_t) / statistics.median(one_t)
    result = {
        "one_pipeline": {"dags": one_dags, "median_ms": round(statistics.median(one_t) * 1000, 2)},
        f"{args.pipelines}_pipelines": {"dags": many_dags, "median_ms": round(statistics.median(many_t) * 1000, 2)},
        "ratio": round(ratio, 3),
        "goal": f"<= {args.pipelines}",
        "ok": ratio <= args.pipelines,
    }
    print(
        f"dags/ with 1 pipeline ({one_dags} DAGs): {result['one_pipeline']['median_ms']:.2f} ms; with "
        f"{args.pipelines} ({many_dags} DAGs): {result[f'{args.pipelines}_pipelines']['median_ms']:.2f} ms -> "
        f"ratio {ratio:.2f} (goal <= {args.pipelines})"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
