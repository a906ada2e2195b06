"""End-to-end: churn_performance_monitor run by the real Airflow task runner (dag.test()) on real MLflow.

The champion is trained by churn_retrain itself (churn_fast, as of 2026-02-10) on the churn stream, whose
concept drifts from 2026-02-11: the same customers (no input moves), a new reason to leave. Its predictions
of the drifted days are written here as batch scoring writes them (the champion loaded and scored on each
day's unlabelled batch), and the labels files by the stream generator. The monitor sees the decay once the
labels arrive, asks for a retrain on the second decayed day (not the first) with reason `performance`, mails
the alert, cools down on the third; a day whose labels cover too few predictions fails with the counts.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from conftest import ROOT, churn_stream, task_states

RETRAIN_REQUEST = "mlops://churn/retrain-request"
SHIFT = dt.date(2026, 2, 11)  # the concept drifts from here
DAYS = ["2026-02-11", "2026-02-12", "2026-02-13"]


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    return bag


@pytest.fixture(scope="module")
def monitor(dagbag):
    return dagbag.get_dag("churn_performance_monitor")


def _when(day: str, hour: int) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC)


def _requests() -> list[dict]:
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


@pytest.fixture(scope="module")
def world(dagbag, tmp_path_factory):
    """A champion (churn_fast, trained up to 2026-02-10) and the predictions and labels of 4 concept-drifted days."""
    import pandas as pd
    from mlflow import MlflowClient

    from airflow_mlops import settings
    from airflow_mlops.core import labels, tracking, training
    from airflow_mlops.core.config import load_config
    from airflow_mlops.core.performance import predictions_path

    root = tmp_path_factory.mktemp("performance")
    home, source, batches, label_dir = root / "mlops", root / "churn", root / "batches", root / "labels"
    home.mkdir()
    churn_stream.write_stream(
        source, dt.date(2026, 1, 28), 17, rows=400, concept_drift_from=SHIFT, batches=batches, labels=label_dir
    )  # 2026-01-28 .. 2026-02-13
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_MLOPS_HOME", str(home))
        run = dagbag.get_dag("churn_retrain").test(
            logical_date=_when("2026-02-10", 2),
            run_conf={"source": str(source), "as_of": "2026-02-10", "config": "churn_fast"},
        )
        assert task_states(run)["deploy"] == "success", task_states(run)
        client = MlflowClient(
            tracking_uri=settings.default_tracking_uri(), registry_uri=settings.default_tracking_uri()
        )
        tracking.configure(client)
        champion = client.get_model_version_by_alias("churn_classifier", "champion")
        config = load_config(ROOT / "include" / "pipelines" / "churn.yaml")
        model = training.load_model(f"models:/churn_classifier/{champion.version}")
        positive = labels.positive_index(list(model.classes_), labels.positive_class(config, list(model.classes_)))
        for day in [*DAYS, "2026-02-09"]:
            batch = pd.read_csv(batches / f"churn_{day}.csv", dtype={"customer_id": str})
            path = predictions_path(config, dt.date.fromisoformat(day))
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(
                {
                    "customer_id": batch["customer_id"],
                    "score": model.predict_proba(batch[config.feature_names])[:, positive],
                    "predicted": model.predict(batch[config.feature_names]),
                    "model_version": str(champion.version),
                    "data_digest": "sha256:batch",
                    "scored_at": f"{day}T05:00:00+00:00",
                }
            ).to_parquet(path, index=False)
        yield {"home": home, "labels": label_dir, "client": client, "champion": champion}


@pytest.fixture
def client(world, monkeypatch):
    monkeypatch.setenv("AIRFLOW_MLOPS_HOME", str(world["home"]))
    return world["client"]


def _checks(client) -> list:
    exp = client.get_experiment_by_name("churn-monitoring")
    return (
        client.search_runs(
            [exp.experiment_id], "tags.`mlops.step` = 'performance'", order_by=["attributes.start_time ASC"]
        )
        if exp
        else []
    )


def test_dag_shape(monitor):
    assert set(monitor.task_ids) == {"check_performance", "request_retrain"}
    assert monitor.get_task("request_retrain").upstream_task_ids == {"check_performance"}
    assert [o.uri for o in monitor.get_task("request_retrain").outlets] == [RETRAIN_REQUEST]
    assert monitor.timetable.expression == "0 7 * * *" and monitor.max_active_runs == 1
    assert all(t.retries >= 2 for t in monitor.tasks)
    assert set(monitor.params.keys()) == {"as_of", "source"}


def test_decay_on_drifted_days_requests_one_retrain_on_the_second_day_with_reason_performance(
    monitor, world, client, mailbox, tmp_path
):
    from airflow.sdk import Asset

    from airflow_mlops.operators.base import run_trigger

    champion = world["champion"]
    conf = {"source": str(world["labels"])}
    before = len(_requests())

    first = monitor.test(logical_date=_when("2026-02-18", 7), run_conf=conf | {"as_of": DAYS[0]})
    assert task_states(first) == {"check_performance": "success", "request_retrain": "skipped"}
    second = monitor.test(logical_date=_when("2026-02-19", 7), run_conf=conf | {"as_of": DAYS[1]})
    assert task_states(second) == {"check_performance": "success", "request_retrain": "success"}
    third = monitor.test(logical_date=_when("2026-02-20", 7), run_conf=conf | {"as_of": DAYS[2]})
    assert task_states(third) == {"check_performance": "success", "request_retrain": "skipped"}  # cool-down

    runs = _checks(client)
    assert [r.data.tags["performance.day"] for r in runs] == DAYS
    assert [r.data.tags["performance.verdict"] for r in runs] == ["decay", "decay", "decay"]
    assert [r.data.tags["retrain.requested"] for r in runs] == ["false", "true", "false"]
    assert "cool-down" in runs[2].data.tags["retrain.reason"]
    promised = runs[0].data.metrics["promised"]
    evaluation = client.get_run(
        client.get_model_version("churn_classifier", champion.version).tags["evaluation.run_id"]
    )
    assert promised == evaluation.data.metrics["challenger.roc_auc"]  # the champion's own test-set figure
    for run in runs:  # the concept drift costs the champion clearly more than the tolerance
        m = run.data.metrics
        assert m["join_rate"] == 1.0 and m["rows"] == 400 and m["realized.high"] < promised - 0.02
    assert {a.path for a in client.list_artifacts(runs[1].info.run_id, "performance")} >= {
        "performance/days.csv",
        "performance/realized_roc_auc.png",
        "performance/check.json",
    }
    downloaded = client.download_artifacts(runs[1].info.run_id, "performance/check.json", str(tmp_path))
    check = json.loads(Path(downloaded).read_text())  # into tmp_path: MLflow's default temp folder is never removed
    assert check["classes_from"] == f"the training data of version(s) {champion.version}"  # its own snapshot
    assert check["join"]["matched"] == 400 and check["promise"]["test_rows"] == 1200

    [request] = _requests()[before:]
    assert request["source_dag_id"] == "churn_performance_monitor" and request["source_run_id"] == second.run_id
    extra = request["extra"]
    assert extra["trigger"] == "performance" and extra["as_of"] == DAYS[1] and extra["day"] == DAYS[1]
    assert extra["reference_version"] == str(champion.version) and extra["mlflow_run_id"] == runs[1].info.run_id
    assert extra["summary"].startswith("DECAY") and extra["realized"] < extra["promised"]
    # the retrain run it starts records the trigger (on its MLflow runs, versions and ledger entries: run_tags)
    event = SimpleNamespace(extra=extra)
    context = {
        "dag_run": SimpleNamespace(run_type="asset_triggered"),
        "triggering_asset_events": {Asset(RETRAIN_REQUEST): [event]},
    }
    assert run_trigger(context)["mlops.trigger"] == "performance"

    [mail] = mailbox.matching("churn: performance decay", quote(second.run_id, safe=""))
    body = mailbox.body(mail)
    assert "Performance decay confirmed for churn_classifier" in body and f"#/runs/{runs[1].info.run_id}" in body
    assert f"on the labels of {DAYS[1]}" in body
    assert not mailbox.matching("churn: performance decay", quote(first.run_id, safe=""))


def test_a_join_under_min_join_rate_fails_the_check_with_the_counts(monitor, world, client, tmp_path, capfd):
    import pandas as pd

    labels = pd.read_csv(world["labels"] / "churn_labels_2026-02-09.csv", dtype={"customer_id": str})
    partial = tmp_path / "labels"
    partial.mkdir()
    labels.head(300).to_csv(partial / "churn_labels_2026-02-09.csv", index=False)
    before = len(_requests())
    capfd.readouterr()

    run = monitor.test(logical_date=_when("2026-02-16", 8), run_conf={"as_of": "2026-02-09", "source": str(partial)})

    assert task_states(run) == {"check_performance": "failed", "request_retrain": "upstream_failed"}
    log = capfd.readouterr()
    text = log.out + log.err
    assert "under monitoring.performance.min_join_rate (90%)" in text
    assert "300 of 400 prediction(s) matched a label (join rate 75.0%)" in text
    assert "100 prediction(s) without a label yet" in text
    assert len(_requests()) == before
    failed = [r for r in _checks(client) if r.data.tags["performance.day"] == "2026-02-09"]
    assert [r.info.status for r in failed] == ["FAILED"] and failed[0].data.tags["performance.verdict"] == "join_failed"
