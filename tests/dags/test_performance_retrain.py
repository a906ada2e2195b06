"""End-to-end: a performance retrain request starts churn_retrain the way the scheduler does, and the retrained
model is promoted with trigger `performance`.

A temporary project holds the shipped churn configs, so every DAG reads its config's own folders (data/churn,
data/churn_batches, data/churn_labels) and no run is given a path. The churn stream's relationship shifts on
2026-02-01 while no input moves (concept drift). churn_retrain makes the champion (as of 2026-01-28, churn_fast),
churn_scoring scores 2026-02-11 and 02-12, churn_performance_monitor judges their labels a week later: decay,
confirmed on the second day, a retrain request. Airflow's own scheduler code turns that Asset event into an
asset-triggered churn_retrain run (consuming the event, as `airflow scheduler` does) whose tasks run with the
real task runner: it trains on the data up to the labelled day the request names, and its challenger wins.
"""

from __future__ import annotations

import datetime as dt
import shutil
from urllib.parse import quote

import pytest
from conftest import ROOT, churn_stream, task_states

pytestmark = pytest.mark.slow  # ~1 min: runs in `make soak` (CI runs it after make test)

RETRAIN_REQUEST = "mlops://churn/retrain-request"
SHIFT = dt.date(2026, 2, 1)  # the concept drifts from here
SCORED = ["2026-02-11", "2026-02-12"]  # the days scored by the champion, judged once their labels arrive


def _when(day: str, hour: int) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def project(airflow_db, tmp_path_factory):
    """A project root with the shipped churn configs and suite, the stream in its data/ folders, its own MLOps home."""
    root = tmp_path_factory.mktemp("performance-retrain")
    (root / "include" / "pipelines").mkdir(parents=True)
    for name in ("churn.yaml", "churn_fast.yaml"):
        shutil.copy(ROOT / "include" / "pipelines" / name, root / "include" / "pipelines" / name)
    shutil.copytree(ROOT / "include" / "expectations", root / "include" / "expectations")
    data = root / "data"
    churn_stream.write_stream(
        data / "churn",
        dt.date(2026, 1, 1),
        43,
        concept_drift_from=SHIFT,
        batches=data / "churn_batches",
        labels=data / "churn_labels",
    )  # .. 2026-02-12
    (root / "mlops").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_MLOPS_PROJECT_ROOT", str(root))
        mp.setenv("AIRFLOW_MLOPS_HOME", str(root / "mlops"))
        yield root


@pytest.fixture(scope="module")
def dagbag(project):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    assert bag.get_dag("churn_scoring").get_task("score").config_path.startswith(str(project))
    return bag


@pytest.fixture(scope="module")
def client(project):
    from mlflow import MlflowClient

    from airflow_mlops import settings
    from airflow_mlops.core import tracking

    client = MlflowClient(tracking_uri=settings.default_tracking_uri(), registry_uri=settings.default_tracking_uri())
    tracking.configure(client)
    return client


@pytest.fixture
def listen_for_requests():
    """A call unpauses churn_retrain (the scheduler queues runs only for unpaused DAGs; it is in the metadata DB once
    a dag.test() synced it) and clears older retrain requests: the session's metadata DB is shared, and the scheduler
    would hand every request since the DAG began listening to the same run (other tests' drift requests among them).
    Paused again afterwards."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    def listen() -> None:
        with create_session() as session:
            session.get(DagModel, "churn_retrain").is_paused = False
            asset = session.scalar(select(AssetModel).where(AssetModel.uri == RETRAIN_REQUEST))
            for event in session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset.id)).all():
                session.delete(event)

    yield listen
    with create_session() as session:
        if (model := session.get(DagModel, "churn_retrain")) is not None:
            model.is_paused = True


def _scheduler_starts_the_retrain():
    """What `airflow scheduler` does with a queued Asset event: its own code creates the asset-triggered run."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    asset_runs = select(DagRun.run_id).where(
        DagRun.dag_id == "churn_retrain", DagRun.run_type == DagRunType.ASSET_TRIGGERED
    )
    with create_session() as session:
        before = set(session.scalars(asset_runs))
        due, asset_triggered = DagModel.dags_needing_dagruns(session)
        assert "churn_retrain" in asset_triggered, f"the scheduler would not start churn_retrain: {asset_triggered}"
        SchedulerJobRunner(job=Job(), num_runs=1, executors=[])._create_dag_runs_asset_triggered(
            dag_models=[m for m in due if m.dag_id == "churn_retrain"], session=session
        )
    with create_session() as session:
        [run_id] = set(session.scalars(asset_runs)) - before
        [run] = DagRun.find(dag_id="churn_retrain", run_id=run_id, session=session)
        events = [
            {"uri": e.asset.uri, "extra": dict(e.extra or {}), "source_dag_id": e.source_dag_id}
            for e in run.consumed_asset_events
        ]
        return run.run_id, events


def _run_tasks(dag, run_id: str):
    """Run a DAG run's tasks in dependency order with the real task runner (dag.test()'s loop, for a run the
    scheduler created: dag.test() itself always makes a new manual run)."""
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    with create_session() as session:
        [run] = DagRun.find(dag_id=dag.dag_id, run_id=run_id, session=session)
        run.dag = DBDagBag().get_dag_for_run(dag_run=run, session=session)  # the serialized DAG, as the scheduler's
        run.state = DagRunState.RUNNING  # the scheduler starts a queued run
        session.commit()
        while run.state == DagRunState.RUNNING:
            session.expire_all()
            schedulable, _ = run.update_state(session=session)
            for ti in schedulable:
                ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            scheduled = [t for t in run.get_task_instances(session=session) if t.state == TaskInstanceState.SCHEDULED]
            if not scheduled and run.state == DagRunState.RUNNING:
                raise AssertionError(f"{run_id}: running, but no task can run: {task_states(run)}")
            for ti in scheduled:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
        return run


def test_a_performance_retrain_request_is_run_by_the_scheduler_and_promotes_with_trigger_performance(
    dagbag, client, mailbox, listen_for_requests
):
    from airflow.dag_processing.dagbag import DagBag

    from airflow_mlops.core import registry

    retrain = dagbag.get_dag("churn_retrain")
    first = retrain.test(logical_date=_when("2026-01-28", 2), run_conf={"as_of": "2026-01-28", "config": "churn_fast"})
    assert task_states(first)["deploy"] == "success", task_states(first)
    champion = client.get_model_version_by_alias("churn_classifier", "champion")

    for day in SCORED:  # a run on day D scores D's batch with the champion (hours no other test uses)
        scored = dagbag.get_dag("churn_scoring").test(logical_date=_when(day, 4))
        assert task_states(scored) == {"score": "success"}
    listen_for_requests()
    monitor = dagbag.get_dag("churn_performance_monitor")
    checks = []
    for day in SCORED:  # a run on day X judges the labels of X - 7
        judged = dt.date.fromisoformat(day) + dt.timedelta(days=7)
        run = monitor.test(logical_date=_when(judged.isoformat(), 10))
        checks.append(
            (task_states(run), run.get_task_instance("check_performance").xcom_pull(task_ids="check_performance"))
        )
    (first_states, first_check), (second_states, second_check) = checks
    assert first_states == {"check_performance": "success", "request_retrain": "skipped"}, first_check["reason"]
    assert second_states == {"check_performance": "success", "request_retrain": "success"}, second_check["reason"]
    for check in (first_check, second_check):  # the realized figure fell below the champion's promise
        assert check["decay"] == "yes" and check["ci_high"] < check["promised"] - 0.02, check["summary"]

    run_id, events = _scheduler_starts_the_retrain()
    assert [(e["uri"], e["source_dag_id"]) for e in events] == [(RETRAIN_REQUEST, "churn_performance_monitor")]
    extra = events[0]["extra"]
    assert extra["trigger"] == "performance" and extra["as_of"] == SCORED[1]
    assert extra["reference_version"] == str(champion.version)

    fresh = DagBag(dag_folder=str(ROOT / "dags")).get_dag("churn_retrain")  # a worker parses the DAG file anew
    run = _run_tasks(fresh, run_id)

    assert task_states(run) == {t: "success" for t in retrain.task_ids} | {"record_rejection": "skipped"}
    new = client.get_model_version_by_alias("churn_classifier", "champion")
    assert new.version != champion.version and new.tags["decision"] == "PROMOTE", new.tags.get("decision.reasons")
    assert new.tags["mlops.trigger"] == "performance" and new.tags["airflow.run_id"] == run_id
    assert new.tags[registry.WINDOW_END_TAG] == SCORED[1]  # trained up to the labelled day the request named
    assert client.get_model_version_by_alias("churn_classifier", "previous_champion").version == champion.version
    moves = [e for e in registry.history(client, "churn_classifier") if e["actor"].get("airflow.run_id") == run_id]
    assert {(e["alias"], e["to"]) for e in moves} == {
        ("champion", str(new.version)),
        ("previous_champion", str(champion.version)),
    }
    assert {e["actor"]["mlops.trigger"] for e in moves} == {"performance"}
    [mail] = mailbox.matching(quote(run_id, safe=""), "started by: performance")
    assert "new champion" in mail["subject"]
