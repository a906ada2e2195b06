"""The Models page in the real Airflow API server: auth, CSRF, escaping, one status source, and a real browser.

One API server for the module (embedded SQLite state; users admin = ADMIN, viewer = VIEWER) over a real
MLflow store where `churn_classifier` v2 is the champion the real gate judged against v1.
"""

from __future__ import annotations

import json
import time

import pytest
from ui_server import SCREENSHOTS, XSS_REASON, XSS_TRIGGER, chrome, running_server

from airflow_mlops.core import registry

pytestmark = pytest.mark.timeout(300)
#: How long the browser may take to show a page: Airflow's UI is a large React app, and on a busy 2-core machine
#: its first load took over 30 s. Only a failing test waits this long.
BROWSER_WAIT_S = 90


@pytest.fixture(scope="module")
def server(tmp_path_factory, airflow_db, churn_config):
    with running_server(tmp_path_factory.mktemp("ui"), churn_config) as s:
        yield s


@pytest.fixture
def browser():
    driver = chrome()
    yield driver
    driver.quit()


def aliases(server) -> dict:
    return registry.read_aliases(server.client, server.model)


def csrf_of(page_html: str) -> str:
    marker = '<meta name="csrf-token" content="'
    assert marker in page_html, "the page carries no CSRF token"
    return page_html.split(marker, 1)[1].split('"', 1)[0]


# --------------------------------------------------------------------------- HTTP: auth, CSRF, one source


def test_anonymous_and_bad_tokens_are_refused(server):
    with server.http() as anonymous:
        for path in (
            "/mlops/models",
            f"/mlops/models/{server.model}",
            "/mlops/api/models",
            f"/mlops/api/models/{server.model}",
            "/mlops/runs/churn_retrain/manual__2026-02-12",
        ):
            assert anonymous.get(path).status_code == 401, path
        page = anonymous.get("/mlops/models", headers={"Accept": "text/html"})
        assert page.status_code == 401 and "Sign in to Airflow" in page.text
        assert anonymous.post(f"/mlops/api/models/{server.model}/rollback", json={"reason": "x"}).status_code == 401
    with server.http() as forged:
        forged.cookies.set("_token", "not-a-jwt")
        assert forged.get("/mlops/api/models").status_code in (401, 403)
    assert aliases(server)["champion"] == server.extra["v2"]


def test_the_page_data_is_the_cli_status(server, monkeypatch, capsys):
    from airflow_mlops import cli

    with server.http("viewer") as viewer:
        page = viewer.get("/mlops/api/models").json()
    monkeypatch.setenv("AIRFLOW_MLOPS_HOME", str(server.home / "mlops"))
    assert cli.main(["status", "--json"]) == 0
    out, _ = capsys.readouterr()
    assert page == json.loads(out)  # one source: core.overview.model_status
    [row] = page
    assert (row["champion"], row["previous_champion"], row["pipeline"]) == (
        server.extra["v2"],
        server.extra["v1"],
        "churn",
    )
    assert row["reasons"] == server.extra["reasons"]


def test_model_page_shows_evidence_versions_and_ledger(server):
    with server.http("viewer") as viewer:
        detail = viewer.get(f"/mlops/api/models/{server.model}").json()
        assert detail["can_edit"] is False
        assert {e["path"] for e in detail["evidence"]} >= {"evaluation/roc.png", "evaluation/bootstrap.png"}
        html = viewer.get(f"/mlops/models/{server.model}").text
        src = html.split('<img src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        png = viewer.get(src)
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        assert viewer.get(src.replace("sig=", "sig=0")).status_code == 404  # only links the page signed
        run_tab = viewer.get("/mlops/runs/churn_retrain/manual__2026-02-12").text
    assert [v["version"] for v in detail["versions"]] == [server.extra["v2"], server.extra["v1"]]
    assert detail["versions"][0]["dag_run_id"] == "manual__2026-02-12"
    assert [e["alias"] for e in detail["ledger"]] == ["champion", "previous_champion", "champion"]
    assert "Read-only" in html and 'id="rollback"' not in html and "csrf-token" not in html
    assert "/dags/churn_retrain/runs/manual__2026-02-12" in html  # the DAG run that made the version
    assert "http://127.0.0.1:5000/#/models/churn_classifier/versions/2" in html  # its MLflow page
    assert XSS_REASON not in html and "&lt;script&gt;window.__xss" in html
    assert XSS_TRIGGER not in html and "&lt;img src=x onerror=" in html
    assert "churn_classifier" in run_tab and ">2<" in run_tab


def test_forged_posts_are_refused(server):
    url = f"/mlops/api/models/{server.model}/rollback"
    before = aliases(server)
    with server.http("admin") as admin, server.http("viewer") as viewer:
        token = csrf_of(admin.get(f"/mlops/models/{server.model}").text)
        body = {"reason": "forged"}
        assert admin.post(url, json=body).status_code == 403  # no token
        assert admin.post(url, json=body, headers={"X-CSRF-Token": "1." + "0" * 32}).status_code == 403
        assert (
            admin.post(url, json=body, headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}).status_code
            == 403
        )
        form = admin.post(url, data=body, headers={"X-CSRF-Token": token})  # a cross-site form cannot send JSON
        assert form.status_code in (403, 415, 422)
        assert viewer.post(url, json=body, headers={"X-CSRF-Token": token}).status_code == 403  # not the viewer's
        refused = admin.post(url, json={"reason": "  "}, headers={"X-CSRF-Token": token})
        assert refused.status_code == 422 and "reason is required" in refused.text
        stale = admin.post(url, json={"reason": "x", "expected_champion": "99"}, headers={"X-CSRF-Token": token})
        assert stale.status_code == 409 and "reload the page" in stale.text
    assert aliases(server) == before


# --------------------------------------------------------------------------- the browser


def login(browser, server, user: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    from ui_server import PASSWORDS

    browser.get(f"{server.url}/auth/login")
    wait = WebDriverWait(browser, BROWSER_WAIT_S)
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(PASSWORDS[user])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "/auth/login" not in d.current_url)


def models_frame_shows(css: str):
    """A wait condition: into the Models iframe, and is `css` there? The iframe is found afresh at each try: the
    Airflow UI may mount it again after it first appeared, and a frame switched into before that is a dead one."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    def shows(browser) -> bool:
        try:
            browser.switch_to.default_content()
            browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='Models']"))
            return bool(browser.find_elements(By.CSS_SELECTOR, css))
        except WebDriverException:
            return False

    return shows


def open_models_from_navigation(browser, server):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    # an action reloads the page: an element found just before the reload is stale, so look again
    wait = WebDriverWait(
        browser, BROWSER_WAIT_S, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    )
    try:
        nav = wait.until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, "nav a[href$='/plugin/models'], a[href$='/plugin/models']"))
        )
        nav.click()
        # Airflow then mirrors the iframe's own path into its route: /plugin/models/mlops/models
        wait.until(lambda d: "/plugin/models" in d.current_url)
        wait.until(models_frame_shows("table.models"))
    except TimeoutException:  # show what the browser showed instead
        browser.switch_to.default_content()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "failed_navigation.png"))
        links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a")]
        pytest.fail(
            f"the Models page did not open from the navigation: at {browser.current_url}, links {links}; "
            f"screenshot {SCREENSHOTS / 'failed_navigation.png'}"
        )
    return wait


def test_admin_rolls_back_in_the_browser_and_the_ledger_names_them(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    v1, v2 = server.extra["v1"], server.extra["v2"]
    login(browser, server, "admin")
    wait = open_models_from_navigation(browser, server)
    row = browser.find_element(By.CSS_SELECTOR, "table.models tbody tr")
    assert row.find_elements(By.CSS_SELECTOR, "td.alias")[0].text == v2  # the champion
    browser.switch_to.default_content()
    browser.save_screenshot(str(SCREENSHOTS / "models.png"))
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='Models']"))
    row.find_element(By.LINK_TEXT, server.model).click()
    wait.until(ec.presence_of_element_located((By.ID, "rollback")))
    # the evidence charts load lazily (below the fold since the panels' charts joined them): load them all now
    browser.execute_script("document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
    wait.until(
        lambda d: d.execute_script(
            "return [...document.images].length >= 2 && [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        )
    )
    assert browser.execute_script("return window.__xss") is None  # the <script> reason and <img> trigger stayed text
    assert XSS_REASON in browser.find_element(By.CSS_SELECTOR, "ul.reasons").text
    champion = browser.find_element(By.CSS_SELECTOR, ".card.champion p").text
    assert champion == f"version {v2}"

    form = browser.find_element(By.ID, "rollback")
    form.find_element(By.NAME, "reason").send_keys("complaints since 9:00 <b>not bold</b>")
    browser.switch_to.default_content()
    browser.save_screenshot(str(SCREENSHOTS / "model.png"))
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='Models']"))
    form.find_element(By.ID, "rollback-button").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".card.champion p").text == f"version {v1}")
    first = browser.find_element(By.CSS_SELECTOR, "table.ledger tbody tr.ledger-entry")
    assert first.find_element(By.CSS_SELECTOR, "td.who").text == "airflow-ui:admin"
    assert first.find_element(By.CSS_SELECTOR, "td.why").text == "complaints since 9:00 <b>not bold</b>"
    browser.execute_script("document.querySelector('section.evidence').scrollIntoView()")
    browser.switch_to.default_content()
    browser.save_screenshot(str(SCREENSHOTS / "rolled_back.png"))

    assert aliases(server) == {"champion": v1, "previous_champion": v2}
    last = registry.history(server.client, server.model)[-1]
    assert (last["action"], last["by"], last["actor"]["user"]) == ("rollback", "airflow-ui:admin", "admin")
    # put it back for the other tests, through the same core function
    registry.rollback(server.client, server.model, actor={"actor": "test"}, reason="test restores v2")


def test_viewer_sees_no_action_and_a_forged_post_from_their_browser_is_refused(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    before = aliases(server)
    login(browser, server, "viewer")
    wait = open_models_from_navigation(browser, server)
    browser.find_element(By.LINK_TEXT, server.model).click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".actions.readonly")))
    assert browser.find_elements(By.ID, "rollback-button") == []
    status = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: "POST", credentials: "same-origin",
              headers: {"Content-Type": "application/json", "X-CSRF-Token": "1.abc"},
              body: JSON.stringify({reason: "forged by a viewer"})}).then(r => done(r.status), e => done(String(e)));""",
        f"/mlops/api/models/{server.model}/rollback",
    )
    assert status == 403
    browser.switch_to.default_content()
    browser.save_screenshot(str(SCREENSHOTS / "viewer.png"))
    time.sleep(0.2)
    assert aliases(server) == before

    # Airflow mirrors the page's path into its own route: the address bar is a link to this model's page
    wait.until(lambda d: f"/plugin/models/mlops/models/{server.model}" in d.current_url)
    deep_link = browser.current_url
    browser.get(f"{server.url}/dags")
    browser.get(deep_link)
    wait.until(models_frame_shows(".actions.readonly"))
    assert server.model in browser.find_element(By.CSS_SELECTOR, "h1").text
