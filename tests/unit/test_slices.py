"""Per-slice guard rails (issue 24 item 1, core.evaluation.slices): real scikit-learn models on the churn stream,
judged through `evaluation.judge` (the gate's code path), and the pieces on their own: slice definitions (values,
quantile bins, "(missing)", crossings), the group metric kernels, Holm and Benjamini-Hochberg, the plot.

The regressing challenger is `benchmarks/slice_quality.py`'s `SliceDegraded`: a scikit-learn compatible estimator
wrapping a real fitted logistic regression, whose scores in one region get deterministic logistic noise on their
log-odds (every other row is scored exactly as the fitted model does).
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import churn_stream

from airflow_mlops.core import evaluation, rows, training
from airflow_mlops.core.config import parse_config
from airflow_mlops.core.errors import ConfigError
from airflow_mlops.core.evaluation import PROMOTE, REJECT, paired_bootstraps, slicing
from airflow_mlops.core.evaluation import slices as slices_mod
from airflow_mlops.core.evaluation.bootstrap import metric_kernel
from airflow_mlops.core.evaluation.group_metrics import Groups
from airflow_mlops.core.evaluation.models import Loaded, score
from airflow_mlops.core.evaluation.panels import PanelInputs

ROOT = Path(__file__).resolve().parents[2]
START = dt.date(2026, 1, 1)
DRIFT = START + dt.timedelta(days=28)


def _benchmark():
    spec = importlib.util.spec_from_file_location("slice_quality", ROOT / "benchmarks" / "slice_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SliceDegraded = _benchmark().SliceDegraded


def configured(config, slices=None, **evaluation_changes):
    raw = copy.deepcopy(config.raw)
    raw["model"]["candidates"] = [c for c in raw["model"]["candidates"] if c["name"] == "logistic_regression"]
    raw["evaluation"].update(evaluation_changes)
    raw["evaluation"].update(robustness={"enabled": False}, explain={"importance": False})
    if slices is not None:
        raw["evaluation"]["slices"] = slices
    return parse_config(raw, file=config.path, check_estimators=False)


def days(first: int, n: int, *, drift: bool = False, rows_per_day: int = 400) -> pd.DataFrame:
    return pd.concat(
        [
            churn_stream.daily_batch(
                START + dt.timedelta(days=first + i), rows=rows_per_day, drift_from=DRIFT if drift else None
            )
            for i in range(n)
        ],
        ignore_index=True,
    )


def fitted(config, train, name) -> Loaded:
    model, _ = training.fit_candidate(train, config, "logistic_regression")
    return Loaded(uri=f"models:/unit/{name}", model=model, signature=None)


def judge(config, test, challenger, champion):
    return evaluation.judge(
        config, rows.gate_rows(test, config, champion=None, has_champion=False), challenger, champion
    )


def panel_of(result):
    [panel] = [p for p in result.panels if p.name == "slices"]
    return panel


def inputs_for(config, test, challenger, champion) -> PanelInputs:
    y = test[config.target].to_numpy()
    ch, _, labels = score(challenger, test, config, role="challenger")
    cp = None if champion is None else score(champion, test, config, role="champion")[0]
    return PanelInputs(config, test, y, labels, 1, challenger, champion, ch, cp)


@pytest.fixture(scope="module")
def drifted():
    """The stream drifts after day 28: a champion fitted before it, a challenger base fitted after it (which wins
    overall on the drifted test rows), and 8,000 test rows of the drifted process (region south ~2,000)."""
    from airflow_mlops.core.config import load_config

    config = configured(load_config(ROOT / "include" / "pipelines" / "churn.yaml"), {"columns": ["region", "contract"]})
    champion = fitted(config, days(0, 28), "champion")
    base = fitted(config, days(28, 14, drift=True), "challenger")
    return config, champion, base, days(42, 20, drift=True)


@pytest.fixture(scope="module")
def stable():
    """Two logistic regressions fitted on two disjoint weeks of the stable stream, and 2,000 later test rows."""
    from airflow_mlops.core.config import load_config

    config = configured(load_config(ROOT / "include" / "pipelines" / "churn.yaml"), {"columns": ["region"]})
    return config, fitted(config, days(0, 7), "a"), fitted(config, days(7, 7), "b"), days(14, 5)


# --------------------------------------------------------------------------- the gate


def test_a_challenger_that_wins_overall_but_loses_a_region_is_rejected_naming_the_region(drifted):
    config, champion, base, test = drifted
    degraded = Loaded(uri=base.uri, model=SliceDegraded(base.model, "region", "south", 1.0), signature=None)
    result = judge(config, test, degraded, champion)
    assert result.bootstrap.diff > config.evaluation.margin and result.bootstrap.low > 0  # it wins overall
    v = result.verdict
    assert v.decision == REJECT and not v.promote
    [fail] = [r for r in v.reasons if r.startswith("FAIL")]  # the slice is the only reason
    assert fail.startswith("FAIL: slice region=south regresses: roc_auc ")
    assert "beyond evaluation.slices.slice_tolerance 0.01 (Holm-adjusted p " in fail and "< 0.05)" in fail
    panel = panel_of(result)
    south = next(r for r in panel.table if r["slice"] == "region=south")
    assert south["status"] == "regresses" and south["gain"] < -0.05 and south["high"] < -0.01
    assert f"{south['rows']:,} rows" in fail and f"gain {south['gain']:+.3f}" in fail
    assert panel.table[0]["slice"] == "region=south"  # worst first
    others = [r for r in panel.table if r["columns"] == ["region"] and r["slice"] != "region=south"]
    assert others and all(r["status"] == "holds" and r["gain"] > 0 for r in others)
    assert panel.blocked and panel.metrics["blocked"] == 1.0 and panel.metrics["judged"] == 7.0
    assert panel.summary.startswith("worst slice region=south: roc_auc -0.") and "blocks" in panel.summary
    assert set(south["guard_rails"]) == {"accuracy", "log_loss"}
    assert result.to_dict()["panels"]["slices"]["blocked"] is True
    # the same challenger without the blur is promoted: the region alone made the difference
    assert judge(config, test, base, champion).verdict.decision == PROMOTE


def test_several_regressing_slices_are_all_named_worst_first(drifted):
    config, champion, base, test = drifted
    degraded = Loaded(uri=base.uri, model=SliceDegraded(base.model, "contract", "month-to-month", 2.0), signature=None)
    config = configured(config, {"columns": ["contract"], "crossings": [["region", "contract"]]})
    panel = panel_of(judge(config, test, degraded, champion))
    regressing = [r for r in panel.table if r["status"] == "regresses"]
    assert len(regressing) >= 2 and all("contract=month-to-month" in r["slice"] for r in regressing)
    [(passed, text)] = panel.checks
    assert not passed
    named = [part.split(" regresses")[0].removeprefix("slice ") for part in text.split("; ")]
    assert named == [r["slice"] for r in sorted(regressing, key=lambda r: r["gain"])]


def test_a_model_compared_with_itself_is_never_blocked(stable):
    config, _, base, test = stable
    for tolerance, correction in ((0.01, "holm"), (0.0, "holm"), (0.0, "bh")):
        cfg = configured(
            config,
            {
                "columns": ["region", "contract", "monthly_charges"],
                "crossings": [["region", "contract"]],
                "slice_tolerance": tolerance,
                "correction": correction,
                "min_slice_rows": 50,
                "min_slice_events": 5,
            },
        )
        panel = panel_of(judge(cfg, test, base, base))
        judged = [r for r in panel.table if r["status"] in ("holds", "regresses")]
        assert len(judged) > 20 and not panel.blocked
        assert all(r["gain"] == 0 and r["low"] == 0 and r["high"] == 0 and r["p_adjusted"] == 1 for r in judged)
        [(passed, _)] = panel.checks
        assert passed


# --------------------------------------------------------------------------- what is judged, and what is not


def test_small_slices_are_listed_as_insufficient_evidence_never_passed(stable):
    config, a, b, test = stable  # 2,000 test rows
    config = configured(config, {"columns": ["region"], "crossings": [["region", "contract"]], "min_slice_rows": 200})
    panel = panel_of(judge(config, test, b, a))
    small = [r for r in panel.table if r["status"] == "insufficient evidence"]
    assert small, "some region x contract crossings hold fewer than 200 of the 2,000 rows"
    for r in small:
        assert r["rows"] < 200 and r["reason"] == f"{r['rows']:,} rows < evaluation.slices.min_slice_rows (200)"
        assert r["gain"] is None and r["p_adjusted"] is None
    [note] = [n for n in panel.notes if "insufficient evidence" in n]
    assert note.startswith(f"{len(small)} slice(s) too small to judge") and "(not passed)" in note
    assert all(r["slice"] in note for r in small[: slices_mod.MAX_LISTED])
    assert panel.metrics["insufficient"] == len(small)
    assert len(panel.table) == len({r["slice"] for r in panel.table})
    # the rows of each class count too: too few events is insufficient evidence, named by class
    strict = configured(config, {"columns": ["region"], "min_slice_events": 400})
    for r in panel_of(judge(strict, test, b, a)).table:
        assert r["status"] == "insufficient evidence"
        assert "of class 1 < evaluation.slices.min_slice_events (400) of each class" in r["reason"]


def test_a_one_class_slice_does_not_crash_the_gate_and_is_insufficient(stable):
    config, a, b, test = stable
    test = test[~((test["region"] == "west") & (test["churned"] == 1))].reset_index(drop=True)  # west: no churners
    for events in (20, 1):
        cfg = configured(
            config, {"columns": ["region"], "crossings": [["region", "contract"]], "min_slice_events": events}
        )
        result = judge(cfg, test, b, a)
        panel = panel_of(result)
        assert not any("unverified" in text for _, text in panel.checks)
        west = next(r for r in panel.table if r["slice"] == "region=west")
        assert west["status"] == "insufficient evidence" and west["events"]["1"] == 0
        assert "0 of class 1" in west["reason"]
        assert west["challenger"] is None  # ROC AUC is undefined on one class
        # the panel still reports on it without a champion
        first = panel_of(judge(cfg, test, b, None))
        assert next(r for r in first.table if r["slice"] == "region=west")["status"] == "insufficient evidence"


def test_without_a_champion_the_slices_are_reported_not_judged(stable):
    config, _, b, test = stable
    panel = panel_of(judge(config, test, b, None))
    assert panel.checks == [] and not panel.blocked
    assert {r["status"] for r in panel.table} == {"reported"}
    for r in panel.table:
        assert r["champion"] is None and r["gain"] is None and 0.5 < r["challenger"] < 1
        assert set(r["guard_rails"]) == {"accuracy", "log_loss"}
    assert panel.summary.startswith("4 slices reported (no champion); weakest region=")


def test_off_without_columns(stable):
    config, a, b, test = stable
    config = configured(config, {"columns": []})
    assert slices_mod.run(inputs_for(config, test, b, a)) is None
    assert [p.name for p in judge(config, test, b, a).panels if p.name == "slices"] == []


# --------------------------------------------------------------------------- slice definitions


def test_nulls_form_a_missing_slice_of_their_own(stable):
    config, a, b, test = stable
    test = test.copy()
    test.loc[test.index[::7], "region"] = None
    test["monthly_charges"] = test["monthly_charges"].astype(float)
    test.loc[test.index[::5], "monthly_charges"] = np.nan
    config = configured(config, {"columns": ["region", "monthly_charges"], "min_slice_rows": 50})
    panel = panel_of(judge(config, test, b, a))
    by_name = {r["slice"]: r for r in panel.table}
    assert by_name["region=(missing)"]["rows"] == len(test.index[::7])
    assert by_name["region=(missing)"]["values"] == ["(missing)"]
    assert by_name["monthly_charges=(missing)"]["rows"] == len(test.index[::5])
    assert sum(r["rows"] for r in panel.table if r["columns"] == ["region"]) == len(test)
    assert sum(r["rows"] for r in panel.table if r["columns"] == ["monthly_charges"]) == len(test)


def test_numeric_features_slice_by_quantile_bins_with_exact_rounded_labels(churn_config):
    config = configured(churn_config, {"columns": ["tenure_months", "monthly_charges"], "bins": 4})
    frame = pd.DataFrame(
        {
            "tenure_months": np.r_[np.zeros(60), np.arange(1, 41)],  # many ties: duplicate edges merge
            "monthly_charges": np.arange(100) * 1.5 + 18.25,
            "region": "north",
        }
    )
    found = slicing.define_slices(frame, config)
    tenure = [s for s in found if s.columns == ["tenure_months"]]
    charges = [s for s in found if s.columns == ["monthly_charges"]]
    # edges 0, 0, 0, 15.25, 40 merge to 0, 15.25, 40; labelled to 3 significant digits of the largest inner edge
    assert [s.label for s in tenure] == ["tenure_months in [0, 15.2)", "tenure_months in [15.2, 40]"]
    assert [s.values for s in tenure] == [["[0, 15.2)"], ["[15.2, 40]"]]
    # edges 18.25, 55.375, 92.5, 129.625, 166.75: the outer ones rounded outwards
    assert [s.label for s in charges] == [
        "monthly_charges in [18, 55)",
        "monthly_charges in [55, 92)",
        "monthly_charges in [92, 130)",
        "monthly_charges in [130, 167]",
    ]
    for group in (tenure, charges):  # every row in exactly one bin, and each bin's rows inside its label
        masks = np.array([s.mask(frame) for s in group])
        assert (masks.sum(axis=0) == 1).all()
    assert [int(s.mask(frame).sum()) for s in charges] == [25, 25, 25, 25]
    assert int(tenure[0].mask(frame).sum()) == 75  # the zeros and 1..15: 15 < 15.2
    # the same definitions apply to other rows: below the first edge joins the first bin, above the last the last
    other = pd.DataFrame({"monthly_charges": [0.0, 55.4, 1000.0, None]})
    assert [int(np.flatnonzero([s.mask(other)[i] for s in charges])[0]) for i in range(3)] == [0, 1, 3]
    assert not any(s.mask(other)[3] for s in charges)


def test_crossings_are_the_product_of_two_columns_slices(stable):
    config, a, b, test = stable
    config = configured(config, {"crossings": [["region", "contract"]], "min_slice_rows": 20, "min_slice_events": 2})
    panel = panel_of(judge(config, test, b, a))
    counts = test.groupby(["region", "contract"]).size()
    got = {tuple(r["values"]): r["rows"] for r in panel.table}
    assert got == {key: int(n) for key, n in counts.items()}
    assert all(r["columns"] == ["region", "contract"] for r in panel.table)
    assert "region=east & contract=month-to-month" in {r["slice"] for r in panel.table}


def test_a_slice_column_must_be_a_feature_and_the_tolerance_not_negative(churn_config):
    with pytest.raises(ConfigError, match="evaluation.slices.columns.*customer_id.*is not a feature"):
        configured(churn_config, {"columns": ["customer_id"]})
    with pytest.raises(ConfigError, match="slice_tolerance"):
        configured(churn_config, {"columns": ["region"], "slice_tolerance": -0.01})


# --------------------------------------------------------------------------- the statistics


def test_holm_and_benjamini_hochberg_adjust_as_the_textbook():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04, then running maximum
    assert slices_mod.adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: p * 4 / rank = 0.02, 0.02, 0.04, 0.04 (ranks 1..4), then running minimum from the top
    assert slices_mod.adjust(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert slices_mod.adjust([0.5, 0.9], "holm") == pytest.approx([1.0, 1.0])  # capped at 1
    assert slices_mod.adjust([0.04, 0.045], "bh") == pytest.approx([0.045, 0.045])
    assert slices_mod.adjust([], "holm") == []
    # at alpha 0.05: Holm blocks the two smallest, BH all four
    assert sum(q < 0.05 for q in slices_mod.adjust(p, "holm")) == 2
    assert sum(q < 0.05 for q in slices_mod.adjust(p, "bh")) == 4


def test_the_p_value_is_one_sided_against_a_regression_beyond_the_tolerance():
    assert slices_mod.regression_p(-0.01, 0.01, 0.01) == pytest.approx(0.5)  # exactly at -tolerance
    assert slices_mod.regression_p(-0.0429, 0.01, 0.01) == pytest.approx(0.0005, abs=2e-5)  # z = -3.29
    assert slices_mod.regression_p(0.02, 0.01, 0.01) > 0.99
    assert slices_mod.regression_p(0.0, 0.0, 0.0) == 1.0 and slices_mod.regression_p(-0.02, 0.0, 0.01) == 0.0


def test_benjamini_hochberg_is_used_when_configured(drifted):
    config, champion, base, test = drifted
    degraded = Loaded(uri=base.uri, model=SliceDegraded(base.model, "region", "south", 1.0), signature=None)
    config = configured(config, {"columns": ["region", "contract"], "correction": "bh"})
    panel = panel_of(judge(config, test, degraded, champion))
    [(passed, text)] = panel.checks
    assert not passed and "(Benjamini-Hochberg-adjusted p " in text
    judged = [r for r in panel.table if r["p"] is not None]
    assert [r["p_adjusted"] for r in judged] == pytest.approx(slices_mod.adjust([r["p"] for r in judged], "bh"))
    assert panel.detail["correction"] == "bh"


def test_a_slice_of_every_row_has_the_gates_own_interval(stable):
    """The slices resample with the gate's seed and strata: a slice holding every test row gets its interval."""
    config, a, b, test = stable
    test = test.assign(region="north")
    inputs = inputs_for(config, test, b, a)
    panel = slices_mod.run(inputs)
    [row] = panel.table
    gate = paired_bootstraps(
        inputs.y,
        inputs.challenger_scores,
        inputs.champion_scores,
        ["roc_auc", "accuracy", "log_loss"],
        task=config.task,
        labels=inputs.labels,
        n=config.evaluation.bootstrap_samples,
        seed=config.seed,
        confidence=config.evaluation.confidence,
        positive=1,
    )
    assert (row["gain"], row["low"], row["high"]) == pytest.approx(
        (gate["roc_auc"].diff, gate["roc_auc"].low, gate["roc_auc"].high), abs=1e-12
    )
    for m in ("accuracy", "log_loss"):
        got = row["guard_rails"][m]
        assert (got["gain"], got["low"], got["high"]) == pytest.approx(
            (gate[m].diff, gate[m].low, gate[m].high), abs=1e-12
        )


def test_deterministic_by_seed(stable):
    config, a, b, test = stable
    first = slices_mod.run(inputs_for(config, test, b, a)).to_dict()
    assert slices_mod.run(inputs_for(config, test, b, a)).to_dict() == first
    reseeded = slices_mod.run(
        inputs_for(parse_config({**config.raw, "seed": 7}, file=config.path, check_estimators=False), test, b, a)
    )
    assert [r["gain"] for r in reseeded.table] == [r["gain"] for r in first["table"]]
    assert [r["low"] for r in reseeded.table] != [r["low"] for r in first["table"]]


@pytest.mark.parametrize("k", [2, 3])
def test_group_kernels_equal_the_gates_kernel_on_each_groups_rows(k):
    rng = np.random.default_rng(k)
    n = 1500
    y = rng.integers(0, k, n)
    proba = np.round(rng.dirichlet(np.ones(k), n), 2)  # rounded: ties between positives and negatives
    proba /= proba.sum(axis=1, keepdims=True)
    groups = [np.flatnonzero(rng.random(n) < 0.3) for _ in range(5)] + [np.arange(4), np.flatnonzero(y == 0)]
    g = Groups.of(groups)
    for metric in ("roc_auc", "log_loss", "accuracy", "f1", "precision", "recall"):
        kernel = g.kernel(metric, "classification", y, proba, list(range(k)))
        for w in (np.ones(n), rng.multinomial(n, np.full(n, 1 / n)).astype(float)):
            want = [
                metric_kernel(metric, "classification", y[rows_], proba[rows_], list(range(k)))(w[rows_])
                for rows_ in groups
            ]
            np.testing.assert_allclose(kernel(g.weights(w)), want, rtol=1e-12, atol=1e-12, equal_nan=True)
    target, pred = rng.normal(size=n), rng.normal(size=n)
    for metric in ("rmse", "mae", "r2"):
        kernel = g.kernel(metric, "regression", target, pred, None)
        w = rng.multinomial(n, np.full(n, 1 / n)).astype(float)
        want = [metric_kernel(metric, "regression", target[rows_], pred[rows_], None)(w[rows_]) for rows_ in groups]
        np.testing.assert_allclose(kernel(g.weights(w)), want, rtol=1e-12, equal_nan=True)


# --------------------------------------------------------------------------- the chart


def test_the_forest_plot_draws_each_judged_slice(drifted, tmp_path):
    config, champion, base, test = drifted
    degraded = Loaded(uri=base.uri, model=SliceDegraded(base.model, "region", "south", 1.0), signature=None)
    panel = slices_mod.run(inputs_for(config, test, degraded, champion))
    [png] = slices_mod.plot(panel, tmp_path)
    assert png.name == "slices.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = slices_mod.run(inputs_for(config, test, base, None))
    assert slices_mod.plot(first, tmp_path / "none") == []  # nothing judged: no chart


def test_a_regression_pipeline_slices_on_its_own_metric_oriented_as_gain():
    """diabetes.yaml (rmse, guard rail mae): events are not counted, a gain is champion - challenger (lower is better)."""
    import sys

    from airflow_mlops.core.config import load_config

    sys.path.insert(0, str(ROOT / "include"))
    import diabetes_data

    base = load_config(ROOT / "include" / "pipelines" / "diabetes.yaml", check_estimators=False)
    raw = copy.deepcopy(base.raw)
    raw["evaluation"]["slices"] = {"columns": ["sex", "bmi"], "bins": 2, "min_slice_rows": 30}
    raw["evaluation"].update(robustness={"enabled": False}, explain={"importance": False})
    config = parse_config(raw, file=base.path, check_estimators=False)
    split = rows.split_roles(diabetes_data.frame(), config)
    ridge, _ = training.fit_candidate(split.train, config, "ridge")
    boosted, _ = training.fit_candidate(split.train, config, "hist_gradient_boosting")
    challenger = Loaded(uri="models:/unit/ridge", model=ridge, signature=None)
    champion = Loaded(uri="models:/unit/hgb", model=boosted, signature=None)
    panel = panel_of(judge(config, split.test, challenger, champion))
    judged = [r for r in panel.table if r["status"] in ("holds", "regresses")]
    assert judged and all(r["events"] is None and r["metric"] == "rmse" for r in panel.table)
    test = split.test
    for r in judged:
        mask = next(s for s in slicing.define_slices(test, config) if s.label == r["slice"]).mask(test)
        y = test[config.target].to_numpy()[mask]
        rmse = {
            name: float(np.sqrt(np.mean((y - m.predict(test[config.feature_names])[mask]) ** 2)))
            for name, m in (("challenger", ridge), ("champion", boosted))
        }
        assert r["challenger"] == pytest.approx(rmse["challenger"]) and r["champion"] == pytest.approx(rmse["champion"])
        assert r["gain"] == pytest.approx(rmse["champion"] - rmse["challenger"])
        assert r["low"] <= r["gain"] <= r["high"] and set(r["guard_rails"]) == {"mae"}
