"""core.registry promotion on a real MLflow SQLite store: compare-and-swap, undo, restore, rollback, ledger."""

from __future__ import annotations

import json

import pytest
from conftest import binary_config

from airflow_mlops.core import registry, training

MODEL = "promotion_test_model"
ACTOR = {"airflow.dag_id": "retrain", "airflow.run_id": "manual__1", "airflow.task_id": "deploy"}


def small_config(features=("mean_radius", "mean_texture", "mean_area"), name=MODEL):
    return binary_config(name, features, pipeline="promotion_test")


@pytest.fixture(scope="module")
def frame(breast_cancer):
    return breast_cancer


@pytest.fixture
def versions(mlflow_client, frame):
    """Three READY versions of MODEL (one trained model registered for three data digests)."""
    from airflow_mlops.core.rows import split_roles

    config = small_config()
    split = split_roles(frame, config)
    result = training.train_candidate(
        split,
        config,
        "logreg",
        client=mlflow_client,
        experiment=config.name,
        data_digest="sha256:aa",
        data_uri="file:///x.parquet",
        tags={},
    )
    return [
        registry.register_challenger(
            mlflow_client, MODEL, result["model_uri"], result["run_id"], tags={"data.digest": f"sha256:{i}"}
        )["version"]
        for i in range(1, 4)
    ]


def aliases(client):
    return registry.read_aliases(client, MODEL)


def test_first_promotion_without_champion(mlflow_client, versions):
    result = registry.promote(mlflow_client, MODEL, "1", expected_champion=None, actor=ACTOR, reason="first model")
    assert result["champion"] == "1" and result["previous_champion"] is None
    assert result["before"] == {"champion": None, "previous_champion": None}
    assert result["moved_at"].endswith("Z")
    assert aliases(mlflow_client) == {"champion": "1", "previous_champion": None}
    tags = mlflow_client.get_model_version(MODEL, "1").tags
    assert tags["champion.promoted_by"] == "airflow:retrain/manual__1/deploy"
    assert tags["champion.reason"] == "first model" and tags["champion.replaced"] == ""


def test_second_promotion_moves_previous_champion(mlflow_client, versions):
    registry.promote(mlflow_client, MODEL, "1", expected_champion=None, actor=ACTOR, reason="first")
    result = registry.promote(mlflow_client, MODEL, "2", expected_champion="1", actor=ACTOR, reason="better")
    assert (result["champion"], result["previous_champion"]) == ("2", "1")
    assert aliases(mlflow_client) == {"champion": "2", "previous_champion": "1"}
    assert mlflow_client.get_model_version(MODEL, "2").tags["champion.replaced"] == "1"
    old = mlflow_client.get_model_version(MODEL, "1").tags
    assert old["champion.demoted_by"] == "airflow:retrain/manual__1/deploy" and old["champion.replaced_by"] == "2"
    # a retried task finds its promotion done and moves nothing
    again = registry.promote(mlflow_client, MODEL, "2", expected_champion="1", actor=ACTOR, reason="better")
    assert again["already_done"] and again["before"] == result["before"]
    assert len(registry.history(mlflow_client, MODEL)) == 3


def test_compare_and_swap_refuses_a_moved_champion(mlflow_client, versions):
    registry.promote(mlflow_client, MODEL, "1", expected_champion=None, actor=ACTOR, reason="first")
    # someone else moves the champion between evaluation (against v1) and deployment
    mlflow_client.set_registered_model_alias(MODEL, "champion", "3")
    with pytest.raises(registry.ChampionMovedError, match=r"champion is now version 3 .*Nothing was changed"):
        registry.promote(mlflow_client, MODEL, "2", expected_champion="1", actor=ACTOR, reason="late")
    assert aliases(mlflow_client) == {"champion": "3", "previous_champion": None}
    assert "champion.promoted_at" not in mlflow_client.get_model_version(MODEL, "2").tags
    assert len(registry.history(mlflow_client, MODEL)) == 1
    # expecting no champion while there is one is refused as well
    with pytest.raises(registry.ChampionMovedError, match="decided against no champion"):
        registry.promote(mlflow_client, MODEL, "2", expected_champion=None, actor=ACTOR, reason="x")


def test_missing_and_not_ready_versions_are_refused(mlflow_client, versions, monkeypatch):
    with pytest.raises(registry.UnknownModelError, match=r"has no version '9'.*versions: 1, 2, 3"):
        registry.promote(mlflow_client, MODEL, "9", expected_champion=None, actor=ACTOR, reason="x")
    with pytest.raises(registry.UnknownModelError, match=r"no registered model named 'nope'.*promotion_test_model"):
        registry.promote(mlflow_client, "nope", "1", expected_champion=None, actor=ACTOR, reason="x")
    from mlflow.entities.model_registry import ModelVersion

    real = mlflow_client.get_model_version
    pending = ModelVersion(MODEL, "2", 0, status="PENDING_REGISTRATION")
    monkeypatch.setattr(
        mlflow_client,
        "get_model_version",
        lambda name, version: pending if str(version) == "2" else real(name, version),
    )
    with pytest.raises(registry.PromotionError, match="PENDING_REGISTRATION, not READY.*Nothing was changed"):
        registry.promote(mlflow_client, MODEL, "2", expected_champion=None, actor=ACTOR, reason="x")
    assert aliases(mlflow_client) == {"champion": None, "previous_champion": None}


def test_write_failing_half_way_leaves_aliases_as_before(mlflow_client, versions, monkeypatch):
    registry.promote(mlflow_client, MODEL, "1", expected_champion=None, actor=ACTOR, reason="first")
    registry.promote(mlflow_client, MODEL, "2", expected_champion="1", actor=ACTOR, reason="second")
    real = mlflow_client.set_registered_model_alias
    calls = []

    def flaky(name, alias, version):
        calls.append((alias, version))
        if len(calls) == 2:
            raise ConnectionError("registry went away")
        return real(name, alias, version)

    monkeypatch.setattr(mlflow_client, "set_registered_model_alias", flaky)
    with pytest.raises(registry.AliasWriteError, match="registry went away.*put back as before"):
        registry.promote(mlflow_client, MODEL, "3", expected_champion="2", actor=ACTOR, reason="third")
    assert calls[:2] == [("champion", "3"), ("previous_champion", "2")]
    assert aliases(mlflow_client) == {"champion": "2", "previous_champion": "1"}
    assert [e["to"] for e in registry.history(mlflow_client, MODEL)] == ["1", "2", "1"]  # nothing recorded


def test_ledger_failure_undoes_the_move(mlflow_client, versions, monkeypatch):
    registry.promote(mlflow_client, MODEL, "1", expected_champion=None, actor=ACTOR, reason="first")
    monkeypatch.setattr(mlflow_client, "log_text", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(registry.AliasWriteError, match="could not record it in the ledger.*disk full"):
        registry.promote(mlflow_client, MODEL, "2", expected_champion="1", actor=ACTOR, reason="second")
    assert aliases(mlflow_client) == {"champion": "1", "previous_champion": None}


def test_restore_puts_aliases_back(mlflow_client, versions):
    first = registry.promote(mlflow_client, MODEL, "1", expected_champion=None, actor=ACTOR, reason="first")
    second = registry.promote(mlflow_client, MODEL, "2", expected_champion="1", actor=ACTOR, reason="second")
    third = registry.promote(mlflow_client, MODEL, "3", expected_champion="2", actor=ACTOR, reason="third")
    assert aliases(mlflow_client) == {"champion": "3", "previous_champion": "2"}

    restored = registry.restore(mlflow_client, MODEL, third, actor=ACTOR, reason="smoke test failed")
    assert (restored["champion"], restored["previous_champion"]) == ("2", "1")
    assert aliases(mlflow_client) == {"champion": "2", "previous_champion": "1"}
    assert registry.restore(mlflow_client, MODEL, third, actor=ACTOR, reason="again")["already_done"]
    # a restore that no longer matches the champion is refused, nothing changed
    with pytest.raises(registry.ChampionMovedError, match="champion is now version 2"):
        registry.restore(mlflow_client, MODEL, first, actor=ACTOR, reason="stale")
    # restoring the first promotion deletes aliases that did not exist
    registry.restore(mlflow_client, MODEL, second, actor=ACTOR, reason="undo second")
    registry.restore(mlflow_client, MODEL, first, actor=ACTOR, reason="undo first")
    assert aliases(mlflow_client) == {"champion": None, "previous_champion": None}
    last = registry.history(mlflow_client, MODEL)[-2:]
    assert [(e["action"], e["alias"], e["from"], e["to"]) for e in last] == [
        ("restore", "previous_champion", "1", None),
        ("restore", "champion", "1", None),
    ]


def test_rollback_restores_previous_champion_and_is_recorded(mlflow_client, versions):
    with pytest.raises(registry.PromotionError, match="has no champion"):
        registry.rollback(mlflow_client, MODEL, to_version=None, actor=ACTOR, reason="x")
    registry.promote(mlflow_client, MODEL, "1", expected_champion=None, actor=ACTOR, reason="first")
    with pytest.raises(registry.PromotionError, match="no previous_champion alias"):
        registry.rollback(mlflow_client, MODEL, to_version=None, actor=ACTOR, reason="x")
    registry.promote(mlflow_client, MODEL, "2", expected_champion="1", actor=ACTOR, reason="second")

    cli = {"actor": "cli:alice@ops-1"}
    result = registry.rollback(mlflow_client, MODEL, to_version=None, actor=cli, reason="bad predictions")
    assert (result["champion"], result["previous_champion"]) == ("1", "2")
    assert aliases(mlflow_client) == {"champion": "1", "previous_champion": "2"}
    with pytest.raises(registry.PromotionError, match="version 1 is already the champion"):
        registry.rollback(mlflow_client, MODEL, to_version="1", actor=cli, reason="x")
    with pytest.raises(registry.UnknownModelError, match="has no version '7'"):
        registry.rollback(mlflow_client, MODEL, to_version="7", actor=cli, reason="x")
    with pytest.raises(registry.UnknownModelError, match="no registered model named 'ghost'"):
        registry.rollback(mlflow_client, "ghost", to_version=None, actor=cli, reason="x")
    registry.rollback(mlflow_client, MODEL, to_version="3", actor=cli, reason="try 3")
    assert aliases(mlflow_client) == {"champion": "3", "previous_champion": "1"}

    moves = [e for e in registry.history(mlflow_client, MODEL) if e["action"] == "rollback"]
    assert [(e["alias"], e["from"], e["to"]) for e in moves] == [
        ("champion", "2", "1"),
        ("previous_champion", "1", "2"),
        ("champion", "1", "3"),
        ("previous_champion", "2", "1"),
    ]
    assert {e["by"] for e in moves} == {"cli:alice@ops-1"}
    assert mlflow_client.get_model_version(MODEL, "3").tags["champion.reason"] == "try 3"


def test_history_lists_every_move_in_order_with_actor_and_reason(mlflow_client, versions):
    assert registry.history(mlflow_client, MODEL) == []
    registry.promote(mlflow_client, MODEL, "1", expected_champion=None, actor=ACTOR, reason="first")
    p2 = registry.promote(mlflow_client, MODEL, "2", expected_champion="1", actor=ACTOR, reason="second")
    registry.restore(mlflow_client, MODEL, p2, actor={"actor": "cli:bob@h"}, reason="rolled back")
    entries = registry.history(mlflow_client, MODEL)
    assert [(e["action"], e["alias"], e["from"], e["to"], e["reason"]) for e in entries] == [
        ("promote", "champion", None, "1", "first"),
        ("promote", "champion", "1", "2", "second"),
        ("promote", "previous_champion", None, "1", "second"),
        ("restore", "champion", "2", "1", "rolled back"),
        ("restore", "previous_champion", "1", None, "rolled back"),
    ]
    assert entries[0]["actor"] == ACTOR and entries[0]["by"] == "airflow:retrain/manual__1/deploy"
    assert entries[-1]["by"] == "cli:bob@h"
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)

    # the ledger is a readable artifact of a dedicated run, pointed at by a registered-model tag
    run_id = mlflow_client.get_registered_model(MODEL).tags[registry.LEDGER_RUN_TAG]
    run = mlflow_client.get_run(run_id)
    assert run.info.run_name == f"{MODEL} ledger"
    assert mlflow_client.get_experiment(run.info.experiment_id).name == registry.LEDGER_EXPERIMENT
    import mlflow

    text = mlflow.artifacts.load_text(f"runs:/{run_id}/{registry.LEDGER_ARTIFACT}")
    assert json.loads(text) == entries
    # the run is found by its tag when the model tag is lost
    mlflow_client.delete_registered_model_tag(MODEL, registry.LEDGER_RUN_TAG)
    assert registry.history(mlflow_client, MODEL) == entries


def test_status_reports_aliases_and_latest_decision(mlflow_client, versions):
    registry.promote(mlflow_client, MODEL, "1", expected_champion=None, actor=ACTOR, reason="first")
    mlflow_client.set_model_version_tag(MODEL, "2", "decision", "reject")
    mlflow_client.set_model_version_tag(MODEL, "2", "decision.reasons", json.dumps(["roc_auc did not improve"]))
    mlflow_client.set_model_version_tag(MODEL, "2", "decision.at", "2026-01-02T00:00:00Z")
    [row] = registry.status(mlflow_client)
    assert row["name"] == MODEL and row["champion"] == "1" and row["challenger"] == "3"
    assert row["previous_champion"] is None
    # the challenger (v3) has no decision yet: the last evaluated version is reported
    assert (row["evaluated_version"], row["decision"], row["reasons"]) == ("2", "reject", ["roc_auc did not improve"])
    assert row["data_digest"] == "sha256:2" and row["champion_data_digest"] == "sha256:1"
    mlflow_client.set_model_version_tag(MODEL, "3", "decision", "promote")
    assert registry.status(mlflow_client)[0]["evaluated_version"] == "3"
