"""The nightly retraining DAG at 1M rows: dag.test() vs the same core calls in a plain script.

Goal: ratio <= 1.3 (what Airflow adds on top of the work: task runner, XCom, the operators).
Both run in a fresh interpreter with a fresh MLflow store on the same 1M-row Parquet source
(28 days of the churn stream), one after the other in this run:

  script   core.data / validation / training / registry / evaluation / deploy, called in order
  dag      churn_retrain via dag.test() (the real Airflow task runner, SQLite metadata DB)

    python benchmarks/nightly_dag_1m.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-01-28"

SCRIPT = r"""
import datetime as dt, json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {plugins!r})
from mlflow import MlflowClient
from airflow_mlops import settings
from airflow_mlops.core import data, deploy, evaluation, registry, rows, training, validation
from airflow_mlops.core.config import load_config

t0 = time.perf_counter()
config = load_config({config!r})
client = MlflowClient(settings.default_tracking_uri(), settings.default_tracking_uri())
snap = data.take_snapshot(config, source={source!r}, window_end=dt.date.fromisoformat({as_of!r}))
frame = data.read_snapshot(snap["uri"])
report = validation.validate_frame(frame, config.resolve(config.expectation_suite), data_name=config.name)
assert report.success, validation.describe_failures(report)
with tempfile.TemporaryDirectory() as tmp:
    docs = validation.write_data_docs(report, Path(tmp))
    validation.log_validation_to_mlflow(report, docs.parent, client=client, experiment=config.name,
                                        run_name="validate", tags={{}})
training.check_training_data(frame, config)
split = rows.split_roles(frame, config)
results = [training.train_candidate(split, config, c.name, client=client, experiment=config.name,
                                    data_digest=snap["digest"], data_uri=snap["uri"], tags={{}})
           for c in config.candidates]
best = training.select_best(results, config)
version = registry.register_challenger(client, config.model_name, best["model_uri"], best["run_id"],
                                       tags={{"data.digest": snap["digest"]}})
result = evaluation.evaluate(client, config, split.test, challenger_uri=f"models:/{{config.model_name}}/{{version['version']}}",
                             champion_uri=None)
evaluation.log_evaluation(client, result, experiment=config.name, run_name="evaluate", tags={{}},
                          model_name=config.model_name, challenger_version=version["version"], champion_version=None)
registry.promote(client, config.model_name, version["version"], expected_champion=None,
                 actor={{"who": "benchmark"}}, reason="benchmark")
deploy.smoke_test(client, config.model_name, frame.head(config.deployment.smoke_rows), config)
print(json.dumps({{"seconds": time.perf_counter() - t0, "decision": result.verdict.decision}}))
"""

DAG = r"""
import datetime as dt, json, sys, time
sys.path.insert(0, {plugins!r})
from airflow.utils import db
from airflow.models.pool import Pool
db.resetdb()
Pool.create_or_update_pool("mlops_promotion", 1, "", include_deferred=False)
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder={dags!r}).get_dag("churn_retrain")
import logging
logging.disable(logging.INFO)
t0 = time.perf_counter()
run = dag.test(logical_date=dt.datetime.fromisoformat({as_of!r} + "T02:00:00+00:00"),
               run_conf={{"source": {source!r}, "as_of": {as_of!r}}})
seconds = time.perf_counter() - t0
failed = [ti.task_id for ti in run.get_task_instances() if str(ti.state) not in ("success", "skipped")]
print(json.dumps({{"seconds": seconds, "state": str(run.state), "failed": failed}}))
"""


def make_source(out: Path, rows: int) -> Path:
    spec = importlib.util.spec_from_file_location("churn_stream", ROOT / "include" / "churn_stream.py")
    stream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stream)
    import pandas as pd

    per_day = rows // 28
    start = dt.date.fromisoformat(AS_OF) - dt.timedelta(days=27)
    frame = pd.concat(
        [stream.daily_batch(start + dt.timedelta(days=i), rows=per_day) for i in range(28)], ignore_index=True
    )
    path = out / "churn_1m.parquet"
    frame.to_parquet(path, index=False)
    return path


def run(code: str, home: Path) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_MLOPS_HOME": str(home / "mlops"),
        "AIRFLOW_MLOPS_DATA_ROOTS": str(home.parent),  # the source is a temporary file next to the homes
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
    }
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        source = make_source(tmp_path, args.rows)
        print(
            f"source: {args.rows:,} rows -> {source.name} ({source.stat().st_size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        fmt = {
            "plugins": str(ROOT / "plugins"),
            "config": str(ROOT / "include" / "pipelines" / "churn.yaml"),
            "dags": str(ROOT / "dags"),
            "source": str(source),
            "as_of": AS_OF,
        }
        script = run(SCRIPT.format(**fmt), tmp_path / "script")
        print(f"plain script : {script['seconds']:7.1f} s  ({script['decision']})", flush=True)
        dag = run(DAG.format(**fmt), tmp_path / "dag")
        print(f"dag.test()   : {dag['seconds']:7.1f} s  (state {dag['state']}, failed: {dag['failed'] or 'none'})")
        ratio = dag["seconds"] / script["seconds"]
        print(f"ratio dag/script = {ratio:.3f} (goal <= 1.3): {'ok' if ratio <= 1.3 else 'MISSED'}")


if __name__ == "__main__":
    main()
