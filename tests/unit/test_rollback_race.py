"""Rollback and promotion are compare-and-swap on the expected champion under the registry lock (real MLflow SQLite
store, real threads); a stale approval is refused and recorded as stale, never as a promotion."""

from __future__ import annotations

import threading

import pytest
from conftest import ROOT, binary_config, task_states

from airflow_mlops.core import approval, registry, training

MODEL = "race_test_model"
ACTOR = {"airflow.dag_id": "retrain", "airflow.run_id": "manual__1", "airflow.task_id": "deploy"}


@pytest.fixture
def champion(mlflow_client, breast_cancer):
    """Versions 1..3 of MODEL (one trained model, three data digests): champion 2, previous_champion 1."""
    from airflow_mlops.core.rows import split_roles

    config = binary_config(MODEL, ("mean_radius", "mean_area"), pipeline="race_test")
    result = training.train_candidate(
        split_roles(breast_cancer, config),
        config,
        "logreg",
        client=mlflow_client,
        experiment=config.name,
        data_digest="sha256:r",
        data_uri="file:///x.parquet",
        tags={},
    )
    for i in range(1, 4):
        registry.register_challenger(
            mlflow_client, MODEL, result["model_uri"], result["run_id"], tags={"data.digest": f"sha256:{i}"}
        )
    registry.promote(mlflow_client, MODEL, "1", expected_champion=None, actor=ACTOR, reason="first")
    registry.promote(mlflow_client, MODEL, "2", expected_champion="1", actor=ACTOR, reason="second")
    return mlflow_client


def _at_once(client, *calls) -> list:
    """Run each call(own_client) in its own thread, released together; their results or exceptions, in order."""
    from mlflow import MlflowClient

    barrier, out = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i: int) -> None:
        own = MlflowClient(tracking_uri=client.tracking_uri, registry_uri=client._registry_uri)
        barrier.wait()
        try:
            out[i] = calls[i](own)
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


def test_two_rollbacks_at_once_exactly_one_moves_the_other_names_the_champion(champion):
    def roll_back(who: str):
        return lambda c: registry.rollback(c, MODEL, expected_champion="2", actor={"actor": who}, reason=f"by {who}")

    outcomes = _at_once(champion, roll_back("alice"), roll_back("bob"))

    moved = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(moved) == 1 and len(refused) == 1, outcomes
    assert isinstance(refused[0], registry.ChampionMovedError), repr(refused[0])
    assert "the champion is now version 1" in str(refused[0]) and "Nothing was changed" in str(refused[0])
    assert (refused[0].expected, refused[0].found) == ("2", "1")
    # not rolled back twice (which would have put v2 back): v1 champion, v2 previous
    assert registry.read_aliases(champion, MODEL) == {"champion": "1", "previous_champion": "2"}
    assert [e["action"] for e in registry.history(champion, MODEL)].count("rollback") == 2  # champion + previous


def test_a_rollback_racing_a_deploy_one_wins(champion):
    outcomes = _at_once(
        champion,
        lambda c: registry.rollback(c, MODEL, expected_champion="2", actor={"actor": "alice"}, reason="bad v2"),
        lambda c: registry.promote(c, MODEL, "3", expected_champion="2", actor=ACTOR, reason="v3 is better"),
    )
    assert sum(isinstance(o, dict) for o in outcomes) == 1, outcomes
    loser = next(o for o in outcomes if isinstance(o, Exception))
    assert isinstance(loser, registry.ChampionMovedError) and loser.expected == "2", repr(loser)
    winner = next(o for o in outcomes if isinstance(o, dict))
    assert registry.read_aliases(champion, MODEL) == {"champion": winner["champion"], "previous_champion": "2"}
    assert f"the champion is now version {winner['champion']}" in str(loser)


def test_cli_rollback_expect(champion, capsys):
    from airflow_mlops import cli

    assert cli.main(["rollback", MODEL, "--expect", "1", "--reason", "late"]) == cli.EXIT_REFUSED
    assert "the champion is now version 2" in capsys.readouterr().err
    assert registry.read_aliases(champion, MODEL) == {"champion": "2", "previous_champion": "1"}
    assert cli.main(["rollback", MODEL, "--expect", "2", "--reason", "bad v2"]) == cli.EXIT_OK
    assert registry.read_aliases(champion, MODEL) == {"champion": "1", "previous_champion": "2"}
    last = registry.history(champion, MODEL)[-1]
    assert last["actor"]["user.id"] and last["actor"]["user.name"] == last["actor"]["user"]


EVIDENCE = {
    "model_name": MODEL,
    "challenger_version": "3",
    "champion_version": "1",
    "decision": "REJECT",
    "timeout_hours": 2,
}
PERSON = {"id": "u-7", "name": "Alice Example"}


def _assert_recorded_stale(client, who_actor: str) -> None:
    tags = client.get_model_version(MODEL, "3").tags
    assert tags["approval.decision"] == "stale" and tags.get("decision") != "PROMOTE"
    assert (tags["approval.expected_champion"], tags["approval.found_champion"]) == ("1", "2")
    assert (tags["approval.by"], tags["approval.by_id"]) == ("Alice Example", "u-7")
    assert "champion.promoted_at" not in tags
    [entry] = [e for e in registry.history(client, MODEL) if e["action"] == approval.STALE_ACTION]
    assert entry["version"] == "3" and entry["by"] == who_actor and entry["at"]
    assert (entry["expected_champion"], entry["found_champion"]) == ("1", "2")
    assert (entry["actor"]["user.id"], entry["actor"]["user.name"]) == ("u-7", "Alice Example")
    assert "stale approval" in entry["reason"] and "champion is now v2" in entry["reason"]
    assert registry.read_aliases(client, MODEL) == {"champion": "2", "previous_champion": "1"}  # untouched


def test_an_approval_against_a_moved_champion_is_refused_as_stale(champion):
    fresh = approval.refuse_if_stale(
        champion, MODEL, {**EVIDENCE, "champion_version": "2"}, user=PERSON, comment="ok", task_tags={}
    )
    assert fresh is None and "approval.decision" not in champion.get_model_version(MODEL, "3").tags

    stale = approval.refuse_if_stale(champion, MODEL, EVIDENCE, user=PERSON, comment="ship it", task_tags={})
    assert stale["decision"] == approval.STALE and not stale["approved"]
    _assert_recorded_stale(champion, "airflow-user:Alice Example")


DEPLOY_DAG = """
import datetime as dt

from airflow.sdk import DAG, task

from airflow_mlops.operators.deploy import DeployModelOperator

with DAG("race_stale_deploy", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)):
    @task(task_id="branch")
    def answered(ti=None) -> None:
        ti.xcom_push(key="approval", value={record!r})

    answered() >> DeployModelOperator(task_id="deploy", config_path={config!r}, verdict={verdict!r},
                                      snapshot={{"uri": "file:///never-read.parquet"}}, approval_from="branch",
                                      retries=0)
"""


def test_the_deploy_of_a_stale_approval_records_it_stale_and_promotes_nothing(
    champion, airflow_db, tmp_path, monkeypatch
):
    """The DAG side: the person approved against v1, the champion is v2 by the time deploy runs (dag.test)."""
    import json

    from airflow.dag_processing.dagbag import DagBag

    record = approval.outcome(EVIDENCE, chosen=approval.APPROVE, user=PERSON, at=None, comment="ship it")
    verdict = {
        "model_name": MODEL,
        "challenger_version": "3",
        "champion_version": "1",
        "decision": "REJECT",
        "needs_approval": True,
        "promote": False,
        "reasons": ["FAIL: borderline"],
    }
    (tmp_path / "race_stale_deploy.py").write_text(
        DEPLOY_DAG.format(record=record, verdict=verdict, config=str(ROOT / "include" / "pipelines" / "churn.yaml"))
    )
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    monkeypatch.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        json.dumps(
            [
                {"name": "race-stale", "classpath": local, "kwargs": {"path": str(tmp_path)}},
                {"name": "dags-folder", "classpath": local, "kwargs": {}},
            ]
        ),
    )
    run = DagBag(dag_folder=str(tmp_path)).get_dag("race_stale_deploy").test()

    assert task_states(run)["deploy"] == "failed"
    _assert_recorded_stale(champion, "airflow-user:Alice Example")
