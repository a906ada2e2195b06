"""The demo's four-day story as a dag.test() run: each day's verdict and the final aliases."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import ROOT, churn_stream


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).get_dag("churn_retrain")


@pytest.fixture
def stream(tmp_path):
    """The demo data: 90 days from 2026-01-01, shift on 2026-03-01, bad batch on 2026-02-20."""
    out = tmp_path / "churn"
    churn_stream.write_stream(
        out, dt.date(2026, 1, 1), 90, drift_from=dt.date(2026, 3, 1), bad_days=(dt.date(2026, 2, 20),)
    )
    return out


def run_day(dag, day: str, source) -> dict[str, str]:
    logical = dt.datetime.fromisoformat(f"{day}T02:00:00+00:00")
    dag_run = dag.test(logical_date=logical, run_conf={"as_of": day, "source": str(source)})
    out: dict[str, str] = {}
    for ti in dag_run.get_task_instances():
        if out.get(ti.task_id, "success") == "success":
            out[ti.task_id] = str(ti.state)
    return out


def newest_version(client):
    return max(client.search_model_versions("name='churn_classifier'"), key=lambda v: int(v.version))


def alias(client, name):
    return str(client.get_model_version_by_alias("churn_classifier", name).version)


def test_four_day_story(dag, mlops_home, mlflow_client, stream):
    # Day 1: no champion yet -> the floors decide -> first champion.
    s = run_day(dag, "2026-02-10", stream)
    assert s["deploy"] == "success" and s["record_rejection"] == "skipped", s
    v1 = newest_version(mlflow_client)
    assert v1.tags["decision"] == "NO_BASELINE_PROMOTE"
    assert alias(mlflow_client, "champion") == str(v1.version)

    # Day 2: one more day of the same world -> not significantly better -> REJECT, champion kept.
    s = run_day(dag, "2026-02-11", stream)
    assert s["record_rejection"] == "success" and s["deploy"] == "skipped", s
    v2 = newest_version(mlflow_client)
    assert v2.tags["decision"] == "REJECT"
    assert alias(mlflow_client, "champion") == str(v1.version)
    assert alias(mlflow_client, "challenger") == str(v2.version)

    # Day 3: a bad batch in the window -> validation fails, nothing trained, champion kept.
    s = run_day(dag, "2026-02-20", stream)
    assert s["validate"] == "failed" and s["train"] != "success", s
    assert newest_version(mlflow_client).version == v2.version
    assert alias(mlflow_client, "champion") == str(v1.version)

    # Day 4: the world shifted on 2026-03-01 -> the retrained challenger wins -> PROMOTE.
    s = run_day(dag, "2026-03-28", stream)
    assert s["deploy"] == "success", s
    v4 = newest_version(mlflow_client)
    assert v4.tags["decision"] == "PROMOTE"
    assert alias(mlflow_client, "champion") == str(v4.version)
    assert alias(mlflow_client, "previous_champion") == str(v1.version)
