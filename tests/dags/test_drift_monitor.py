"""End-to-end: churn_drift_monitor run by the real Airflow task runner (dag.test()) on real MLflow and GX.

The champion is trained by churn_retrain itself (as of 2026-02-10, before the stream drifts on
2026-03-01); the monitor then checks a calm week, drifted weeks (debounced, then a retrain
request Asset event, then a cool-down) and a broken week (no verdict).
"""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import ROOT, churn_stream

RETRAIN_REQUEST = "mlops://churn/retrain-request"
DRIFT_FROM = dt.date(2026, 3, 1)


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    return bag


@pytest.fixture(scope="module")
def monitor(dagbag):
    return dagbag.get_dag("churn_drift_monitor")


def states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _when(day: str, hour: int) -> dt.datetime:
    """A distinct logical date per dag.test() call (the same one would reuse the same DAG run)."""
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC)


def _drift_runs(client) -> list:
    exp = client.get_experiment_by_name("churn-monitoring")
    if exp is None:
        return []
    return client.search_runs(
        [exp.experiment_id], "tags.`mlops.step` = 'drift'", order_by=["attributes.start_time ASC"]
    )


def _retrain_requests() -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == RETRAIN_REQUEST)
            .order_by(AssetEvent.id)
        ).all()
        return [
            {"extra": dict(e.extra or {}), "source_dag_id": e.source_dag_id, "source_run_id": e.source_run_id}
            for e in events
        ]


def test_dag_shape(monitor):
    assert set(monitor.task_ids) == {"check_drift", "request_retrain"}
    assert monitor.get_task("request_retrain").upstream_task_ids == {"check_drift"}
    assert [o.uri for o in monitor.get_task("request_retrain").outlets] == [RETRAIN_REQUEST]
    assert monitor.get_task("check_drift").deferrable is True
    assert monitor.max_active_runs == 1
    assert all(t.retries >= 2 for t in monitor.tasks)
    assert "mlops://churn/new-batch" in {a.uri for a in monitor.timetable.asset_condition.objects}


def test_no_champion_skips(monitor, mlops_home, mlflow_client, tmp_path):
    source = tmp_path / "churn"
    churn_stream.write_stream(source, dt.date(2026, 2, 11), 7, rows=50)

    run = monitor.test(logical_date=_when("2026-02-18", 1), run_conf={"source": str(source), "as_of": "2026-02-17"})

    assert states(run) == {"check_drift": "skipped", "request_retrain": "skipped"}
    assert _drift_runs(mlflow_client) == []


@pytest.fixture(scope="module")
def trained(dagbag, tmp_path_factory):
    """A private MLOps home whose champion churn_retrain trained on 2026-01-14..2026-02-10 (pre-drift)."""
    home = tmp_path_factory.mktemp("monitor") / "mlops"
    home.mkdir()
    source = home.parent / "data" / "churn"
    churn_stream.write_stream(source, dt.date(2026, 1, 14), 66, rows=200, drift_from=DRIFT_FROM)  # .. 2026-03-20
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_MLOPS_HOME", str(home))
        retrain = dagbag.get_dag("churn_retrain")
        run = retrain.test(logical_date=_when("2026-02-10", 2), run_conf={"source": str(source), "as_of": "2026-02-10"})
        assert states(run)["deploy"] == "success", states(run)
        yield {"home": home, "source": source}


@pytest.fixture
def client(trained, monkeypatch):
    from mlflow import MlflowClient

    from airflow_mlops import settings
    from airflow_mlops.core import tracking

    monkeypatch.setenv("AIRFLOW_MLOPS_HOME", str(trained["home"]))
    c = MlflowClient(tracking_uri=settings.default_tracking_uri(), registry_uri=settings.default_tracking_uri())
    tracking.configure(c)
    return c


def test_calm_then_drift_then_one_retrain_request_then_cool_down(monitor, trained, client, mailbox):
    champion = client.get_model_version_by_alias("churn_classifier", "champion")
    conf = {"source": str(trained["source"])}
    requests_before = len(_retrain_requests())

    calm = monitor.test(logical_date=_when("2026-02-18", 6), run_conf=conf | {"as_of": "2026-02-17"})
    assert states(calm) == {"check_drift": "success", "request_retrain": "skipped"}
    (check,) = _drift_runs(client)
    assert check.data.tags["drift.verdict"] == "no_drift"
    assert check.data.tags["reference.version"] == str(champion.version)
    assert check.data.tags["reference.digest"] == champion.tags["data.digest"]

    first = monitor.test(logical_date=_when("2026-03-21", 6), run_conf=conf | {"as_of": "2026-03-20"})
    assert states(first) == {"check_drift": "success", "request_retrain": "skipped"}  # 1 of the last 2: not yet
    second = monitor.test(logical_date=_when("2026-03-21", 7), run_conf=conf | {"as_of": "2026-03-20"})
    assert states(second) == {"check_drift": "success", "request_retrain": "success"}  # 2 of the last 3
    third = monitor.test(logical_date=_when("2026-03-21", 8), run_conf=conf | {"as_of": "2026-03-20"})
    assert states(third) == {"check_drift": "success", "request_retrain": "skipped"}  # cool-down

    runs = _drift_runs(client)
    assert [r.data.tags["drift.verdict"] for r in runs] == ["no_drift", "drift", "drift", "drift"]
    assert [r.data.tags["retrain.requested"] for r in runs] == ["false", "false", "true", "false"]
    assert "cool-down" in runs[-1].data.tags["retrain.reason"]
    drifted = runs[1].data
    assert drifted.metrics["drift"] == 1.0 and drifted.metrics["drift_share"] >= 0.3
    assert "prediction.psi" in drifted.metrics  # the champion scored both windows (prediction drift)
    assert {a.path for a in client.list_artifacts(runs[1].info.run_id, "drift")} >= {
        "drift/drift_report.html",
        "drift/report.json",
        "drift/summary.txt",
    }

    requests = _retrain_requests()[requests_before:]
    assert len(requests) == 1
    (request,) = requests
    assert request["source_dag_id"] == "churn_drift_monitor" and request["source_run_id"] == second.run_id
    extra = request["extra"]
    assert extra["summary"].startswith("DRIFT") and extra["drifted"]
    assert extra["reference_version"] == str(champion.version)
    assert extra["mlflow_run_id"] == runs[2].info.run_id
    assert extra["as_of"] == "2026-03-20"
    # the one request was an alert to the pipeline's e-mail channel, with its drift summary and MLflow run
    from urllib.parse import quote

    [mail] = mailbox.matching("churn: drift confirmed, retrain requested", quote(second.run_id, safe=""))
    assert extra["summary"][:60] in mailbox.body(mail) and f"#/runs/{runs[2].info.run_id}" in mailbox.body(mail)


def test_broken_window_fails_validation_with_no_verdict(monitor, trained, client, tmp_path):
    broken = tmp_path / "broken"
    churn_stream.write_stream(broken, dt.date(2026, 2, 11), 7, rows=150, bad_days=(dt.date(2026, 2, 14),))
    checks_before, requests_before = len(_drift_runs(client)), len(_retrain_requests())

    run = monitor.test(logical_date=_when("2026-02-18", 9), run_conf={"source": str(broken), "as_of": "2026-02-17"})

    assert states(run) == {"check_drift": "failed", "request_retrain": "upstream_failed"}
    assert len(_drift_runs(client)) == checks_before  # no verdict logged
    assert len(_retrain_requests()) == requests_before
    exp = client.get_experiment_by_name("churn-monitoring")
    (validation,) = client.search_runs(
        [exp.experiment_id], f"tags.`mlops.step` = 'validate' and tags.`airflow.run_id` = '{run.run_id}'"
    )
    assert validation.data.metrics  # the GX result is in MLflow
