"""A verdict's panels where a person sees them: the Models page shows the slice table (worst slice first,
regressions highlighted, slices too small to judge marked) and both models' importance side by side, and more
briefly robustness and fairness; a verdict without panels shows nothing of them, and never fails the page.

Rendering is checked on a verdict written in the panels' schema (panel_fixture.py); the browser test judges real
models with the real gate (slices on region and contract, on churn_stream data) in the real Airflow API server.
"""

from __future__ import annotations

import html
import json

import pytest
from panel_fixture import verdict_panels

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
        rows[0].startswith(' class="slice regresses"') and '<span class="status regresses">regresses</span>' in rows[0]
    )
    assert "−0.069 <small>(−0.095 … −0.041)</small>" in rows[0] and "0.0003 (0.0021)" in rows[0]
    assert "0: 301 · 1: 101" in rows[0] and "roc_auc -0.069 &lt; -0.01" in rows[0]
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
