"""No secret is readable through a run's parameters: churn_retrain triggered with `source` pointing at the state
folder's secrets.env, at Airflow's generated password file, or at a non-data file in a data folder fails at the
snapshot, naming the path and the reason, and no secret value appears in the run's output, the task log or the
run_failed alert (mailed to the session's real SMTP server on loopback, see conftest).

The MLOps home lies inside the tests' data root (their temp folder, AIRFLOW_MLOPS_DATA_ROOTS), as `make demo`'s
.mlops would if the project folder were a data root: the state folder must be refused all the same.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, task_states

LOGICAL = dt.datetime(2026, 1, 28, 2, 0, tzinfo=dt.UTC)
ADMIN_PASSWORD = "Adm1n-pw-7Hq3Zr9Lw2"
JWT_SECRET = "jwt-Mv5Kc8Xn1Qp4Tb6"
FERNET_KEY = "Q2p4Zk8Xw1Vb6Nm3Lr7Ts9Yh0Jd5Fg2Ka8Wc1Ue4Ho="
API_SECRET_KEY = "api-Sk3Jf6Dn9Gb2"
MLFLOW_PASSWORD = "mlf-Rt7Yp2Vx5Cq8"
GENERATED_PASSWORD = "gen-Wz4Mb7Qn1Ks5"
SECRETS = (ADMIN_PASSWORD, JWT_SECRET, FERNET_KEY, API_SECRET_KEY, MLFLOW_PASSWORD, GENERATED_PASSWORD)
SECRETS_ENV = "".join(
    f"{name}={value}\n"
    for name, value in (
        ("AIRFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("AIRFLOW__API_AUTH__JWT_SECRET", JWT_SECRET),
        ("AIRFLOW_FERNET_KEY", FERNET_KEY),
        ("AIRFLOW_API_SECRET_KEY", API_SECRET_KEY),
        ("MLFLOW_ADMIN_PASSWORD", MLFLOW_PASSWORD),
    )
)


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).get_dag("churn_retrain")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A state folder as `make demo` leaves it (secrets.env, Airflow's generated password file) and, beside it,
    a data folder holding files that are not data files."""
    base = tmp_path_factory.mktemp("secrets-in-conf")
    home, data = base / "mlops", base / "data"
    (home / "airflow").mkdir(parents=True)
    data.mkdir()
    (home / "secrets.env").write_text(SECRETS_ENV)
    (home / "airflow" / "simple_auth_manager_passwords.json.generated").write_text(
        json.dumps({"admin": GENERATED_PASSWORD})
    )
    (data / "copied.env").write_text(SECRETS_ENV)
    (data / "secrets.csv").write_text(SECRETS_ENV)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_MLOPS_HOME", str(home))
        yield {"home": home, "data": data}


CASES = {
    "secrets.env in the state folder": ("home", "secrets.env", "lies inside the state folder"),
    "Airflow's generated password file": (
        "home", "airflow/simple_auth_manager_passwords.json.generated", "lies inside the state folder",
    ),
    "a .env file in a data folder": ("data", "copied.env", "not a CSV/Parquet data file"),
    "secrets named .csv in a data folder": ("data", "secrets.csv", "not a CSV data file"),
}  # fmt: skip


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def _task_logs(run_id: str) -> str:
    """The task log files Airflow wrote for the run (dag.test may also only print them)."""
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return "\n".join(
        p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file() and f"run_id={run_id}" in str(p)
    )


@pytest.mark.parametrize("case", list(CASES))
def test_a_secret_given_as_source_is_refused_and_never_shown(case, dag, folders, mailbox, capfd):
    where, name, reason = CASES[case]
    source = folders[where] / name
    before = len(mailbox.messages)
    capfd.readouterr()

    run = dag.test(logical_date=LOGICAL, run_conf={"source": str(source), "as_of": None, "config": "churn_fast"})

    out = capfd.readouterr()
    output = out.out + out.err + _task_logs(run.run_id)
    assert task_states(run)["snapshot"] == "failed"
    assert f"{source}: " in output and reason in output, output[-3000:]  # named, with the reason
    [mail] = mailbox.matching("churn: run failed", run.run_id, since=before)
    alert = f"{mail['subject']}\n{mailbox.body(mail)}"
    assert reason in alert, alert
    assert not _leaks(output), f"{case}: secrets in the run's output / task log: {_leaks(output)}"
    assert not _leaks(alert), f"{case}: secrets in the run_failed alert: {_leaks(alert)}"
    assert "AIRFLOW_ADMIN_PASSWORD" not in output + alert  # nothing of the file is quoted, not even a name


def test_make_dag_test_with_the_demo_secrets_prints_none_of_them(airflow_db, folders, mailbox):
    """The report's reproduction: `airflow dags test churn_retrain -c '{"source": ".mlops/secrets.env", ...}'`."""
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")}
    source = folders["home"] / "secrets.env"
    before = len(mailbox.messages)
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "churn_retrain", "2026-01-28T02:00:00+00:00",
         "-c", json.dumps({"source": str(source), "config": "churn_fast"})],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = out.stdout + out.stderr
    assert f"{source}: refused: the path lies inside the state folder" in output, output[-3000:]
    assert not _leaks(output), _leaks(output)
    [mail] = mailbox.matching("churn: run failed", "state folder", since=before)
    assert not _leaks(f"{mail['subject']}\n{mailbox.body(mail)}")
