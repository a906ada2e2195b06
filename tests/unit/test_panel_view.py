"""core.evaluation.panel_view: the panels in reading order (worst slice first), numbers as text, `status`'s lines; a verdict
without panels says nothing."""

from __future__ import annotations

import pytest

from airflow_mlops.core.evaluation import panel_view as view


def row(name, status, gain=None, low=None, rows=300, challenger=0.8, metric="roc_auc"):
    return {"slice": name, "status": status, "gain": gain, "low": low, "rows": rows, "challenger": challenger,
            "metric": metric}  # fmt: skip


def test_slices_worst_first_regressions_then_judged_by_gain_then_too_small():
    rows = [
        row("contract=two-year", "holds", 0.004, -0.02),
        row("tiny", "insufficient evidence", rows=12),
        row("region=north", "holds", -0.01, -0.04),
        row("region=south", "regresses", -0.069, -0.095),
        row("bigger tiny", "insufficient evidence", rows=150),
        row("region=west", "regresses", -0.03, -0.05),
        row("no interval", "holds", None),
    ]
    order = [r["slice"] for r in view.slices_worst_first(rows)]
    assert order == [
        "region=south",
        "region=west",
        "region=north",
        "contract=two-year",
        "no interval",
        "bigger tiny",
        "tiny",
    ]


def test_without_a_champion_slices_are_ordered_by_the_challengers_own_value():
    reported = [row("a", "reported", challenger=0.9), row("b", "reported", challenger=0.6)]
    assert [r["slice"] for r in view.slices_worst_first(reported)] == ["b", "a"]
    losses = [
        row("a", "reported", challenger=0.2, metric="log_loss"),
        row("b", "reported", challenger=0.6, metric="log_loss"),
    ]
    assert [r["slice"] for r in view.slices_worst_first(losses)] == ["b", "a"]  # lower is better: 0.6 is worse


def test_importance_by_the_larger_of_both_models_and_fairness_blocking_first():
    rows = [
        {"feature": "a", "challenger": 0.01, "champion": 0.05},
        {"feature": "b", "challenger": 0.08, "champion": None},
        {"feature": "c", "challenger": None, "champion": None},
    ]
    assert [r["feature"] for r in view.importance_ranked(rows)] == ["b", "a", "c"]
    assert view.importance_scale(rows) == pytest.approx(0.08)
    assert view.importance_scale([{"feature": "x", "challenger": -0.01}]) == 0.0
    gaps = [
        {"group_column": "region", "metric": "tpr_gap", "status": "holds", "worsening": 0.01},
        {"group_column": "region", "metric": "fpr_gap", "status": "insufficient evidence", "worsening": None},
        {"group_column": "region", "metric": "selection_rate_ratio", "status": "worsens", "worsening": 0.04},
        {"group_column": "contract", "metric": "tpr_gap", "status": "holds", "worsening": 0.03},
    ]
    assert [(g["group_column"], g["metric"]) for g in view.fairness_worst_first(gaps)] == [
        ("region", "selection_rate_ratio"),
        ("contract", "tpr_gap"),
        ("region", "tpr_gap"),
        ("region", "fpr_gap"),
    ]


def test_numbers_as_text():
    assert (view.number(0.71234), view.number(None), view.number(float("nan")), view.number(True)) == (
        "0.712",
        "–",
        "–",
        "–",
    )
    assert view.number(0.00012) == "0.00012"
    assert (view.signed(-0.069), view.signed(0.0123), view.signed(0.0)) == ("−0.069", "+0.012", "0.000")
    assert view.interval(-0.095, -0.041) == "(−0.095 … −0.041)" and view.interval(None, 0.1) == ""
    assert (view.p_value(0.00003), view.p_value(0.0021), view.p_value(0.61)) == ("<0.0001", "0.0021", "0.610")
    assert (view.share(0.012), view.count(1204), view.events({"0": 900, "1": 304})) == (
        "1.2%",
        "1,204",
        "0: 900 · 1: 304",
    )
    assert view.events(None) == "–"


def test_status_lines_name_the_worst_slice_and_the_robustness_figure_or_say_nothing():
    assert view.status_lines({}) == [] and view.status_lines(None) == []
    summaries = {
        "importance": "importance ranking nDCG 0.97",
        "robustness": "flip rate 1.2% (champion 1.0%)",
        "slices": "worst slice region=south: roc_auc -0.069 (-0.095..-0.041), blocks",
    }
    assert view.status_lines(summaries) == [
        "slices: worst slice region=south: roc_auc -0.069 (-0.095..-0.041), blocks",
        "robustness: flip rate 1.2% (champion 1.0%)",
        "importance: importance ranking nDCG 0.97",
    ]
    assert view.status_lines({"importance": "nDCG 0.97"}) == [
        "slices: not measured",
        "robustness: not measured",
        "importance: nDCG 0.97",
    ]


def test_shown_panels_in_reading_order_and_nothing_for_an_older_verdict():
    panels = {
        "robustness": {"name": "robustness", "summary": "flip rate 1.2%"},
        "importance": {"name": "importance", "summary": "nDCG 0.97", "table": []},
        "slices": {"name": "slices", "summary": "worst slice a", "table": [{"slice": "a"}]},
        "fairness": {"name": "fairness", "summary": "", "table": [], "checks": []},  # nothing to show
        "broken": "not a panel",
    }
    assert [p["name"] for p in view.shown_panels(panels)] == ["slices", "importance", "robustness"]
    for nothing in (None, {}, [], "x", {"slices": None}):
        assert view.shown_panels(nothing) == []
    assert view.rows_of({"table": [{"a": 1}, "junk", None]}) == [{"a": 1}]
    assert view.rows_of({"table": None}) == []


def test_the_registry_reads_the_tags_of_every_panel_the_gate_runs():
    from airflow_mlops.core.evaluation.panels import PANELS
    from airflow_mlops.core.registry.status import PANEL_NAMES

    assert set(PANEL_NAMES) == set(PANELS) == set(view.SHOWN_ORDER)
