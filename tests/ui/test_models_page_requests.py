"""The Models page's POST bodies are validated by their Pydantic models in the real API server: a missing, unknown
or ill-typed field is a 422 that names it, and nothing moves."""

from __future__ import annotations

import pytest
from test_models_page import aliases, csrf_of
from ui_server import running_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server(tmp_path_factory, airflow_db, churn_config):
    with running_server(tmp_path_factory.mktemp("ui_requests"), churn_config) as s:
        yield s


def _refused(response, field: str) -> None:
    assert response.status_code == 422, response.text
    answer = response.json()
    assert field in [e["field"] for e in answer["errors"]], answer
    assert f"{field}: " in answer["detail"], answer  # the page shows `detail` as text: it names the field


def test_a_rollback_with_a_missing_unknown_or_ill_typed_field_is_a_422_naming_it(server):
    url = f"/mlops/api/models/{server.model}/rollback"
    before = aliases(server)
    champion = before["champion"]
    with server.http("admin") as admin:
        headers = {"X-CSRF-Token": csrf_of(admin.get(f"/mlops/models/{server.model}").text)}
        _refused(admin.post(url, json={"reason": "bad night"}, headers=headers), "expected_champion")
        _refused(admin.post(url, json={"expected_champion": champion}, headers=headers), "reason")
        _refused(
            admin.post(url, json={"reason": "bad night", "expected_champion": {"version": champion}}, headers=headers),
            "expected_champion",
        )
        _refused(
            admin.post(
                url, json={"reason": "bad night", "expected_champion": champion, "to_version": ["1"]}, headers=headers
            ),
            "to_version",
        )
        # a misspelt field is refused, not ignored (ignored, it would roll back to another version than asked)
        _refused(
            admin.post(
                url, json={"reason": "bad night", "expected_champion": champion, "to_verison": "1"}, headers=headers
            ),
            "to_verison",
        )
        blank = admin.post(url, json={"reason": "  ", "expected_champion": champion}, headers=headers)
        _refused(blank, "reason")
        assert "reason is required" in blank.json()["detail"]
        # a forged POST is refused before its body is read: 403, not 422
        assert admin.post(url, json={"to_verison": 1}).status_code == 403
    assert aliases(server) == before


def test_an_approval_answer_with_a_bad_decision_or_id_is_a_422_naming_it(server):
    url = f"/mlops/api/models/{server.model}/approvals"
    body = {"dag_id": "churn_retrain", "run_id": "manual__2026-02-12", "decision": "approve", "comment": ""}
    with server.http("admin") as admin:
        headers = {"X-CSRF-Token": csrf_of(admin.get(f"/mlops/models/{server.model}").text)}
        _refused(admin.post(url, json={**body, "decision": "maybe"}, headers=headers), "decision")
        _refused(admin.post(url, json={**body, "dag_id": ["churn_retrain"]}, headers=headers), "dag_id")
        missing = {k: v for k, v in body.items() if k != "run_id"}
        _refused(admin.post(url, json=missing, headers=headers), "run_id")
        # the ids Airflow's audit log stores in its columns are checked before it writes them (a list was a 500)
        _refused(admin.post(url, json={**body, "run_id": {"id": 1}}, headers=headers), "run_id")
