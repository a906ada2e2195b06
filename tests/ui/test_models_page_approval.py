"""Approving a borderline challenger from the Models page, in the real API server and a real browser.

The pipeline `gate_ui` is churn_fast with `margin: 0` and `approval: {mode: borderline, band: 1.0}` (as in
tests/dags/test_approval_run.py): a subprocess runs its retrain DAG with dag.test() twice on the same data, on the
session's Airflow DB and the API server's MLflow store three times; the first run makes the champion, the others
retrain the same model (gain exactly 0), so the gate's REJECT is borderline and the `branch` task waits for a
person. The admin approves the second on the Models page (the run resumes and deploys) and rejects the third
(the champion stays).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml
from conftest import ROOT, churn_stream
from ui_server import SCREENSHOTS, SECRET, chrome, running_server, stop

from airflow_mlops.core import registry

pytestmark = pytest.mark.timeout(300)

PIPELINE = "gate_ui"
MODEL = "gate_ui_classifier"
DAG_ID = "gate_ui_retrain"
XSS = "<script>window.__xss = 'approval'</script>"

# Runs in a subprocess (the task runner wants a main thread of its own): the champion, then the waiting run.
RUNNER = """
import datetime as dt, json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.get_dag(sys.argv[2])
logical = dt.datetime(2026, 1, 28, 2, 0, tzinfo=dt.UTC)  # the data: 2026-01-01 .. 2026-01-28
for hours in (0, 1, 2):
    run = dag.test(logical_date=logical + dt.timedelta(hours=hours), run_conf={"source": sys.argv[3]})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print(json.dumps({"run_id": run.run_id, "states": states}), flush=True)
"""


def _gate_config() -> dict:
    config = yaml.safe_load((ROOT / "include" / "pipelines" / "churn_fast.yaml").read_text())
    del config["variant_of"], config["scoring"]
    config["pipeline"] = PIPELINE
    config["model"]["name"] = MODEL
    config["schedule"] = {"retrain": None, "drift_monitor": None, "scoring": None, "performance_monitor": None}
    config["evaluation"]["margin"] = 0.0
    config["evaluation"]["approval"] = {"mode": "borderline", "band": 1.0, "timeout_hours": 2}
    return config


@pytest.fixture(scope="module")
def server(tmp_path_factory, airflow_db, churn_config):
    """The API server (project: the `gate_ui` pipeline) and the subprocess whose second run waits for a person."""
    base = tmp_path_factory.mktemp("ui_approval")
    project = base / "project"
    (project / "include" / "pipelines").mkdir(parents=True)
    shutil.copytree(ROOT / "include" / "expectations", project / "include" / "expectations")
    (project / "include" / "pipelines" / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(_gate_config()))
    data = base / "data"
    churn_stream.write_stream(data, dt.date(2026, 1, 1), 28, rows=200)
    runner: dict = {}

    def start_runs(client) -> None:  # the MLflow store exists now: the runs overlap the API server's start
        env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
        runner["out"] = base / "runs.jsonl"
        runner["proc"] = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(ROOT / "dags"), DAG_ID, str(data)],
            env=env,
            cwd=base,
            stdout=runner["out"].open("wb"),
            stderr=(base / "runs.log").open("wb"),
            start_new_session=True,
        )

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_MLOPS_PROJECT_ROOT", str(project))
        with running_server(base, churn_config, prepare=start_runs, champion=False) as s:
            s.extra["runner"], s.extra["base"] = runner, base
            s.extra["pending"] = _wait_for_request(runner, base)
            try:
                yield s
            finally:
                stop(runner["proc"])
                _fail_waiting_tasks()


def _wait_for_request(runner: dict, base, after: set[str] = frozenset()) -> dict:
    """The first request waiting for a person whose run is not in `after`."""
    from airflow_mlops import approval_requests as approval

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        pending = [p for p in approval.pending_approvals(dag_ids=[DAG_ID]) if p["run_id"] not in after]
        if pending:
            return pending[0]
        if runner["proc"].poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"the run never waited for a person:\n{(base / 'runs.log').read_text()[-4000:]}")


def _fail_waiting_tasks() -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.dag_id == DAG_ID, TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
            .values(state=TaskInstanceState.FAILED)
        )


def _runs(server, count: int, timeout: float = 120) -> list[dict]:
    """The first `count` runs of the subprocess once they have ended."""
    out, deadline = server.extra["runner"]["out"], time.monotonic() + timeout
    while True:
        runs = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
        if len(runs) >= count:
            return runs[:count]
        assert time.monotonic() < deadline and server.extra["runner"]["proc"].poll() is None, (
            server.extra["base"] / "runs.log"
        ).read_text()[-4000:]
        time.sleep(0.5)


def _token_for(user: str) -> str:
    """A CSRF token the server would have given `user` (signed with its secret): the forgery is then refused by
    the authorization, not only by the token check."""
    issued = str(int(time.time()))
    key = ("airflow-mlops-ui:" + SECRET).encode()
    sig = hmac.new(key, "\x1f".join(("csrf", user, issued)).encode(), hashlib.sha256).hexdigest()[:32]
    return f"{issued}.{sig}"


@pytest.fixture
def browser():
    driver = chrome()
    yield driver
    driver.quit()


def in_frame(browser, screenshot: str | None = None) -> None:
    from selenium.webdriver.common.by import By

    browser.switch_to.default_content()
    if screenshot:
        browser.save_screenshot(str(SCREENSHOTS / screenshot))
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='Models']"))


# --------------------------------------------------------------------------- escaping (no server)


def test_the_pending_section_renders_everything_as_text():
    from airflow_mlops.ui import render

    pending = {
        "model": MODEL,
        "version": "2",
        "champion_version": "1",
        "dag_id": DAG_ID,
        "run_id": "r<1>",
        "task_id": "branch",
        "map_index": -1,
        "waiting_since": "2026-03-01T02:00:00+00:00",
        "timeout_at": None,
        "subject": f"Promote? {XSS}",
        "can_respond": True,
        "evidence": {
            "primary_metric": "roc_auc",
            "challenger": 0.8,
            "champion": 0.8,
            "why": [XSS],
            "failed": [XSS],
            "guard_rails": [{"metric": XSS, "challenger": 1, "champion": 1, "tolerance": XSS}],
        },
    }
    detail = {
        "status": {"name": MODEL},
        "pending_approvals": [pending],
        "evidence": [],
        "versions": [],
        "versions_before": None,
        "versions_older": None,
        "ledger": [],
        "ledger_total": 0,
        "ledger_page": 1,
        "page_size": 25,
    }
    page = render.model_detail(detail, render.Urls("/mlops", ""), can_edit=False)
    assert "<script>" not in page and page.count("&lt;script&gt;window.__xss") == 5
    assert 'data-run-id="r&lt;1&gt;"' in page and "/runs/r%3C1%3E/tasks/branch/required_actions" in page
    index = render.models_index([{"name": MODEL}], render.Urls("/mlops", ""), {MODEL: 1})
    assert "1 waiting for approval" in index


def test_the_page_and_the_airflow_request_state_the_same_evidence():
    import html

    from airflow_mlops.core import approval
    from airflow_mlops.ui import render

    ev = {
        "model_name": MODEL,
        "challenger_version": "3",
        "champion_version": "2",
        "decision": "PROMOTE",
        "primary_metric": "roc_auc",
        "challenger": 0.7039,
        "champion": 0.6922,
        "gain": 0.0117,
        "ci_low": 0.0083,
        "ci_high": 0.0148,
        "confidence": 0.95,
        "margin": 0.005,
        "test_rows": 1234,
        "test_days": ["2026-04-09", "2026-04-15"],
        "excluded_rows": 56,
        "timeout_hours": 24,
        "why": ["thin"],
    }
    facts = approval.evidence_facts(ev)
    assert facts == [
        "roc_auc gain 0.0117, 95% interval 0.0083 .. 0.0148 (paired bootstrap), margin 0.005",
        "judged on 1234 test rows (2026-04-09 .. 2026-04-15), 56 excluded as the champion's",
    ]
    _, body = approval.request_text(ev, {})
    pending = {
        "model": MODEL,
        "version": "3",
        "champion_version": "2",
        "dag_id": DAG_ID,
        "run_id": "r1",
        "task_id": "branch",
        "subject": "Promote?",
        "evidence": ev,
    }
    detail = {
        "status": {"name": MODEL},
        "pending_approvals": [pending],
        "evidence": [],
        "versions": [],
        "versions_before": None,
        "versions_older": None,
        "ledger": [],
        "ledger_total": 0,
        "ledger_page": 1,
        "page_size": 25,
    }
    page = html.unescape(render.model_detail(detail, render.Urls("/mlops", ""), can_edit=False))
    for fact in facts:
        assert f"- {fact}" in body.splitlines() and f"<li>{fact}</li>" in page


# --------------------------------------------------------------------------- the viewer, then the admin


def test_viewer_sees_the_request_without_buttons_and_a_forged_answer_is_refused(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from test_models_page import login, open_models_from_navigation

    pending = server.extra["pending"]
    url = f"/mlops/api/models/{MODEL}/approvals"
    body = {"dag_id": DAG_ID, "run_id": pending["run_id"], "decision": "approve", "comment": "forged"}
    with server.http("viewer") as viewer:
        detail = viewer.get(f"/mlops/api/models/{MODEL}").json()
        [request] = detail["pending_approvals"]
        assert request["can_respond"] is False and request["version"] == pending["version"]
        # a token signed for the viewer gets past the CSRF check; the auth manager then refuses the answer
        forged = viewer.post(url, json=body, headers={"X-CSRF-Token": _token_for("viewer")})
        assert forged.status_code == 403 and "may not answer" in forged.text
        assert viewer.post(url, json=body, headers={"X-CSRF-Token": "1.abc"}).status_code == 403
    with server.http("admin") as admin:  # the admin's session without the page's token, or from another site
        assert admin.post(url, json=body).status_code == 403
        token = _token_for("admin")
        assert (
            admin.post(url, json=body, headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}).status_code
            == 403
        )
        bad = admin.post(url, json={**body, "decision": "reject", "comment": " "}, headers={"X-CSRF-Token": token})
        assert bad.status_code == 422 and "comment is required to reject" in bad.text
        other = admin.post("/mlops/api/models/other_model/approvals", json=body, headers={"X-CSRF-Token": token})
        assert other.status_code == 404  # this run waits for another model's promotion

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    login(browser, server, "viewer")
    wait = open_models_from_navigation(browser, server)
    browser.find_element(By.LINK_TEXT, MODEL).click()
    section = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "section#pending")))
    assert pending["subject"] in section.text and "Read-only" in section.text
    assert browser.find_elements(By.CSS_SELECTOR, "form.approval, button.approve") == []
    status = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: "POST", credentials: "same-origin",
              headers: {"Content-Type": "application/json", "X-CSRF-Token": arguments[1]},
              body: JSON.stringify(arguments[2])}).then(r => done(r.status), e => done(String(e)));""",
        url,
        _token_for("viewer"),
        body,
    )
    assert status == 403
    in_frame(browser, "approval_viewer.png")
    assert [p["run_id"] for p in _pending_now()] == [pending["run_id"]]  # still waiting


def _pending_now() -> list[dict]:
    from airflow_mlops import approval_requests as approval

    return approval.pending_approvals(dag_ids=[DAG_ID])


def test_admin_approves_in_the_browser_the_run_deploys_and_the_ledger_names_them(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from test_models_page import login, open_models_from_navigation

    pending = server.extra["pending"]
    version, before = pending["version"], pending["champion_version"]
    login(browser, server, "admin")
    wait = open_models_from_navigation(browser, server)
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "table.models tbody tr") if MODEL in r.text)
    assert row.find_element(By.CSS_SELECTOR, "a.waiting").text == "1 waiting for approval"
    assert row.find_elements(By.CSS_SELECTOR, "td.alias")[0].text == before
    in_frame(browser, "approval_models.png")
    browser.find_element(By.LINK_TEXT, MODEL).click()
    section = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "section#pending")))
    assert f"Promote {MODEL} v{version} to champion? (now v{before})" in section.text
    assert "roc_auc (primary)" in section.text and "within evaluation.approval.band 1" in section.text
    assert "judged on" in section.text and "Times out at".lower() in section.text.lower()
    assert (
        section.find_element(By.PARTIAL_LINK_TEXT, "Required Actions")
        .get_attribute("href")
        .endswith(
            f"/dags/{DAG_ID}/runs/{pending['run_id'].replace(':', '%3A').replace('+', '%2B')}/tasks/branch/required_actions"
        )
    )
    assert browser.find_element(By.CSS_SELECTOR, ".card.champion p").text == f"version {before}"

    form = section.find_element(By.CSS_SELECTOR, "form.approval")
    form.find_element(By.NAME, "comment").send_keys("gain is flat but the data is newer <b>ship it</b>")
    browser.execute_script("document.querySelector('section#pending').scrollIntoView()")
    in_frame(browser, "approval_pending.png")
    form.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait.until(lambda d: "Approved by admin" in d.find_element(By.CSS_SELECTOR, "form.approval output").text)

    # the waiting run resumes and deploys (in the subprocess). The deploy moves the aliases, then appends the
    # ledger: wait for the ledger's entry, so the page below shows both.
    deadline = time.monotonic() + 120
    while not any(m["alias"] == "champion" and m["to"] == version for m in registry.history(server.client, MODEL)):
        assert time.monotonic() < deadline, f"v{version} never became the champion in the ledger"
        time.sleep(0.5)
    browser.execute_script("location.reload()")  # the Models frame's page (the page also reloads itself)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".card.champion p").text == f"version {version}")
    assert browser.find_elements(By.CSS_SELECTOR, "section#pending") == []
    entry = next(
        e
        for e in browser.find_elements(By.CSS_SELECTOR, "table.ledger tbody tr.ledger-entry")
        if e.find_elements(By.CSS_SELECTOR, "td")[2].text == "champion"
    )
    assert entry.find_element(By.CSS_SELECTOR, "td.who").text == "airflow-user:admin"
    why = entry.find_element(By.CSS_SELECTOR, "td.why")
    assert why.text.startswith(f"v{version} approved by admin: gain is flat but the data is newer <b>ship it</b>\nmore")
    folded = why.find_element(By.CSS_SELECTOR, "details")  # the gate's checks, closed until clicked
    assert folded.get_attribute("open") is None and folded.get_attribute("textContent").startswith(
        "morethe gate said REJECT: judged on"
    )
    assert browser.execute_script("return window.__xss") is None
    browser.execute_script("window.scrollTo(0, 0)")
    in_frame(browser, "approval_approved.png")
    browser.execute_script("document.querySelector('section.ledger').scrollIntoView()")
    in_frame(browser, "approval_ledger.png")

    first, second = _runs(server, 2)
    assert second["states"]["branch"] == "success" and second["states"]["deploy"] == "success"
    assert second["states"]["record_rejection"] == "skipped"
    tags = server.client.get_model_version(MODEL, version).tags
    assert (tags["approval.decision"], tags["approval.by"]) == ("approved", "admin")
    assert tags["approval.comment"] == "gain is flat but the data is newer <b>ship it</b>"
    with server.http("admin") as admin:  # the first answer stands
        again = admin.post(
            f"/mlops/api/models/{MODEL}/approvals",
            headers={"X-CSRF-Token": _token_for("admin")},
            json={"dag_id": DAG_ID, "run_id": pending["run_id"], "decision": "reject", "comment": "late"},
        )
    assert again.status_code == 409 and "reload the page" in again.text


def test_admin_rejects_the_next_one_in_the_browser_the_champion_stays_and_the_ledger_names_them(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from test_models_page import login, open_models_from_navigation

    pending = _wait_for_request(server.extra["runner"], server.extra["base"], after={server.extra["pending"]["run_id"]})
    version, champion = pending["version"], pending["champion_version"]
    assert champion == server.extra["pending"]["version"]  # the one approved above
    login(browser, server, "admin")
    wait = open_models_from_navigation(browser, server)
    browser.find_element(By.LINK_TEXT, MODEL).click()
    section = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "section#pending")))
    assert f"Promote {MODEL} v{version} to champion? (now v{champion})" in section.text
    form = section.find_element(By.CSS_SELECTOR, "form.approval")
    form.find_element(By.CSS_SELECTOR, "button.reject").click()  # no comment: the page asks for one
    assert form.find_element(By.CSS_SELECTOR, "output").text == "A comment is required to reject."
    form.find_element(By.NAME, "comment").send_keys("no gain on the same data: <i>not worth a deploy</i>")
    form.find_element(By.CSS_SELECTOR, "button.reject").click()
    wait.until(lambda d: "Rejected by admin" in d.find_element(By.CSS_SELECTOR, "form.approval output").text)

    deadline = time.monotonic() + 120  # the run resumes in the subprocess and records the rejection
    while not any(
        m["action"] == "reject" and m.get("version") == version for m in registry.history(server.client, MODEL)
    ):
        assert time.monotonic() < deadline, f"the rejection of v{version} never reached the ledger"
        time.sleep(0.5)
    browser.execute_script("location.reload()")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "section#pending") == [])
    assert browser.find_element(By.CSS_SELECTOR, ".card.champion p").text == f"version {champion}"
    entry = next(
        e
        for e in browser.find_elements(By.CSS_SELECTOR, "table.ledger tbody tr.ledger-entry")
        if e.find_elements(By.CSS_SELECTOR, "td")[1].text == "reject"
    )
    assert entry.find_element(By.CSS_SELECTOR, "td.who").text == "airflow-user:admin"
    assert entry.find_element(By.CSS_SELECTOR, "td.why").text == (
        f"v{version} rejected by admin: no gain on the same data: <i>not worth a deploy</i>"
    )
    browser.execute_script("document.querySelector('section.ledger').scrollIntoView()")
    in_frame(browser, "approval_rejected.png")

    third = _runs(server, 3)[2]
    assert third["states"]["record_rejection"] == "success" and third["states"]["deploy"] == "skipped"
    assert registry.read_aliases(server.client, MODEL)["champion"] == champion
    tags = server.client.get_model_version(MODEL, version).tags
    assert (tags["approval.decision"], tags["approval.by"], tags["decision"]) == ("rejected", "admin", "REJECT")
