"""A verdict's panels where a person sees them: the Models page shows the slice table (worst slice first,
regressions highlighted, slices too small to judge marked) and both models' importance side by side, and more
briefly robustness and fairness; a verdict without panels shows nothing of them, and never fails the page.

Rendering is checked on a verdict written in the panels' schema (panel_fixture.py); the browser test judges real
models with the real gate (slices on region and contract, on churn_stream data) in the real Airflow API server.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import html
import json
import os
import time
from pathlib import Path

import pytest
from conftest import churn_stream
from panel_fixture import verdict_panels
from ui_server import SCREENSHOTS

from airflow_mlops.core import overview
from airflow_mlops.ui import render

MODEL = "churn_classifier"


def detail(panels, **status) -> dict:
    return {
        "status": {"name": MODEL, "decision": "reject", "evaluated_version": "3", "reasons": ["FAIL: x"], **status},
        "pending_approvals": [],
        "evidence": [],
        "panels": panels,
        "versions": [],
        "versions_before": None,
        "versions_older": None,
        "ledger": [],
        "ledger_total": 0,
        "ledger_page": 1,
        "page_size": 25,
    }


def page_of(panels) -> str:
    return render.model_detail(detail(panels), render.Urls("/mlops", ""), can_edit=False)


def rows_of(page: str, table: str) -> list[str]:
    body = page.split(f'class="panel-table {table}"', 1)[1].split("</table>", 1)[0]
    return body.split("<tr")[2:]  # after the header row


# --------------------------------------------------------------------------- rendering (no server)


def test_the_slice_table_shows_the_worst_slice_first_and_marks_regressions_and_small_slices():
    page = page_of(verdict_panels())
    assert 'id="panels"' in page and "version 3&#x27;s verdict" in page
    rows = rows_of(page, "slices")
    names = [html.unescape(r.split('<th scope="row">', 1)[1].split("</th>", 1)[0]) for r in rows]
    assert names == [
        "region=south",  # regresses
        "region=west",  # holds, -0.003
        "contract=two-year",  # +0.005
        "region=north",  # +0.008
        "region=east & contract=one-year",  # too small, 61 rows
        "region=<script>x</script>",  # too small, 12 rows: shown as text
    ]
    assert (
        rows[0].startswith(' class="slice regresses"')
        and '<span class="status regresses" title="roc_auc -0.069 &lt; -0.01 (p 0.0021 after holm)">regresses</span>'
        in rows[0]
    )
    assert "−0.069 <small>(−0.095 … −0.041)</small>" in rows[0] and "0.0003 (0.0021)" in rows[0]
    assert "0: 301 · 1: 101" in rows[0]  # the check's words are the status's tooltip; why a slice is too small is shown
    assert all(' class="slice insufficient-evidence"' in r for r in rows[4:])
    assert "61 rows &lt; evaluation.slices.min_slice_rows 200" in rows[4]
    assert "<script>x" not in page and "region=&lt;script&gt;x&lt;/script&gt;" in page
    assert "4 slices judged; 2 too small to judge; holm correction at alpha 0.05" in page
    assert '<article class="panel slices blocked"' in page and '<span class="badge bad">blocks</span>' in page
    assert "FAIL: slice region=south: roc_auc gain -0.069" in page


def test_the_importance_of_both_models_side_by_side():
    page = page_of(verdict_panels())
    rows = rows_of(page, "importance")
    features = [r.split('<th scope="row">', 1)[1].split("</th>", 1)[0] for r in rows]
    assert features[:3] == ["tenure_months", "monthly_charges", "contract"] and len(features) == 7
    top = rows[0]
    assert "0.081 <small>± 0.006</small>" in top and "0.074 <small>± 0.005</small>" in top
    assert top.count('<rect class="bar-challenger"') == 1 and top.count('<rect class="bar-champion"') == 1
    # one scale for both models: the longest bar is the largest importance plus its spread
    width = float(top.split('class="bar-challenger" x="0" y="1" width="', 1)[1].split('"', 1)[0])
    assert width == pytest.approx(0.081 / 0.087 * 180, abs=0.1)
    moved = [r for r in rows if 'class="feature moved"' in r]
    assert {r.split('<th scope="row">', 1)[1].split("</th>", 1)[0] for r in moved} == {"support_calls", "region"}
    assert "rankings agree: nDCG 0.97, Spearman 0.86" in page and "moved most: support_calls, region" in page
    assert "style=" not in page  # the page's CSP allows no inline style: bars are SVG attributes


def test_robustness_briefly_and_panels_in_reading_order():
    page = page_of(verdict_panels())
    order = [page.index(f'data-panel="{name}"') for name in ("slices", "importance", "robustness")]
    assert order == sorted(order)
    rows = rows_of(page, "robustness")
    assert "class flips when numeric inputs move 0.1 MAD" in rows[0] and "1.2%" in rows[0] and "1.0%" in rows[0]
    assert '<span class="status holds">passes</span>' in rows[0]
    assert 'data-panel="fairness"' not in page  # no fairness panel in this verdict: nothing said of it


def test_a_verdict_without_panels_shows_nothing_of_them():
    for nothing in ({}, None, {"slices": None}, "not a dict"):
        page = page_of(nothing)
        assert 'id="panels"' not in page and "Slices" not in page, nothing
    page = render.model_detail(
        {k: v for k, v in detail({}).items() if k != "panels"}, render.Urls("", ""), can_edit=False
    )
    assert "Latest verdict" in page and 'id="panels"' not in page


def test_a_panel_that_could_not_run_says_so():
    panels = {
        "slices": {"name": "slices", "summary": "unverified", "blocked": True,
                   "checks": [{"passed": False, "text": "slices: unverified, the panel failed to run (ValueError: x)"}],
                   "notes": [], "table": [], "metrics": {}},
        "importance": {"name": "importance", "summary": "not measured", "blocked": False, "checks": [],
                       "notes": ["importance: unverified, the panel failed to run (MemoryError: )"], "table": [],
                       "metrics": {}},
    }  # fmt: skip
    page = page_of(panels)
    assert "FAIL: slices: unverified, the panel failed to run (ValueError: x)" in page
    assert '<p class="summary">not measured</p>' in page and "MemoryError" in page


def test_a_waiting_approval_shows_its_verdicts_panels_folded():
    pending = {
        "model": MODEL, "version": "3", "champion_version": "2", "dag_id": "churn_retrain", "run_id": "r1",
        "task_id": "branch", "map_index": -1, "subject": "Promote?", "can_respond": False,
        "evidence": {"primary_metric": "roc_auc", "challenger": 0.8, "champion": 0.79},
        "panels": verdict_panels(),
    }  # fmt: skip
    d = detail({}) | {"pending_approvals": [pending]}
    page = render.model_detail(d, render.Urls("/mlops", ""), can_edit=False)
    request = page.split('<article class="request"', 1)[1].split("</article>\n", 1)[0]
    assert '<li class="fail"><b>slices</b>: worst slice region=south' in request
    assert '<details class="panels"><summary>Slices, importance, robustness and fairness of this verdict' in request
    assert 'class="panel-table slices"' in request


# --------------------------------------------------------------------------- reading the verdict back from MLflow


def test_the_page_reads_the_panels_from_the_evaluation_runs_verdict(mlflow_client, tmp_path):
    client = mlflow_client
    experiment = client.create_experiment("panels-read", artifact_location=(tmp_path / "artifacts").as_uri())
    with_panels, older = client.create_run(experiment), client.create_run(experiment)
    folder = tmp_path / "evaluation"
    folder.mkdir()
    (folder / "verdict.json").write_text(json.dumps({"decision": "reject", "panels": verdict_panels()}))
    client.log_artifacts(with_panels.info.run_id, str(folder), "evaluation")
    (folder / "verdict.json").write_text(json.dumps({"decision": "promote"}))  # before issue 24: no "panels"
    client.log_artifacts(older.info.run_id, str(folder), "evaluation")
    for run in (with_panels, older):
        client.set_terminated(run.info.run_id)
    no_verdict = client.create_run(experiment)
    client.set_terminated(no_verdict.info.run_id)

    panels = overview.verdict_panels(client, with_panels.info.run_id)
    assert set(panels) == {"slices", "importance", "robustness"}
    assert panels["slices"]["table"][1]["slice"] == "region=south"
    assert overview.verdict_panels(client, older.info.run_id) == {}
    assert overview.verdict_panels(client, no_verdict.info.run_id) == {}  # not the gate's run: nothing, no error
    assert overview.verdict_panels(client, None) == {}

    class Refusing:  # a finished run's verdict is kept: reading it again asks MLflow nothing
        def __getattr__(self, name):
            raise AssertionError(f"MLflow called again: {name}")

    for run in (with_panels, older, no_verdict):
        assert overview.verdict_panels(Refusing(), run.info.run_id) == overview.verdict_panels(client, run.info.run_id)


def test_a_store_that_cannot_be_read_shows_the_page_without_panels(mlflow_client):
    class Down:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise ConnectionError("MLflow is down")

            return fail

    assert overview.verdict_panels(Down(), "0123456789abcdef") == {}


# --------------------------------------------------------------------------- the real gate, the real server, a browser

SCREENS = Path(os.environ.get("MLOPS_UI_SCREENS", str(SCREENSHOTS)))


def sliced_config(churn_config):
    """churn.yaml with slices on region and contract (and their crossing), fairness across regions and
    monthly_charges declared monotonic: every panel on."""
    from airflow_mlops.core.config import parse_config

    raw = copy.deepcopy(churn_config.raw)
    raw["evaluation"]["slices"] = {"columns": ["region", "contract"], "crossings": [["region", "contract"]]}
    raw["evaluation"]["fairness"] = {"groups": ["region"]}
    for feature in raw["features"]:
        if feature["name"] == "monthly_charges":
            feature["monotonic"] = "increasing"
    return parse_config(raw, file=churn_config.path, check_estimators=False)


def judge_with_panels(client, config) -> dict:
    """v1 champion and v2 challenger, both gradient boosting on the same rows, but v2 trained where region=south's
    labels were shuffled (a broken upstream column for one region); v2 judged by the real gate and logged as the
    DAG does."""
    import numpy as np
    import pandas as pd

    from airflow_mlops.core import evaluation, registry, training
    from airflow_mlops.core.rows import split_roles

    df = pd.concat(
        [churn_stream.daily_batch(dt.date(2026, 1, 1) + dt.timedelta(days=i), rows=400) for i in range(10)],
        ignore_index=True,
    )  # the time split's 3 test days hold 1,200 rows: ~300 per region
    split = split_roles(df, config)
    south = split.train["region"] == "south"
    broken = split.train.copy()
    broken.loc[south, "churned"] = np.random.default_rng(7).permutation(broken.loc[south, "churned"].to_numpy())
    versions = []
    for i, (candidate, rows) in enumerate(
        (("hist_gradient_boosting", split), ("hist_gradient_boosting", dataclasses.replace(split, train=broken))), 1
    ):
        trained = training.train_candidate(
            rows, config, candidate, client=client, experiment=config.name, data_digest=f"sha256:{i}" + "cd" * 20,
            data_uri="file:///x.parquet", tags={},
        )  # fmt: skip
        tags = {"data.digest": f"sha256:{i}" + "cd" * 20, "airflow.dag_id": "churn_retrain",
                "airflow.run_id": f"manual__2026-01-1{i}", "mlops.trigger": "schedule"}  # fmt: skip
        versions.append(str(registry.register_challenger(client, MODEL, trained["model_uri"], trained["run_id"],
                                                         tags=tags)["version"]))  # fmt: skip
    v1, v2 = versions
    registry.promote(client, MODEL, v1, expected_champion=None, actor={"actor": "test"}, reason="first model")
    started = time.perf_counter()
    result = evaluation.evaluate(
        client, config, split.test, challenger_uri=f"models:/{MODEL}/{v2}", champion_uri=f"models:/{MODEL}/{v1}"
    )
    judged_s = time.perf_counter() - started
    run_id = evaluation.log_evaluation(
        client, result, experiment=f"{config.name}-evaluation", run_name="evaluate",
        tags={"airflow.dag_id": "churn_retrain"}, model_name=MODEL, challenger_version=v2, champion_version=v1,
    )  # fmt: skip
    return {"v1": v1, "v2": v2, "verdict": result.to_dict(), "run_id": run_id, "judge_s": judged_s}


@pytest.fixture(scope="module")
def judged(tmp_path_factory, airflow_db, churn_config):
    from ui_server import running_server

    made: dict = {}
    started = time.perf_counter()
    config = sliced_config(churn_config)
    with running_server(
        tmp_path_factory.mktemp("ui_panels"), config, lambda c: made.update(judge_with_panels(c, config)),
        champion=False,
    ) as server:  # fmt: skip
        server.extra.update(made, setup_s=time.perf_counter() - started)
        yield server


@pytest.fixture
def browser():
    from ui_server import chrome

    driver = chrome()
    yield driver
    driver.quit()


def shot(browser, name: str, *, frame: bool = True) -> Path:
    """A screenshot of the whole window (Airflow's UI around the Models frame); back into the frame after."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / name
    if frame:
        browser.switch_to.default_content()
    browser.save_screenshot(str(path))
    if frame:
        into_frame(browser)
    return path


def into_frame(browser) -> None:
    from selenium.webdriver.common.by import By

    browser.switch_to.default_content()
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='Models']"))


@pytest.mark.timeout(900)
def test_a_person_reads_the_real_gates_slices_and_importance_on_the_models_page(judged, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from test_models_page import login, open_models_from_navigation

    from airflow_mlops.core.evaluation import panel_view

    started = time.perf_counter()
    panels = judged.extra["verdict"]["panels"]
    assert {"slices", "importance"} <= set(panels), f"the gate produced no slices/importance panel: {set(panels)}"
    slices = panels["slices"]
    expected = [r["slice"] for r in panel_view.slices_worst_first(slices["table"])]
    statuses = {r["slice"]: r["status"] for r in slices["table"]}
    assert "insufficient evidence" in statuses.values()  # the crossings of region and contract are small

    login(browser, judged, "viewer")
    wait = open_models_from_navigation(browser, judged)
    browser.find_element(By.LINK_TEXT, judged.model).click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "section#panels table.slices")))

    # the slice table: worst slice first, regressions highlighted, slices too small to judge marked
    rows = browser.find_elements(By.CSS_SELECTOR, "section#panels table.slices tbody tr")
    shown = [r.find_element(By.CSS_SELECTOR, "th").text for r in rows]
    assert shown == expected[: len(shown)] and len(shown) == min(len(expected), panel_view.SHOWN_ROWS)
    for row, name in zip(rows, shown, strict=True):
        css = row.get_attribute("class")
        status = statuses[name]
        assert row.find_element(By.CSS_SELECTOR, "span.status").text == status
        assert ("regresses" in css) == (status == "regresses") and ("insufficient-evidence" in css) == (
            status == "insufficient evidence"
        )
    if "regresses" in statuses.values():
        assert "regresses" in rows[0].get_attribute("class")
        reasons = browser.find_element(By.CSS_SELECTOR, "section.verdict ul.reasons").text
        assert shown[0] in reasons  # the verdict's reasons name the worst slice
        red = rows[0].find_element(By.CSS_SELECTOR, "td").value_of_css_property("background-color")
        assert red != "rgba(0, 0, 0, 0)", red  # highlighted
    browser.execute_script("document.querySelector('section.verdict').scrollIntoView()")
    shot(browser, "panels_verdict.png")
    browser.execute_script("document.querySelector('article.panel.slices').scrollIntoView()")
    shot(browser, "panels_slices.png")

    # importance: both models side by side, numbers and bars on one scale
    features = browser.find_elements(By.CSS_SELECTOR, "section#panels table.importance tbody tr")
    assert len(features) == min(len(panels["importance"]["table"]), panel_view.SHOWN_ROWS) > 1
    top = features[0]
    widths = [float(r.get_attribute("width")) for r in top.find_elements(By.CSS_SELECTOR, "svg.bars rect")]
    assert len(widths) == 2 and max(widths) > 0, widths  # challenger and champion
    assert top.find_elements(By.CSS_SELECTOR, "rect.bar-challenger") and top.find_elements(
        By.CSS_SELECTOR, "rect.bar-champion"
    )
    browser.execute_script("document.querySelector('article.panel.importance').scrollIntoView()")
    shot(browser, "panels_importance.png")
    for name in ("robustness", "fairness"):
        if name in panels:
            assert browser.find_elements(By.CSS_SELECTOR, f"article.panel.{name} p.summary"), name
    browser.execute_script("document.querySelector('article.panel.robustness, section.evidence').scrollIntoView()")
    shot(browser, "panels_robustness_fairness.png")

    # the panels' charts are among the evidence plots, and load
    wait.until(
        lambda d: d.execute_script(
            "const imgs = [...document.querySelectorAll('section.evidence img')];"
            "return imgs.length >= 2 && imgs.every(i => i.complete && i.naturalWidth > 0)"
        )
    )
    plots = [i.get_attribute("alt") for i in browser.find_elements(By.CSS_SELECTOR, "section.evidence img")]
    assert {"evaluation/slices.png", "evaluation/importance.png"} <= set(plots), plots
    browser.execute_script("document.querySelector('section.evidence').scrollIntoView()")
    shot(browser, "panels_evidence.png")
    assert browser.execute_script("return window.__xss") is None
    judged.extra["browser_s"] = time.perf_counter() - started
    print(
        f"\ngate {judged.extra['judge_s']:.1f} s, server + models + gate {judged.extra['setup_s']:.1f} s, "
        f"browser {judged.extra['browser_s']:.1f} s"
    )


def test_status_and_the_report_show_the_real_panels(judged, monkeypatch, capsys, tmp_path):
    from airflow_mlops import cli

    panels = judged.extra["verdict"]["panels"]
    monkeypatch.setenv("AIRFLOW_MLOPS_HOME", str(judged.home / "mlops"))
    assert cli.main(["status"]) == 0
    out, _ = capsys.readouterr()
    assert f"  slices: {panels['slices']['summary']}" in out
    robustness = panels.get("robustness", {}).get("summary") or "not measured"
    assert f"  robustness: {robustness}" in out

    folder = judged.client.download_artifacts(judged.extra["run_id"], "evaluation", str(tmp_path))
    report = (Path(folder) / "report.html").read_text()
    assert '<article class="panel slices' in report and '<table class="panel-table slices">' in report
    assert '<img class="chart" src="slices.png"' in report and '<img class="chart" src="importance.png"' in report


def test_the_evaluation_report_shows_the_panels_and_their_charts(judged, browser, tmp_path):
    from selenium.webdriver.common.by import By

    folder = Path(judged.client.download_artifacts(judged.extra["run_id"], "evaluation", str(tmp_path)))
    browser.get((folder / "report.html").as_uri())
    assert browser.find_element(By.CSS_SELECTOR, "article.panel.slices table.slices")
    loaded = browser.execute_script(
        "return [...document.querySelectorAll('img.chart')].filter(i => i.complete && i.naturalWidth > 0)"
        ".map(i => i.getAttribute('src'))"
    )
    assert {"slices.png", "importance.png"} <= set(loaded), loaded
    browser.execute_script("document.querySelector('article.panel.slices').scrollIntoView()")
    shot(browser, "report_slices.png", frame=False)
    browser.execute_script("document.querySelector('article.panel.importance').scrollIntoView()")
    shot(browser, "report_importance.png", frame=False)
