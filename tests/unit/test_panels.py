"""The validation panels inside the gate (issue 24): every panel runs on the gate's own test rows, a model compared
with itself is never blocked, a guarding panel that cannot run fails closed, and the evidence keeps every panel
(verdict.json, <panel>.json, charts, version tags, run metrics) in the real MLflow store."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from conftest import churn_stream

from airflow_mlops.core import evaluation, rows, training
from airflow_mlops.core.config import parse_config
from airflow_mlops.core.evaluation import PROMOTE, REJECT, panels
from airflow_mlops.core.evaluation.models import Loaded

PANELS_ON = {
    "slices": {"columns": ["region", "contract"], "min_slice_rows": 150, "min_slice_events": 15},
    "fairness": {"groups": ["region"]},
    "robustness": {"sample_rows": 600},
    "explain": {"sample_rows": 600, "repeats": 3},
}


def config_with_panels(churn_config, **evaluation_changes):
    raw = copy.deepcopy(churn_config.raw)
    raw["model"]["candidates"] = [c for c in raw["model"]["candidates"] if c["name"] == "logistic_regression"]
    raw["evaluation"].update({**PANELS_ON, "bootstrap_samples": 300, **evaluation_changes})
    for feature in raw["features"]:
        if feature["name"] == "monthly_charges":
            feature["monotonic"] = "increasing"
    return parse_config(raw, file=churn_config.path, check_estimators=False)


def days(first: str, n: int, rows_per_day: int = 400) -> pd.DataFrame:
    import datetime as dt

    start = dt.date.fromisoformat(first)
    return pd.concat(
        [churn_stream.daily_batch(start + dt.timedelta(days=i), rows=rows_per_day) for i in range(n)], ignore_index=True
    )


@pytest.fixture(scope="module")
def fitted_model(churn_config):
    config = config_with_panels(churn_config)
    model, _ = training.fit_candidate(days("2026-01-01", 10), config, "logistic_regression")
    return model


def loaded(model, name: str) -> Loaded:
    return Loaded(uri=f"models:/unit/{name}", model=model, signature=None)


def clean_rows(config, frame: pd.DataFrame) -> rows.TestRows:
    return rows.gate_rows(frame, config, champion=None, has_champion=False)


def test_a_model_compared_with_itself_is_blocked_by_no_panel(churn_config, fitted_model):
    config = config_with_panels(churn_config)
    test = clean_rows(config, days("2026-01-20", 5))
    result = evaluation.judge(config, test, loaded(fitted_model, "same"), loaded(fitted_model, "same-champion"))

    assert [p.name for p in result.panels] == ["slices", "fairness", "robustness", "importance"]
    for panel in result.panels:
        assert not panel.blocked, (panel.name, [text for ok, text in panel.checks if not ok])
        assert panel.summary and panel.table, panel.name
    failing = [r for r in result.verdict.reasons if r.startswith("FAIL")]
    assert all("improved" in r or "CI" in r or "interval" in r for r in failing), failing  # only: no gain
    assert result.verdict.decision == REJECT  # no gain over itself: the primary metric decides, not a panel


def test_a_guarding_panel_that_cannot_run_rejects_and_says_unverified(churn_config, fitted_model, monkeypatch):
    def broken(inputs):
        raise RuntimeError("the slice table could not be built")

    run, plot, guards = panels.PANELS["slices"]
    monkeypatch.setitem(panels.PANELS, "slices", (broken, plot, guards))
    config = config_with_panels(churn_config, margin=0.0)
    test = clean_rows(config, days("2026-01-20", 5))
    strong, weak = fitted_model, training.fit_candidate(days("2026-01-01", 1, 60), config, "logistic_regression")[0]
    result = evaluation.judge(config, test, loaded(strong, "strong"), loaded(weak, "weak"))

    assert result.verdict.decision == REJECT
    [unverified] = [r for r in result.verdict.reasons if "unverified" in r]
    assert unverified.startswith("FAIL: slices: unverified") and "could not be built" in unverified


def test_importance_that_cannot_run_is_a_note_and_never_blocks(churn_config, fitted_model, monkeypatch):
    def broken(inputs):
        raise RuntimeError("no scorer")

    run, plot, guards = panels.PANELS["importance"]
    monkeypatch.setitem(panels.PANELS, "importance", (broken, plot, guards))
    config = config_with_panels(churn_config, margin=0.0)
    test = clean_rows(config, days("2026-01-20", 5))
    weak = training.fit_candidate(days("2026-01-01", 1, 60), config, "logistic_regression")[0]
    result = evaluation.judge(config, test, loaded(fitted_model, "strong"), loaded(weak, "weak"))

    assert any(r.startswith("importance: unverified") and "no scorer" in r for r in result.verdict.reasons)
    assert not any(r.startswith("FAIL") and "importance" in r for r in result.verdict.reasons)


def test_the_evidence_keeps_every_panel(churn_config, fitted_model, tmp_path):
    config = config_with_panels(churn_config)
    test = clean_rows(config, days("2026-01-20", 5))
    result = evaluation.judge(config, test, loaded(fitted_model, "a"), loaded(fitted_model, "b"))
    files = {p.name for p in evaluation.write_artifacts(result, tmp_path)}

    for name in ("slices", "fairness", "robustness", "importance"):
        assert f"{name}.json" in files
        kept = json.loads((tmp_path / f"{name}.json").read_text())
        assert kept["name"] == name and kept["table"] and kept["summary"]
    assert {"slices.png", "importance.png"} <= files
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert set(verdict["panels"]) == {"slices", "fairness", "robustness", "importance"}
    assert result.verdict.decision != PROMOTE
