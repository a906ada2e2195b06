"""`make demo`: four simulated days of the churn pipeline, told as a story.

    python -m airflow_mlops.demo

Each day is one `airflow dags test churn_retrain <day>` (the real Airflow task runner, no
scheduler needed) on the project-local state in .mlops/; its full log goes to
.mlops/demo/<day>.log and the story line to the terminal:

  day 1  2026-02-10  first champion (NO_BASELINE_PROMOTE)
  day 2  2026-02-11  a challenger that is not significantly better: REJECT, champion kept
  day 3  2026-02-20  a bad batch: validation fails with a clear message, champion kept
  day 4  2026-03-28  the ground truth shifted on 2026-03-01: the retrained challenger wins, PROMOTE
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_mlops import settings

if TYPE_CHECKING:
    from pathlib import Path

DAG_ID = "churn_retrain"
MODEL = "churn_classifier"


@dataclass(frozen=True)
class Day:
    day: str
    story: str
    expect: str  # the verdict the story expects, or FAILED for a stopped run


STORY = (
    Day("2026-02-10", "the first model: no champion yet, the floors alone decide", "NO_BASELINE_PROMOTE"),
    Day("2026-02-11", "one more day of the same data: is the new model really better?", "REJECT"),
    Day("2026-02-20", "a broken batch arrives (nulls, negative tenure, unknown contract type)", "FAILED"),
    Day("2026-03-28", "customers behave differently since 2026-03-01: retrain on the new reality", "PROMOTE"),
)


def reset_state() -> None:
    """Start the story from an empty registry (the Airflow metadata DB is kept)."""
    home = settings.mlops_home()
    for name in ("mlflow.db", "mlartifacts", "snapshots", "demo"):
        path = home / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_day(day: Day, log_dir: Path) -> tuple[bool, Path, float]:
    """One DAG run for the day through the Airflow CLI; True when the run succeeded."""
    log_path = log_dir / f"{day.day}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, f"{day.day}T02:00:00+00:00",
             "-c", f'{{"as_of": "{day.day}"}}'],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(), check=False,
        )
    finished = [line for line in log_path.read_text(errors="replace").splitlines() if "DagRun Finished" in line]
    ok = proc.returncode == 0 and bool(finished) and "state=success" in finished[-1]
    return ok, log_path, time.monotonic() - started


def latest_decision(client) -> tuple[str, str, list[str]]:
    """The newest version's verdict tags: (version, decision, reasons)."""
    import json

    versions = client.search_model_versions(f"name='{MODEL}'")
    if not versions:
        return "", "", []
    newest = max(versions, key=lambda v: int(v.version))
    reasons = newest.tags.get("decision.reasons", "[]")
    try:
        parsed = json.loads(reasons)
    except ValueError:
        parsed = [reasons]
    return str(newest.version), newest.tags.get("decision", ""), parsed


def failure_excerpt(log_path: Path) -> list[str]:
    """The failed task's own message, as the Airflow UI's task log shows it."""
    lines = log_path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if "DataValidationFailed:" in line or "AirflowFailException:" in line:
            block = [line.split(": ", 1)[-1]]
            for more in lines[i + 1 : i + 12]:
                if more.startswith("20") and "[" in more[:40]:
                    break
                block.append(more)
            return block
    return ["(see the log)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-state", action="store_true", help="do not reset the registry first")
    args = parser.parse_args(argv)
    if not args.keep_state:
        reset_state()
    log_dir = settings.mlops_home() / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)

    from airflow_mlops.hooks.mlflow import MlflowHook

    client = MlflowHook().get_conn()
    surprises = 0
    print(f"airflow-mlops demo: {len(STORY)} simulated days of {DAG_ID} (full logs in {log_dir}/)\n", flush=True)
    for n, day in enumerate(STORY, start=1):
        print(f"Day {n}  {day.day}  {day.story}", flush=True)
        before = latest_decision(client)[0]
        ok, log_path, seconds = run_day(day, log_dir)
        version, decision, reasons = latest_decision(client)
        if not ok:
            outcome = "FAILED"
            print(f"        run failed after {seconds:.0f} s, as the data deserved; the champion was not touched:")
            for line in failure_excerpt(log_path):
                print(f"          {line}")
        else:
            outcome = decision if version != before else "(no new version)"
            print(f"        {outcome}: {MODEL} v{version}  ({seconds:.0f} s)")
            for reason in reasons:
                print(f"          - {reason}")
        if outcome != day.expect:
            surprises += 1
            print(f"        !! expected {day.expect}, got {outcome} (log: {log_path})")
        print(flush=True)

    from airflow_mlops import cli

    print("Where things stand (airflow-mlops status):", flush=True)
    cli.main(["status"])
    print("\nLedger of alias moves:    .venv/bin/airflow-mlops history churn_classifier")
    print("MLflow UI (runs, plots):  make mlflow-ui   -> http://127.0.0.1:5000")
    print("Airflow UI (the DAGs):    make airflow     -> http://localhost:8080")
    print("Replay a day:             make dag-test DAG=churn_retrain CONF='{\"as_of\": \"2026-02-12\"}'")
    return 1 if surprises else 0


if __name__ == "__main__":
    raise SystemExit(main())
