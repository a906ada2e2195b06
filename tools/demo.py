"""`make demo`: the churn pipeline's life over simulated days, told as a story.

    python -m tools.demo

Days 1-4 are each one `airflow dags test churn_retrain <day>` (the real Airflow task runner, no
scheduler needed) on the project-local state in .mlops/; days 5-7 start Airflow's scheduler,
triggerer, dag-processor and API server (LocalExecutor, the same SQLite DB) because only the
scheduler turns a monitor's Asset event into a DAG run, and a person answers through the API server.
Full logs go to .mlops/demo/, the story line to the terminal:

  day 1  2026-02-10  first champion (NO_BASELINE_PROMOTE)
  day 2  2026-02-11  a challenger that is not significantly better: REJECT, champion kept
  day 3  2026-02-20  a bad batch: validation fails with a clear message, champion kept
  day 4  2026-03-27  a retrain under churn_reexport, on a warehouse re-export in which a bug inverted the
                     north region's churn flags on 03-11..03-20: the challenger beats the stale champion
                     overall (the data drifted on 03-01) but is worse in the north; the slice guard
                     (evaluation.slices) names region=north: REJECT, champion kept
  day 5  2026-03-27  the ground truth shifted on 2026-03-01: the drift monitor sees drift (1 check) ...
         2026-03-28  ... confirmed the next day: it emits mlops://churn/retrain-request, the scheduler
                     starts churn_retrain, and the retrained challenger wins: PROMOTE (trigger: drift)
  day 6  2026-04-12  the relationship alone shifted on 2026-04-01 (concept drift): churn_scoring scores
                     04-12 and 04-13 with the champion; the drift monitor sees nothing ...
         2026-04-19  ... churn_performance_monitor judges the labels of 04-12 a week later: realized
                     ROC AUC below the champion's promise (decay, 1 day of the 2 needed) ...
         2026-04-20  ... and of 04-13: decay confirmed, a retrain request with trigger `performance`; the
                     scheduler starts churn_retrain on the data up to 04-13: PROMOTE (trigger: performance)
  day 7  2026-04-15  a retrain under churn_reviewed (evaluation.approval: borderline, band 0.01): a real but
                     thin gain (the interval's lower bound within the band of zero) waits for a person in
                     Required Actions; the demo approves as admin through the REST API: PROMOTE, and the
                     ledger names airflow-user:admin

Day 4's re-export is data/churn_reexport (include/churn_stream.py --flipped-labels); on fresh rows of the
same days (84,000, other seeds) its challenger is better overall (+0.017 ROC AUC) and worse in the north
(-0.04), the gate's own 2,800 test rows (a week, split.test_days: 7) show +0.019 and -0.062. The
robustness panel rejects it too (its boosted trees break the declared monotonic monthly_charges: the
inverted flags taught them the opposite).

The champion scores from 2026-04-12 on, 11 days into the shift. Judged from 04-01 on, it would have
been caught on 04-02's labels, when a retrain's window holds too few labelled days of the new
relationship to win: the gate rejects it, and the monitor asks again each time its 24 h cool-down
(wall-clock time) has passed, until a retrain wins. A replay that lasts minutes cannot wait for that.

The alerts the config routes to e-mail (a failed run, a new champion, drift confirmed, performance
decay) go to a real SMTP server on loopback that the demo starts as `smtp_default`; each day shows
what arrived.
"""

from __future__ import annotations

import argparse
import json
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
    config: str | None = None  # a variant of churn (include/pipelines/<config>.yaml): churn_retrain's `config` param
    names: str | None = None  # words a FAIL reason of the verdict must hold (e.g. the slice it names)


STORY = (
    Day("2026-02-10", "the first model: no champion yet, the floors alone decide", "NO_BASELINE_PROMOTE"),
    Day("2026-02-11", "one more day of the same data: is the new model really better?", "REJECT"),
    Day("2026-02-20", "a broken batch arrives (nulls, negative tenure, unknown contract type)", "FAILED"),
    Day(
        "2026-03-27",
        "a retrain on the warehouse's re-export (churn_reexport), in which a bug inverted the north region's "
        "churn flags on 03-11..03-20: better overall, but in the north?",
        "REJECT",
        config="churn_reexport",
        names="region=north",
    ),
)
DRIFT_CHECKS = ("2026-03-27", "2026-03-28")  # the monitor's windows; the second confirms the drift
MONITOR_ID = "churn_drift_monitor"
CONCEPT_SHIFT = "2026-04-01"  # the stream's --concept-drift-from (Makefile): a new reason to leave, no input moves
SCORED_DAYS = ("2026-04-12", "2026-04-13")  # scored by the champion; judged once their labels arrive
SCORING_ID = "churn_scoring"
PERFORMANCE_ID = "churn_performance_monitor"
REVIEWED_DAY = "2026-04-15"  # two days after the performance retrain's data: a real gain, but a thin one
REVIEWED_CONFIG = "churn_reviewed"  # include/pipelines/churn_reviewed.yaml: evaluation.approval borderline
REVIEWER_COMMENT = "Checked the evidence: the gain holds on the newest days and no guard rail is near its limit."


def reset_state() -> None:
    """Start the story from an empty registry (the Airflow metadata DB is kept)."""
    home = settings.mlops_home()
    for name in ("mlflow.db", "mlartifacts", "snapshots", "predictions", "demo"):
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
            [
                sys.executable,
                "-m",
                "airflow",
                "dags",
                "test",
                DAG_ID,
                f"{day.day}T02:00:00+00:00",
                "-c",
                json.dumps({"as_of": day.day, **({"config": day.config} if day.config else {})}),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            check=False,
        )
    finished = [line for line in log_path.read_text(errors="replace").splitlines() if "DagRun Finished" in line]
    ok = proc.returncode == 0 and bool(finished) and "state=success" in finished[-1]
    return ok, log_path, time.monotonic() - started


def latest_decision(client) -> tuple[str, str, list[str]]:
    """The newest version's verdict tags: (version, decision, reasons)."""
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

    def wait_for(self, words: str, timeout: float = 20.0) -> None:
        """Until a new e-mail's subject holds `words` (a task's callback may still be sending it), at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while not any(words in s for s in self.subjects[self.shown :]) and time.monotonic() < deadline:
            time.sleep(0.5)

    def print_new(self) -> None:
        for subject in self.subjects[self.shown :]:
            print(f"        e-mail: {subject}")
        self.shown = len(self.subjects)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()


def stack_days(n: int, client, log_dir: Path, inbox: Inbox | None) -> int:
    """The monitors through the real scheduler: a monitor -> retrain request (Asset) -> retrain. Surprises.

    Day n: the data drifts and the drift monitor asks; day n + 1: the concept drifts and only the performance
    monitor, on the delayed labels, can see it.
    """
    from tools.stack import manager
    from tools.stack.api import AirflowApi
    from tools.stack.components import StackSettings, load_secrets

    print(f"Day {n}  {DRIFT_CHECKS[0]}  customers behave differently since 2026-03-01: does the drift monitor notice?")
    stack = StackSettings.from_env("local", home=settings.mlops_home())
    with (log_dir / "stack.log").open("w") as stack_log:

        def note(line: str) -> None:
            print(line, file=stack_log, flush=True)

        print(
            "        starting Airflow's scheduler, triggerer, dag-processor and API server (LocalExecutor) ...",
            flush=True,
        )
        manager.up(stack, log=note, timeout=600)
        try:
            api = AirflowApi(stack.api_url, "admin", load_secrets(stack)["AIRFLOW_ADMIN_PASSWORD"])
            surprises = _drift_story(client, api)
            _show_mail(inbox, "new champion")
            print(flush=True)
            if surprises:
                print(f"Day {n + 1}  skipped: it starts from the champion day {n} should have made\n")
                return surprises
            print(
                f"Day {n + 1}  {SCORED_DAYS[0]}  since {CONCEPT_SHIFT} customers leave for a new reason, yet "
                f"every input looks the same: who notices?",
                flush=True,
            )
            surprises += _concept_story(client, api)
            _show_mail(inbox, "new champion")
            print(flush=True)
            if surprises:
                return surprises
            print(
                f"Day {n + 2}  {REVIEWED_DAY}  a retrain under {REVIEWED_CONFIG} (evaluation.approval: borderline): "
                f"a thin win waits for a person",
                flush=True,
            )
            surprises += _approval_story(client, api, inbox)
            print(flush=True)
            return surprises
        finally:
            manager.down(stack, log=note)


def _show_mail(inbox: Inbox | None, expected: str) -> None:
    if inbox is not None:
        inbox.wait_for(expected)
        inbox.print_new()


def _drift_story(client, api) -> int:
    surprises = 0
    _unpause_without_catch_up(api, (MONITOR_ID, DAG_ID))
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
        print(
            f"          retrain {'REQUESTED' if check['requested'] else 'not requested'}: {check['reason']}", flush=True
        )
    if not check["requested"]:
        print("        !! expected the second drift check to request a retrain")
        return surprises + 1
    return surprises + _retrain_from_request(client, api, known, "drift")


def _retrain_from_request(client, api, known: set[str], expected: str) -> int:
    """Wait for the scheduler to start the retrain from the request's Asset event; 1 unless it PROMOTEs with trigger
    `expected`."""
    started = time.monotonic()
    retrain = api.wait_for_new_run(DAG_ID, known, run_type="asset_triggered", timeout=300)
    print(f"        the scheduler started {DAG_ID} from the Asset event: {retrain['dag_run_id']}", flush=True)
    state = api.wait_for_run(DAG_ID, retrain["dag_run_id"], timeout=1800)["state"]
    version, decision, reasons = latest_decision(client)
    trigger = client.get_model_version(MODEL, version).tags.get("mlops.trigger") if version else None
    print(f"        {decision or state}: {MODEL} v{version}, trigger {trigger}  ({time.monotonic() - started:.0f} s)")
    for reason in reasons:
        print(f"          - {reason}")
    if state != "success" or decision != "PROMOTE" or trigger != expected:
        print(f"        !! expected a {expected}-triggered PROMOTE, got {decision or state} (trigger {trigger})")
        return 1
    return 0


def _run(api, dag_id: str, conf: dict, task_id: str) -> tuple[dict | None, float]:
    """Trigger `dag_id` with `conf` and wait: the XCom `task_id` returned (None if the run failed), and the seconds."""
    started = time.monotonic()
    run_id = api.trigger(dag_id, conf)
    if api.wait_for_run(dag_id, run_id, timeout=900)["state"] != "success":
        print(f"        !! {dag_id} {conf} failed (task logs: .mlops/airflow/logs/dag_id={dag_id}/)")
        return None, time.monotonic() - started
    return api.xcom(dag_id, run_id, task_id), time.monotonic() - started


def _unpause_without_catch_up(api, dag_ids: tuple[str, ...]) -> None:
    """Unpause (a DAG an earlier demo unpaused is left alone), failing the run the scheduler starts for today's missed
    cron tick before any of its tasks can run: default_pool has no free slot meanwhile (the replayed history has no
    data for today: a catch-up run would fail and mail a run_failed alert). Nothing else runs now."""
    paused = [dag_id for dag_id in dag_ids if api.wait_for_dag(dag_id)["is_paused"]]
    if not paused:
        return
    pool = api.request("GET", "/pools/default_pool")
    api.request("PATCH", "/pools/default_pool", json={"slots": 0}, params={"update_mask": "slots"})
    try:
        for dag_id in paused:
            api.unpause_skipping_missed_run(dag_id)
    finally:
        api.request("PATCH", "/pools/default_pool", json={"slots": pool["slots"]}, params={"update_mask": "slots"})


def _concept_story(client, api) -> int:
    """Concept drift: the champion scores two days, the drift monitor sees nothing, the performance monitor judges
    their labels a week later, confirms the decay and asks for a retrain; the scheduler runs it. Surprises."""
    import datetime as dt

    _unpause_without_catch_up(api, (SCORING_ID, PERFORMANCE_ID))
    print(
        f"        from {SCORED_DAYS[0]} the champion scores each day's customers; what they did is known a week later"
    )
    for day in SCORED_DAYS:
        scored, seconds = _run(api, SCORING_ID, {"as_of": day}, "score")
        if scored is None:
            return 1
        print(
            f"        {day} {SCORING_ID}: {scored['rows']} customers scored with {MODEL} v{scored['model_version']} "
            f"({seconds:.0f} s)",
            flush=True,
        )
    drift, seconds = _run(api, MONITOR_ID, {"as_of": SCORED_DAYS[-1]}, "check_drift")
    if drift is None:
        return 1
    print(f"        {SCORED_DAYS[-1]} {MONITOR_ID}: {drift['summary']} ({seconds:.0f} s)", flush=True)
    surprises = 0
    if drift["drift"]:
        surprises += 1
        print("        !! expected no data drift: the concept drift moves no input")

    known = {r["dag_run_id"] for r in api.dag_runs(DAG_ID)}
    delay, requested = dt.timedelta(days=7), False  # scoring.label_delay_days in include/pipelines/churn.yaml
    for day in SCORED_DAYS:
        check, seconds = _run(api, PERFORMANCE_ID, {"as_of": day}, "check_performance")
        if check is None:
            return surprises + 1
        arrived = dt.date.fromisoformat(day) + delay
        print(f"        {arrived} {PERFORMANCE_ID}, the labels of {day}: {check['summary']} ({seconds:.0f} s)")
        requested = check["requested"]
        print(f"          retrain {'REQUESTED' if requested else 'not requested'}: {check['reason']}", flush=True)
    if not requested:
        print("        !! expected the second decayed day to request a retrain")
        return surprises + 1
    return surprises + _retrain_from_request(client, api, known, "performance")


def _approval_story(client, api, inbox: Inbox | None) -> int:
    """A borderline challenger waits in Airflow's Required Actions; the demo answers through the REST API, as the
    Approve button of the Airflow UI or of the Models page would, and shows the ledger naming the person. Surprises."""
    from airflow_mlops.core import approval, registry

    started = time.monotonic()
    run_id = api.trigger(DAG_ID, {"as_of": REVIEWED_DAY, "config": REVIEWED_CONFIG})
    detail = _wait_for_person(api, run_id)
    if detail is None:
        version, decision, _ = latest_decision(client)
        print(
            f"        !! expected the run to wait for a person; it ended with {decision or 'no verdict'} (v{version})"
        )
        return 1
    print(f'        {DAG_ID} waits for a person ({time.monotonic() - started:.0f} s): "{detail["subject"]}"')
    for line in detail["body"].splitlines():
        if line.startswith("- "):
            print(f"          {line}")
    _show_mail(inbox, "waits for")
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{approval.APPROVAL_TASK_ID}/-1/hitlDetails"
    answer = api.request(
        "PATCH", path, json={"chosen_options": [approval.APPROVE], "params_input": {approval.COMMENT: REVIEWER_COMMENT}}
    )
    print(
        f"        {answer['responded_by']['name']} answers {approval.APPROVE} through the REST API (what the Approve "
        f'button does in Required Actions and on the Models page): "{REVIEWER_COMMENT}"',
        flush=True,
    )
    state = api.wait_for_run(DAG_ID, run_id, timeout=900)["state"]
    version, decision, _ = latest_decision(client)
    moves = [m for m in registry.history(client, MODEL) if m.get("alias") == "champion"]
    last = moves[-1] if moves else {}
    print(f"        {decision or state}: {MODEL} v{version} is the champion ({time.monotonic() - started:.0f} s)")
    print(f"          ledger: {last.get('by')}: {str(last.get('reason')).split('; the gate said')[0]}")
    _show_mail(inbox, "new champion")
    if (
        state != "success"
        or last.get("to") != version
        or last.get("by") != f"airflow-user:{answer['responded_by']['name']}"
    ):
        print(f"        !! expected the approved v{version} as champion and the ledger naming who approved it")
        return 1
    return 0


def _wait_for_person(api, run_id: str, timeout: float = 900.0) -> dict | None:
    """The branch's human-in-the-loop request once the run waits for it; None if the run ends without asking."""
    from airflow_mlops.core import approval

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {ti["task_id"]: ti["state"] for ti in api.task_instances(DAG_ID, run_id)}
        if states.get(approval.APPROVAL_TASK_ID) == "awaiting_input":
            return api.request(
                "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{approval.APPROVAL_TASK_ID}/-1/hitlDetails"
            )
        if api.dag_run(DAG_ID, run_id)["state"] in ("success", "failed"):
            return None
        time.sleep(3)
    return None


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
    print(
        f"airflow-mlops demo: {len(STORY)} days of {DAG_ID}, then a data drift and a concept drift the monitors "
        f"have to notice, and a thin win a person approves (full logs in {log_dir}/)\n",
        flush=True,
    )
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
        elif day.names and not any(r.startswith("FAIL") and day.names in r for r in reasons):
            surprises += 1
            print(f"        !! expected a FAIL reason naming {day.names} (log: {log_path})")
        if inbox is not None:
            inbox.print_new()
        print(flush=True)

    surprises += stack_days(len(STORY) + 1, client, log_dir, inbox)
    if inbox is not None:
        print(
            f"Alerts: {len(inbox.subjects)} e-mail(s) reached the demo's local SMTP server (standing in for "
            f"smtp_default): {inbox.folder}/*.eml\n"
        )

    from airflow_mlops import cli

    print("Where things stand (airflow-mlops status):", flush=True)
    cli.main(["status"])
    print("\nLedger of alias moves:    .venv/bin/airflow-mlops history churn_classifier")
    print("MLflow UI (runs, plots):  make mlflow-ui   -> http://127.0.0.1:5000")
    print(
        "Airflow UI (the DAGs):    make airflow     -> http://localhost:8080 (Models in its navigation: the ledger,"
        " the evidence, approvals)"
    )
    print("Re-check a verdict:       .venv/bin/airflow-mlops audit churn_classifier 2")
    print('Replay a day:             make dag-test DAG=churn_retrain CONF=\'{"as_of": "2026-02-12"}\'')
    print(
        "The second pipeline:      make dag-test DAG=diabetes_retrain   (regression, include/pipelines/diabetes.yaml)"
    )
    print("Add your own model:       .venv/bin/airflow-mlops init NAME --source FILE --target COLUMN")
    return 1 if surprises else 0


if __name__ == "__main__":
    raise SystemExit(main())
