"""`make demo`: the churn pipeline's life over simulated days, told as a story.

    python -m airflow_mlops.demo

Days 1-3 are each one `airflow dags test churn_retrain <day>` (the real Airflow task runner, no
scheduler needed) on the project-local state in .mlops/; day 4 starts Airflow's scheduler,
triggerer, dag-processor and API server (LocalExecutor, the same SQLite DB) because only the
scheduler turns an Asset event into a DAG run. Full logs go to .mlops/demo/, the story line to
the terminal:

  day 1  2026-02-10  first champion (NO_BASELINE_PROMOTE)
  day 2  2026-02-11  a challenger that is not significantly better: REJECT, champion kept
  day 3  2026-02-20  a bad batch: validation fails with a clear message, champion kept
  day 4  2026-03-27  the ground truth shifted on 2026-03-01: the drift monitor sees drift (1 check) ...
         2026-03-28  ... confirmed the next day: it emits mlops://churn/retrain-request, the scheduler
                     starts churn_retrain, and the retrained challenger wins: PROMOTE (trigger: drift)

The alerts the config routes to e-mail (a failed run, a new champion, drift confirmed) go to a
real SMTP server on loopback that the demo starts as `smtp_default`; each day shows what arrived.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
)
DRIFT_CHECKS = ("2026-03-27", "2026-03-28")  # the monitor's windows; the second confirms the drift
MONITOR_ID = "churn_drift_monitor"


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


class Inbox:
    """A real SMTP server on loopback standing in for the team's mail server: the pipeline's alerts
    (routed to `smtp_default` by include/pipelines/churn.yaml) land here and in .mlops/demo/mail/."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.subjects: list[str] = []
        self.shown = 0
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's handler hook
        import email
        from email import policy

        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.subjects.append(str(message["subject"]))
        (self.folder / f"{len(self.subjects):02d}.eml").write_bytes(envelope.content)
        return "250 Message accepted for delivery"

    def start(self) -> bool:
        """Listen, and point smtp_default at it (unless the user defined their own); False when it cannot."""
        import json
        import socket

        if os.environ.get("AIRFLOW_CONN_SMTP_DEFAULT"):
            return False
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.eml"):
            old.unlink()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        import logging

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd narrates every SMTP command at INFO
        self._controller = Controller(self, hostname="127.0.0.1", port=port)
        self._controller.start()
        extra = {"disable_tls": True, "disable_ssl": True, "timeout": 10, "from_email": "airflow-mlops@localhost"}
        os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
            {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": extra}
        )
        return True

    def print_new(self) -> None:
        for subject in self.subjects[self.shown :]:
            print(f"        e-mail: {subject}")
        self.shown = len(self.subjects)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()


def drift_day(n: int, client, log_dir: Path) -> int:
    """The drift path through the real scheduler: monitor -> retrain request (Asset) -> retrain. Surprises."""
    from airflow_mlops.stack import manager
    from airflow_mlops.stack.api import AirflowApi
    from airflow_mlops.stack.components import StackSettings, load_secrets

    print(f"Day {n}  {DRIFT_CHECKS[0]}  customers behave differently since 2026-03-01: does the drift monitor notice?")
    stack = StackSettings.from_env("local", home=settings.mlops_home())
    with (log_dir / "stack.log").open("w") as stack_log:
        def note(line: str) -> None:
            print(line, file=stack_log, flush=True)

        print("        starting Airflow's scheduler, triggerer, dag-processor and API server (LocalExecutor) ...",
              flush=True)
        manager.up(stack, log=note, timeout=600)
        try:
            return _drift_story(client, AirflowApi(stack.api_url, "admin", load_secrets(stack)["AIRFLOW_ADMIN_PASSWORD"]))
        finally:
            manager.down(stack, log=note)


def _drift_story(client, api) -> int:
    surprises = 0
    for dag_id in (MONITOR_ID, DAG_ID):
        api.wait_for_dag(dag_id)
        api.unpause_skipping_missed_run(dag_id)
    known = {r["dag_run_id"] for r in api.dag_runs(DAG_ID)}
    for day in DRIFT_CHECKS:
        started = time.monotonic()
        run_id = api.trigger(MONITOR_ID, {"as_of": day})
        state = api.wait_for_run(MONITOR_ID, run_id, timeout=900)["state"]
        if state != "success":
            print(f"        !! {MONITOR_ID} {day} ended {state} (task logs: .mlops/airflow/logs/dag_id={MONITOR_ID}/)")
            return surprises + 1
        check = api.xcom(MONITOR_ID, run_id, "check_drift")
        print(f"        {day} {MONITOR_ID}: {check['summary']} ({time.monotonic() - started:.0f} s)")
        print(f"          retrain {'REQUESTED' if check['requested'] else 'not requested'}: {check['reason']}", flush=True)
    if not check["requested"]:
        print("        !! expected the second drift check to request a retrain")
        return surprises + 1
    started = time.monotonic()
    retrain = api.wait_for_new_run(DAG_ID, known, run_type="asset_triggered", timeout=300)
    print(f"        the scheduler started {DAG_ID} from the Asset event: {retrain['dag_run_id']}", flush=True)
    state = api.wait_for_run(DAG_ID, retrain["dag_run_id"], timeout=1800)["state"]
    version, decision, reasons = latest_decision(client)
    trigger = client.get_model_version(MODEL, version).tags.get("mlops.trigger") if version else None
    print(f"        {decision or state}: {MODEL} v{version}, trigger {trigger}  ({time.monotonic() - started:.0f} s)")
    for reason in reasons:
        print(f"          - {reason}")
    if state != "success" or decision != "PROMOTE" or trigger != "drift":
        surprises += 1
        print(f"        !! expected a drift-triggered PROMOTE, got {decision or state} (trigger {trigger})")
    print(flush=True)
    return surprises


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
    inbox = Inbox(log_dir / "mail")
    try:
        return _story(client, log_dir, inbox if inbox.start() else None)
    finally:
        inbox.stop()


def _story(client: Any, log_dir: Path, inbox: Inbox | None) -> int:
    surprises = 0
    print(f"airflow-mlops demo: {len(STORY)} days of {DAG_ID}, then a drift the monitor has to notice "
          f"(full logs in {log_dir}/)\n", flush=True)
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
        if inbox is not None:
            inbox.print_new()
        print(flush=True)

    surprises += drift_day(len(STORY) + 1, client, log_dir)
    if inbox is not None:
        inbox.print_new()
        print(f"\nAlerts: {len(inbox.subjects)} e-mail(s) reached the demo's local SMTP server (standing in for "
              f"smtp_default): {inbox.folder}/*.eml\n")

    from airflow_mlops import cli

    print("Where things stand (airflow-mlops status):", flush=True)
    cli.main(["status"])
    print("\nLedger of alias moves:    .venv/bin/airflow-mlops history churn_classifier")
    print("MLflow UI (runs, plots):  make mlflow-ui   -> http://127.0.0.1:5000")
    print("Airflow UI (the DAGs):    make airflow     -> http://localhost:8080")
    print("Re-check a verdict:       .venv/bin/airflow-mlops audit churn_classifier 2")
    print("Replay a day:             make dag-test DAG=churn_retrain CONF='{\"as_of\": \"2026-02-12\"}'")
    print("The second pipeline:      make dag-test DAG=diabetes_retrain   (regression, include/pipelines/diabetes.yaml)")
    print("Add your own model:       .venv/bin/airflow-mlops init NAME --source FILE --target COLUMN")
    return 1 if surprises else 0


if __name__ == "__main__":
    raise SystemExit(main())
