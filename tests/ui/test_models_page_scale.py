"""The Models page and `airflow-mlops status` read a bounded number of model versions, however many a model has.

A real MLflow SQLite store: a model with 120 versions (v40 the last one judged, v60 champion, v120 challenger not
judged yet) and a ledger of 61 moves. Every MLflow call of the page's code goes through a counting client: the page may
read a page of versions and a few single ones, never the whole list (MLflow's SQL `get_registered_model` loads every
version too, so it is counted as reading them all).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from airflow_mlops.core import overview, registry

MODEL = "scale_test_model"
VERSIONS = 120
ACTOR = {"airflow.dag_id": "retrain", "airflow.run_id": "manual__1", "airflow.task_id": "deploy"}


class CountingClient:
    """Passes every call to the MlflowClient; counts calls and the model versions they return."""

    def __init__(self, client) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()
        self.versions_read = 0

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if not callable(method):  # e.g. tracking_uri
            return method

        def counted(*args, **kwargs):
            self.calls[name] += 1
            result = method(*args, **kwargs)
            if name == "search_model_versions":
                self.versions_read += len(result)
            elif name in ("get_model_version", "get_model_version_by_alias"):
                self.versions_read += 1
            elif name == "get_registered_model":  # the SQL store loads every version to find the latest ones
                self.versions_read += VERSIONS
            return result

        return counted


@pytest.fixture
def big_model(mlflow_client, tmp_path):
    client = mlflow_client
    client.create_registered_model(MODEL)
    experiment = client.create_experiment("scale-test", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    for i in range(1, VERSIONS + 1):
        tags = {"data.digest": f"sha256:{i}", "mlops.trigger": "drift" if i == 60 else "schedule"}
        if i in (10, 40):
            tags |= {
                "decision": "reject",
                "decision.reasons": json.dumps([f"v{i} too weak"]),
                "decision.at": f"2026-01-{i // 10:02d}T00:00:00Z",
                "evaluation.run_id": run.info.run_id,
            }
        client.create_model_version(MODEL, (tmp_path / "artifacts" / "model").as_uri(), run.info.run_id, tags=tags)
    client.set_terminated(run.info.run_id)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    registry.append_ledger(client, MODEL, [
        {"at": (start + dt.timedelta(minutes=i)).isoformat(), "model": MODEL, "action": "promote", "alias": "champion",
         "from": str(i), "to": str(i + 1), "by": "airflow:retrain/x/deploy", "actor": {}, "reason": f"move {i}"}
        for i in range(60)
    ])  # fmt: skip
    registry.promote(client, MODEL, "60", expected_champion=None, actor=ACTOR, reason="the drift retrain")
    registry.set_alias(client, MODEL, registry.CHALLENGER, str(VERSIONS))
    return client


def test_page_and_status_read_a_bounded_number_of_versions(big_model):
    client = CountingClient(big_model)
    detail = overview.model_detail(client, MODEL, configs=[])
    assert client.calls["get_registered_model"] == 0
    # a page of versions (and one more: is there an older page?), the aliased ones, the newest judged one, and those
    # the shown ledger moves name (for their trigger): never all of them
    assert client.versions_read <= 2 * overview.PAGE_SIZE + 10 < VERSIONS, (client.versions_read, client.calls)
    again = CountingClient(big_model)
    assert overview.model_detail(again, MODEL, configs=[]) == detail  # the ledger and the gate's plots are kept now
    # one MLflow call per thing read: 3 aliases, the page, the newest judged version, the versions the ledger moves
    # name; the ledger runs' locations are kept (their folders are listed, the runs not re-read or searched)
    assert sum(again.calls.values()) <= 6, again.calls
    assert not (again.calls["get_run"] or again.calls["search_runs"] or again.calls["get_experiment_by_name"]), (
        again.calls
    )

    status = detail["status"]
    assert (status["champion"], status["challenger"], status["latest_version"]) == ("60", str(VERSIONS), str(VERSIONS))
    # the challenger has no verdict yet: the newest judged version's is shown
    assert (status["evaluated_version"], status["reasons"]) == ("40", ["v40 too weak"])
    assert [v["version"] for v in detail["versions"]] == [str(n) for n in range(120, 95, -1)]
    assert detail["versions"][0]["aliases"] == ["challenger"]
    assert (detail["versions_newer"], detail["versions_older"]) == (None, 96)
    assert detail["ledger_total"] == 61
    newest = detail["ledger"][0]
    assert (newest["to"], newest["reason"], newest["trigger"]) == ("60", "the drift retrain", "drift")
    assert detail["ledger"][1]["to"] == "60" and detail["ledger"][1]["reason"] == "move 59"

    client = CountingClient(big_model)
    [row] = overview.model_status(client, configs=[])
    assert client.calls["get_registered_model"] == 0 and client.versions_read <= 3, (client.versions_read, client.calls)
    assert row == status  # one source: the status row is the page's


def test_aliases_are_read_at_every_request_once_per_version(big_model):
    registry.set_alias(big_model, MODEL, registry.CHALLENGER, "60")  # the champion is the challenger too
    client = CountingClient(big_model)
    status = overview.model_detail(client, MODEL, configs=[])["status"]
    assert (status["champion"], status["challenger"], status["previous_champion"]) == ("60", "60", None)
    assert client.calls["get_model_version_by_alias"] == 2, client.calls  # the champion's read names its challenger

    registry.set_alias(big_model, MODEL, registry.CHALLENGER, "119")
    detail = overview.model_detail(big_model, MODEL, configs=[])
    assert detail["status"]["challenger"] == "119" and detail["versions"][1]["aliases"] == ["challenger"]


def test_older_version_pages_are_read_in_mlflow(big_model):
    client = CountingClient(big_model)
    page = overview.model_detail(client, MODEL, configs=[], versions_before=96, ledger_page=3)
    assert [v["version"] for v in page["versions"]] == [str(n) for n in range(95, 70, -1)]
    assert (page["versions_newer"], page["versions_older"]) == (None, 71)  # the newer page is the newest one
    assert client.versions_read <= 3 * overview.PAGE_SIZE + 10 < VERSIONS, (client.versions_read, client.calls)
    assert [e["to"] for e in page["ledger"]] == [str(n) for n in range(11, 0, -1)]
    assert page["ledger"][0]["trigger"] == "schedule"  # read for the moves shown, not for all versions

    middle = overview.model_detail(big_model, MODEL, configs=[], versions_before=71)
    assert [v["version"] for v in middle["versions"]] == [str(n) for n in range(70, 45, -1)]
    assert middle["versions"][10]["aliases"] == ["champion"]
    assert (middle["versions_newer"], middle["versions_older"]) == (96, 46)
    last = overview.model_detail(big_model, MODEL, configs=[], versions_before=21)
    assert [v["version"] for v in last["versions"]] == [str(n) for n in range(20, 0, -1)]
    assert (last["versions_newer"], last["versions_older"]) == (46, None)


def test_the_ledger_cache_sees_every_new_move(big_model):
    assert overview.model_detail(big_model, MODEL, configs=[])["status"]["champion"] == "60"
    registry.rollback(big_model, MODEL, to_version="59", actor={"actor": "cli:test"}, reason="back")
    detail = overview.model_detail(big_model, MODEL, configs=[])
    assert detail["status"]["champion"] == "59" and detail["status"]["previous_champion"] == "60"
    assert detail["ledger_total"] == 63
    assert [(e["alias"], e["to"], e["reason"]) for e in detail["ledger"][:2]] == [
        ("champion", "59", "back"),
        ("previous_champion", "60", "back"),
    ]


def test_unknown_model_is_refused(big_model):
    with pytest.raises(registry.UnknownModelError):
        overview.model_detail(big_model, "no_such_model", configs=[])
