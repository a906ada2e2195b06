"""End-to-end: churn_scoring (built from include/pipelines/churn.yaml) run by the real task runner (dag.test())
on real MLflow and GX: the day's predictions partition and the mlops://churn/predictions Asset event."""

from __future__ import annotations

import copy
import datetime as dt
from types import SimpleNamespace

import pytest
from conftest import ROOT, churn_stream, task_states

PREDICTIONS = "mlops://churn/predictions"
DAY = "2026-02-12"


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    return bag


@pytest.fixture(scope="module")
def scoring(dagbag):
    return dagbag.get_dag("churn_scoring")


def _when(day: str, hour: int) -> dt.datetime:
    """A distinct logical date per dag.test() call (the same one would reuse the same DAG run)."""
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC)


def _batch(folder, day: str = DAY, rows: int = 1000, drop: str | None = None):
    """The day's unlabeled records (no `churned`), as the upstream export writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = churn_stream.daily_batch(dt.date.fromisoformat(day), rows=rows).drop(
        columns=["churned", *([drop] if drop else [])]
    )
    path = folder / f"churn_{day}.csv"
    frame.to_csv(path, index=False)
    return path


def _prediction_events() -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == PREDICTIONS)
            .order_by(AssetEvent.id)
        ).all()
        return [{"extra": dict(e.extra or {}), "source_dag_id": e.source_dag_id} for e in events]


def test_dag_shape_and_schedule(scoring, dagbag, churn_config):
    from airflow_mlops.dag_builders import scoring_dag

    assert scoring.task_ids == ["score"]
    task = scoring.get_task("score")
    assert [o.uri for o in task.outlets] == [PREDICTIONS]
    assert {"config_path", "day", "source"} <= set(task.template_fields)
    rendered = copy.deepcopy(task)
    rendered.render_template_fields({"params": {"as_of": "2026-02-03", "source": "/data/day.csv"}})
    assert (rendered.day, rendered.source) == ("2026-02-03", "/data/day.csv")
    assert rendered.config_path == str(ROOT / "include" / "pipelines" / "churn.yaml")
    default = copy.deepcopy(task)
    default.render_template_fields({"params": {"as_of": None, "source": None}})
    assert (default.day, default.source) == ("", "")
    assert scoring.timetable.timetable.expression == "0 5 * * *"
    assert [a.uri for a in scoring.timetable.asset_condition.objects] == ["mlops://churn/new-batch"]
    assert scoring.max_active_runs == 1 and task.retries >= 2 and "scoring" in scoring.tags
    assert "mlops://churn/predictions" in scoring.doc_md
    # diabetes has no `scoring:` section: no scoring DAG.
    assert "diabetes_scoring" not in dagbag.dag_ids and "diabetes_retrain" in dagbag.dag_ids
    no_source = churn_config._replace(scoring=churn_config.scoring._replace(source=None))
    assert scoring_dag(no_source, []) is None


def test_the_day_is_the_param_else_the_new_batch_event_else_the_logical_date(churn_config):
    from airflow.sdk import Asset

    from airflow_mlops.operators.scoring import _scoring_day

    run = SimpleNamespace(run_after=None)
    logical = {"logical_date": dt.datetime(2026, 2, 12, 5, 0, tzinfo=dt.UTC), "dag_run": run}
    assert _scoring_day(logical | {"triggering_asset_events": {}}, churn_config) == dt.date(2026, 2, 12)
    event = SimpleNamespace(extra={"as_of": "2026-02-09"})
    triggered = {
        "logical_date": None,
        "dag_run": SimpleNamespace(run_after=dt.datetime(2026, 2, 12, 9, tzinfo=dt.UTC)),
        "triggering_asset_events": {Asset("mlops://churn/new-batch"): [event]},
    }
    assert _scoring_day(triggered, churn_config) == dt.date(2026, 2, 9)
    tokyo = churn_config._replace(schedule=churn_config.schedule._replace(timezone="Asia/Tokyo"))
    late = {"logical_date": dt.datetime(2026, 2, 11, 20, 0, tzinfo=dt.UTC), "dag_run": run}  # 05:00 in Tokyo
    assert _scoring_day(late, tokyo) == dt.date(2026, 2, 12)


def test_no_champion_skips_and_writes_nothing(scoring, mlops_home, mlflow_client, tmp_path):
    run = scoring.test(logical_date=_when(DAY, 1), run_conf={"as_of": DAY, "source": str(_batch(tmp_path))})

    assert task_states(run) == {"score": "skipped"}
    assert not (mlops_home / "predictions").exists()


def test_scores_with_the_champion_and_emits_the_predictions_asset(
    scoring, mlops_home, mlflow_client, churn_config, tmp_path
):
    import pandas as pd

    from airflow_mlops.core import registry, training
    from airflow_mlops.core.data import read_snapshot, take_snapshot
    from airflow_mlops.core.rows import split_roles

    source = tmp_path / "data" / "churn"
    churn_stream.write_stream(source, dt.date(2026, 1, 1), 14, rows=120)
    snap = take_snapshot(churn_config, source=str(source), window_end=dt.date(2026, 1, 14))
    trained = training.train_candidate(
        split_roles(read_snapshot(snap["uri"]), churn_config),
        churn_config,
        "logistic_regression",
        client=mlflow_client,
        experiment="churn",
        data_digest=snap["digest"],
        data_uri=snap["uri"],
        tags={"data.digest": snap["digest"]},
    )
    version = registry.register_challenger(
        mlflow_client, "churn_classifier", trained["model_uri"], trained["run_id"], tags={"data.digest": snap["digest"]}
    )["version"]
    registry.set_alias(mlflow_client, "churn_classifier", registry.CHAMPION, version)
    events_before = len(_prediction_events())
    batch = _batch(tmp_path / "batches")

    run = scoring.test(logical_date=_when(DAY, 5), run_conf={"as_of": DAY, "source": str(batch)})

    assert task_states(run) == {"score": "success"}
    path = mlops_home / "predictions" / "churn" / f"day={DAY}" / "predictions.parquet"
    got = pd.read_parquet(path)
    assert len(got) == 1000 and set(got["model_version"]) == {version}
    assert got["customer_id"].tolist() == pd.read_csv(batch)["customer_id"].tolist()
    events = _prediction_events()[events_before:]
    assert len(events) == 1 and events[0]["source_dag_id"] == "churn_scoring"
    assert events[0]["extra"] | {"path": str(path)} == events[0]["extra"]
    assert {k: events[0]["extra"][k] for k in ("as_of", "rows", "model_version")} == {
        "as_of": DAY,
        "rows": 1000,
        "model_version": version,
    }
    scoring_runs = mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name("churn-scoring").experiment_id], "tags.`mlops.step` = 'score'"
    )
    assert [r.data.tags["airflow.dag_id"] for r in scoring_runs] == ["churn_scoring"]

    # Bad input fails the task for good (no retry) and leaves the day's partition as it was.
    kept = path.read_bytes()
    broken = _batch(tmp_path / "broken", drop="contract")
    failed = scoring.test(logical_date=_when(DAY, 6), run_conf={"as_of": DAY, "source": str(broken)})
    assert task_states(failed) == {"score": "failed"}
    assert path.read_bytes() == kept
    # A batch that fails the suite: the same, and the validation evidence is in MLflow.
    invalid = _batch(tmp_path / "invalid")
    frame = pd.read_csv(invalid)
    frame.loc[frame.index[::40], "contract"] = "lifetime"
    frame.to_csv(invalid, index=False)
    failed = scoring.test(logical_date=_when(DAY, 7), run_conf={"as_of": DAY, "source": str(invalid)})
    assert task_states(failed) == {"score": "failed"}
    assert path.read_bytes() == kept
    (check,) = mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name("churn-scoring").experiment_id], "tags.`mlops.step` = 'validate'"
    )
    assert check.data.tags["validation.success"] == "false" and check.data.metrics["expectations_failed"] == 1
    assert len(_prediction_events()) == events_before + 1
