"""Soak: 100 simulated days of the churn stream through the real DAGs (dag.test()), with two drift
episodes and bad batches. Marked slow: `make soak` (CI runs it after the default suite).

The retrain uses the `churn_fast` config variant (one candidate, 14-day window). Every day the
drift monitor checks the last 7 days; a confirmed drift asks for a retrain, which
runs that day with the request's window; the nightly retrain runs once a week. Afterwards the
ledger must tell one consistent story, and nothing may have leaked: child processes, open file
descriptors, temporary files, unbounded disk use.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, churn_stream, task_states

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

START = dt.date(2026, 1, 1)
FIRST_DAY = START + dt.timedelta(days=14)  # 14 days of history before the first simulated day
DAYS = 100
DRIFT_EPISODES = ((40, 70),)  # simulated days [40, 70): the new world; from 70 on: back to the old one
BAD_DAYS = (25, 60, 90)  # broken batches (nulls, negative tenure, an unknown contract)
NIGHTLY_EVERY = 7
ROWS = 200


def sim_day(n: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=n)


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("soak-data") / "churn"
    total = (FIRST_DAY - START).days + DAYS
    bad = tuple(sim_day(n) for n in BAD_DAYS)
    churn_stream.write_stream(out, START, total, rows=ROWS, bad_days=bad)
    for begin, end in DRIFT_EPISODES:
        churn_stream.write_stream(out, sim_day(begin), end - begin, rows=ROWS, drift_from=sim_day(begin), bad_days=bad)
    return out


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    return bag.get_dag("churn_retrain"), bag.get_dag("churn_drift_monitor")


def _open_fds() -> int:
    import gc

    gc.collect()  # descriptors held only by garbage are not leaks
    return len(os.listdir("/proc/self/fd"))


def _children() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)}


def _our_temp_files() -> set[str]:
    prefixes = ("mlops-", "gx-docs-", "tmp")
    return {p.name for p in Path(tempfile.gettempdir()).iterdir() if p.name.startswith(prefixes)}


def _disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def test_100_days_keep_one_consistent_story_and_leak_nothing(dags, stream, mlops_home, mlflow_client):
    from airflow_mlops.core import registry

    retrain, monitor = dags
    children, temps = _children(), _our_temp_files()
    fds: list[int] = []  # open descriptors every 10 days: connection pools come and go, a leak only grows
    journal = []
    for n in range(DAYS):
        day = sim_day(n).isoformat()
        logical = dt.datetime.fromisoformat(f"{day}T06:00:00+00:00")
        checked = task_states(monitor.test(logical_date=logical, run_conf={"as_of": day, "source": str(stream)}))
        reasons = []
        if checked.get("request_retrain") == "success":
            reasons.append("drift")
        if n % NIGHTLY_EVERY == 0:
            reasons.append("nightly")
        trained = {}
        if reasons:
            run = retrain.test(
                logical_date=logical + dt.timedelta(hours=1),
                run_conf={"as_of": day, "source": str(stream), "config": "churn_fast"},
            )
            trained = task_states(run)
        journal.append({"day": day, "monitor": checked, "why": reasons, "retrain": trained})
        if n % 10 == 9:
            fds.append(_open_fds())
            print(f"soak: {n + 1}/{DAYS} days, {_disk_mb(mlops_home):.0f} MB, {fds[-1]} fds", flush=True)
    (mlops_home / "soak-journal.json").write_text(json.dumps(journal, indent=1))

    # Bad batches are reported as broken (validation), never trained on, never read as drift.
    for n in BAD_DAYS:
        entry = journal[n]
        assert entry["monitor"]["check_drift"] == "failed", entry
        if entry["retrain"]:
            assert entry["retrain"]["validate"] == "failed", entry
    # The drift episode is noticed and answered with a retrain.
    begin, end = DRIFT_EPISODES[0]
    assert any("drift" in e["why"] for e in journal[begin:end]), "no drift-triggered retrain in the episode"
    promoted = [e["day"] for e in journal if e["retrain"].get("deploy") == "success"]
    assert promoted, "nothing was ever promoted"
    assert any(sim_day(begin).isoformat() <= d < sim_day(end).isoformat() for d in promoted), promoted

    # One consistent story: every champion move is in the ledger, and the last one is the champion.
    name = "churn_classifier"
    moves = [m for m in registry.history(mlflow_client, name) if m["alias"] == "champion"]
    champion = mlflow_client.get_model_version_by_alias(name, "champion")
    assert str(moves[-1]["to"]) == str(champion.version)
    assert len([m for m in moves if m.get("action") == "promote"]) == len(promoted), (moves, promoted)
    for alias in ("champion", "previous_champion", "challenger"):
        version = mlflow_client.get_model_version_by_alias(name, alias)
        assert version.status == "READY"
    running = mlflow_client.search_runs(
        [e.experiment_id for e in mlflow_client.search_experiments()], "attributes.status = 'RUNNING'"
    )
    assert not running, f"runs left RUNNING: {[r.info.run_id for r in running]}"

    # Nothing leaked; disk use bounded (snapshots are content-addressed: a window is stored once).
    assert _children() <= children, f"child processes left behind: {_children() - children}"
    half = len(fds) // 2
    assert max(fds[half:]) <= max(fds[:half]) + 10, f"open file descriptors keep growing: {fds} (every 10 days)"
    assert _our_temp_files() <= temps, f"temporary files left behind: {_our_temp_files() - temps}"
    assert _disk_mb(mlops_home) < 1500, f"{_disk_mb(mlops_home):.0f} MB in {mlops_home} after {DAYS} days"
