"""core.drift: statistics against scipy, false alarms and detection, BH, chunking, bad input."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from conftest import churn_stream
from scipy import stats
from scipy.spatial.distance import jensenshannon

from airflow_mlops.core import drift
from airflow_mlops.core.config import MonitoringConfig
from airflow_mlops.core.drift import DriftInputError, benjamini_hochberg, compute_drift, drift_report_html
from airflow_mlops.core.errors import MlopsError

DEFAULTS = MonitoringConfig()


def _feature(report, name):
    return next(f for f in report.features if f.name == name)


def _mixed(n: int, seed: int, *, shift: float = 0.0, scale: float = 1.0, mix=(0.5, 0.3, 0.2), extra: str | None = None):
    rng = np.random.default_rng(seed)
    cats = ["a", "b", "c"] + ([extra] if extra else [])
    p = list(mix) + ([0.1] if extra else [])
    p = np.asarray(p) / np.sum(p)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, scale, n),
            "y": rng.gamma(2.0, 3.0, n),
            "calls": rng.poisson(1.5, n),
            "plan": rng.choice(cats, n, p=p),
            "region": rng.choice(["n", "s", "e", "w"], n),
        }
    )


# --------------------------------------------------------------------------- statistics vs scipy


def test_ks_statistic_and_p_value_match_scipy_within_binning_tolerance():
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 20_000)})
    cur = pd.DataFrame({"x": rng.normal(0.02, 1, 15_000)})
    f = _feature(compute_drift(ref, cur, DEFAULTS), "x")
    exact = stats.ks_2samp(ref["x"], cur["x"], method="asymp")
    # binned CDF: exact at every edge, at most one fine bin's mass below the exact statistic
    assert exact.statistic - 2.5 / drift.FINE_BINS <= f.statistic <= exact.statistic + 1e-12
    assert f.p_value == pytest.approx(exact.pvalue, abs=0.02)
    # and the p-value is exactly scipy's asymptotic formula for that statistic
    en = round(20_000 * 15_000 / 35_000)
    assert f.p_value == pytest.approx(stats.kstwo.sf(f.statistic, en), rel=1e-12)


def test_ks_is_exact_for_discrete_features():
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"k": rng.poisson(2.0, 30_000)})
    cur = pd.DataFrame({"k": rng.poisson(2.05, 25_000)})
    f = _feature(compute_drift(ref, cur, DEFAULTS), "k")
    exact = stats.ks_2samp(ref["k"], cur["k"], method="asymp")
    assert f.statistic == pytest.approx(exact.statistic, abs=1e-12)
    assert f.p_value == pytest.approx(exact.pvalue, rel=0.01)  # en = 13,636: the limiting distribution


@pytest.mark.parametrize("n", [500, 5_000, 20_000, 200_000])
@pytest.mark.parametrize("z", [0.5, 1.0, 1.5, 2.0, 3.0])
def test_ks_p_value_vs_scipy_asymptotic(n, z):
    en = n * n / (2 * n)
    d = z / np.sqrt(en)
    expected = stats.kstwo.sf(d, round(en))  # what ks_2samp(method="asymp") returns for this statistic
    assert drift.ks_p_value(d, n, n) == pytest.approx(expected, rel=0.01 if en > drift.KS_EXACT_N else 1e-12)


def test_chi_square_and_js_match_scipy_with_unseen_bucket():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2])})
    cur = pd.DataFrame({"c": rng.choice(["a", "b", "c", "new1", "new2"], 4000, p=[0.45, 0.3, 0.15, 0.06, 0.04])})
    f = _feature(compute_drift(ref, cur, DEFAULTS), "c")
    cats = ["a", "b", "c"]
    r = np.array([(ref["c"] == k).sum() for k in cats] + [0])
    c = np.array([(cur["c"] == k).sum() for k in cats] + [cur["c"].isin(["new1", "new2"]).sum()])
    stat, p, dof, _ = stats.chi2_contingency(np.vstack([r, c]), correction=False)
    assert f.statistic == pytest.approx(stat, rel=1e-10)
    assert f.p_value == pytest.approx(p, rel=1e-8, abs=1e-300)
    assert f.dof == dof == 3  # the unseen categories are one bucket, not dropped
    assert f.effect == pytest.approx(jensenshannon(r / r.sum(), c / c.sum(), base=2), rel=1e-10)
    assert f.unseen_share == pytest.approx(c[-1] / c.sum())
    assert drift.UNSEEN in f.bins


def test_psi_by_hand():
    r = np.array([0.1] * 10)
    c = np.array([0.05] * 5 + [0.15] * 5)
    expected = sum((ci - ri) * np.log(ci / ri) for ri, ci in zip(r, c, strict=True))
    assert drift.population_stability_index(r, c) == pytest.approx(expected)
    assert drift.population_stability_index(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.5, 0.0])) == 0.0


def test_benjamini_hochberg_by_hand():
    # sorted: .005 (1), .01 (2), .03 (3), .04 (4); p*m/rank: .02, .02, .04, .04; running min from the top
    adjusted = benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([0.5, 0.9]) == pytest.approx([0.9, 0.9])
    assert benjamini_hochberg([0.8]) == pytest.approx([0.8])


# --------------------------------------------------------------------------- no false alarm, detection


def test_no_false_alarm_on_the_same_distribution_at_1m_rows():
    report = compute_drift(_mixed(1_000_000, 1), _mixed(1_000_000, 2), DEFAULTS)
    assert not report.drift and report.drifted == []
    assert {f.kind for f in report.features} == {"numeric", "categorical"}
    for f in report.features:
        assert f.effect < 0.01, f
    assert report.rows_reference == report.rows_current == 1_000_000


@pytest.mark.parametrize(
    ("change", "feature"),
    [
        ({"shift": 0.8}, "x"),
        ({"scale": 2.0}, "x"),
        ({"extra": "platinum"}, "plan"),
        ({"mix": (0.2, 0.3, 0.5)}, "plan"),
    ],
    ids=["mean-shift", "variance-change", "new-category", "mix-change"],
)
def test_detects(change, feature):
    config = DEFAULTS._replace(drift_share=0.2)
    report = compute_drift(_mixed(50_000, 1), _mixed(20_000, 2, **change), config)
    assert report.drifted == [feature]
    f = _feature(report, feature)
    assert f.p_adjusted <= DEFAULTS.alpha and f.effect >= f.threshold
    assert report.drift  # 1 of 5 features >= 0.2
    assert report.worst_first()[0].name == feature
    if "extra" in change:
        assert f.unseen_share == pytest.approx(0.1 / 1.1, abs=0.01)


def test_significant_but_trivial_shift_is_not_drift():
    report = compute_drift(_mixed(1_000_000, 1), _mixed(1_000_000, 2, shift=0.02), DEFAULTS)
    x = _feature(report, "x")
    assert x.p_adjusted < 1e-10 and x.effect < DEFAULTS.psi_threshold and not x.drifted


def test_weights_and_drift_share():
    ref, cur = _mixed(20_000, 1), _mixed(20_000, 2, shift=1.0)
    assert not compute_drift(ref, cur, DEFAULTS).drift  # 1 of 5 = 0.2 < 0.3
    weighted = DEFAULTS._replace(weights={"x": 3.0})
    report = compute_drift(ref, cur, weighted)
    assert report.drift_share == pytest.approx(3 / 7) and report.drift


def test_constant_and_tied_columns():
    ref = pd.DataFrame({"const": np.full(5000, 7.0), "tied": np.r_[np.zeros(4500), np.ones(500)]})
    same = compute_drift(ref, ref.copy(), DEFAULTS)
    assert all(f.effect == 0.0 and f.statistic == 0.0 and f.p_value == 1.0 for f in same.features)
    moved = pd.DataFrame({"const": np.full(5000, 5.0), "tied": np.r_[np.zeros(2500), np.ones(2500)]})
    report = compute_drift(ref, moved, DEFAULTS)
    assert set(report.drifted) == {"const", "tied"}
    assert _feature(report, "const").statistic == pytest.approx(1.0)


def test_prediction_and_target_drift(churn_config):
    rng = np.random.default_rng(0)
    ref = churn_stream.daily_batch(dt.date(2026, 1, 1), rows=3000)
    cur = churn_stream.daily_batch(dt.date(2026, 1, 2), rows=3000)
    stable = compute_drift(
        ref, cur, churn_config, reference_scores=rng.beta(2, 5, 3000), current_scores=rng.beta(2, 5, 3000)
    )
    assert stable.prediction is not None and not stable.prediction.drifted
    assert stable.target is not None and stable.target.kind == "categorical" and not stable.target.drifted
    proba = np.c_[1 - rng.beta(5, 2, 3000), rng.beta(5, 2, 3000)]  # 2-column probabilities: the positive column
    moved = compute_drift(ref, cur, churn_config, reference_scores=rng.beta(2, 5, 3000), current_scores=proba)
    assert moved.prediction.drifted and moved.prediction.effect_name == "psi"
    unlabelled = cur.assign(churned=np.nan)  # labels arrive 30 days later: no target drift yet, no error
    report = compute_drift(ref, unlabelled, churn_config)
    assert report.target is None and "churned" in report.skipped
    with pytest.raises(DriftInputError, match="both windows"):
        compute_drift(ref, cur, churn_config, reference_scores=rng.random(10))


# --------------------------------------------------------------------------- chunked == in memory


def _stats(report):
    return [(f.name, f.statistic, f.p_value, f.effect, f.count_reference, f.count_current) for f in report.features]


def test_chunked_files_equal_in_memory(tmp_path):
    ref, cur = _mixed(60_000, 1), _mixed(40_000, 2, shift=0.3, mix=(0.4, 0.3, 0.3))
    ref.loc[::17, "y"] = np.nan
    ref.loc[::23, "plan"] = None
    in_memory = compute_drift(ref, cur, DEFAULTS)
    ref.to_parquet(tmp_path / "ref.parquet", row_group_size=9_000)
    folder = tmp_path / "cur"
    folder.mkdir()
    cur.iloc[:25_000].to_csv(folder / "cur_1.csv", index=False)
    cur.iloc[25_000:].to_parquet(folder / "cur_2.parquet")
    chunked = compute_drift(tmp_path / "ref.parquet", folder, DEFAULTS, chunk_rows=7_000)
    assert _stats(chunked) == _stats(in_memory)  # identical: same sample (all rows), same bins, integer counts
    assert chunked.drifted == in_memory.drifted and chunked.rows_reference == 60_000
    assert _feature(chunked, "y").null_share_reference == pytest.approx(1 / 17, abs=1e-4)


def test_bounded_sample_is_independent_of_chunk_size_and_close_to_exact(tmp_path, monkeypatch):
    ref, cur = _mixed(60_000, 1), _mixed(40_000, 2, shift=0.3)
    exact = compute_drift(ref, cur, DEFAULTS)
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    monkeypatch.setattr(drift.windows, "RESERVOIR_SIZE", 10_000)  # the edges now come from a 10k bottom-k sample
    a = compute_drift(tmp_path / "ref.parquet", tmp_path / "cur.csv", DEFAULTS, chunk_rows=3_000)
    b = compute_drift(tmp_path / "ref.parquet", tmp_path / "cur.csv", DEFAULTS, chunk_rows=25_000)
    assert _stats(a) == _stats(b)
    for fa, fe in zip(a.features, exact.features, strict=True):
        assert fa.statistic == pytest.approx(fe.statistic, abs=0.005)
        assert fa.effect == pytest.approx(fe.effect, abs=0.01)
    assert a.drifted == exact.drifted


# --------------------------------------------------------------------------- the churn stream


def _window(start: dt.date, days: int, drift_from: dt.date | None = None) -> pd.DataFrame:
    return pd.concat(
        [churn_stream.daily_batch(start + dt.timedelta(days=i), rows=400, drift_from=drift_from) for i in range(days)],
        ignore_index=True,
    )


def test_churn_stream_drift_after_drift_from(churn_config, tmp_path):
    drift_from = dt.date(2026, 2, 15)
    reference = _window(dt.date(2026, 1, 1), 28, drift_from)
    clean = compute_drift(reference, _window(dt.date(2026, 1, 29), 7, drift_from), churn_config)
    assert not clean.drift and clean.drifted == [], clean.table()
    drifted = compute_drift(reference, _window(dt.date(2026, 2, 15), 7, drift_from), churn_config)
    assert drifted.drift, drifted.table()
    assert {"monthly_charges", "support_calls", "contract"} <= set(drifted.drifted)
    assert drifted.target is not None
    # the same through the files the stream writes (a folder of daily CSVs)
    churn_stream.write_stream(tmp_path / "ref", dt.date(2026, 1, 1), 28, rows=400, drift_from=drift_from)
    churn_stream.write_stream(tmp_path / "cur", dt.date(2026, 2, 15), 7, rows=400, drift_from=drift_from)
    from_files = compute_drift(tmp_path / "ref", tmp_path / "cur", churn_config, chunk_rows=1000)
    assert from_files.drifted == drifted.drifted
    assert [f.statistic for f in from_files.features] == pytest.approx([f.statistic for f in drifted.features])


# --------------------------------------------------------------------------- reporting


def test_report_dict_table_summary_and_html(tmp_path):
    report = compute_drift(
        _mixed(20_000, 1),
        _mixed(20_000, 2, shift=1.0, extra="z"),
        DEFAULTS,
        reference_scores=np.linspace(0, 1, 100),
        current_scores=np.linspace(0, 1, 100) ** 2,
    )
    data = json.loads(json.dumps(report.to_dict()))
    assert data["drift"] is True and data["drifted"] == report.drifted
    assert data["features"][0]["drifted"] and data["prediction"]["name"] == "prediction"
    lines = report.table().splitlines()
    assert lines[0].startswith("FEATURE") and lines[1].split()[0] in report.drifted
    assert "[prediction]" in report.table()
    assert report.summary().startswith("DRIFT: 2 of 5 feature(s) drifted")
    page = drift_report_html(report, tmp_path / "html")
    text = page.read_text()
    pngs = sorted((tmp_path / "html").glob("*.png"))
    assert len(pngs) == 5  # top 4 features + the prediction
    assert all(p.name in text for p in pngs) and "DRIFT" in text
    assert pngs[0].read_bytes()[:4] == b"\x89PNG"


def test_inferred_columns_skip_dates_and_identifiers():
    ref = _window(dt.date(2026, 1, 1), 5)
    cur = _window(dt.date(2026, 1, 6), 5)
    report = compute_drift(ref, cur, DEFAULTS)
    assert set(report.skipped) == {"event_date", "customer_id"}
    assert {f.name for f in report.features} == {
        "tenure_months",
        "monthly_charges",
        "support_calls",
        "data_usage_gb",
        "contract",
        "payment_method",
        "region",
        "churned",
    }
    assert not report.drift


# --------------------------------------------------------------------------- bad input


def test_different_columns_are_named():
    ref = pd.DataFrame({"a": [1.0, 2.0], "b": [1.0, 2.0]})
    cur = pd.DataFrame({"a": [1.0, 2.0], "c": [1.0, 2.0]})
    with pytest.raises(DriftInputError, match=r"only in the reference .*'b'.*only in the current .*'c'") as exc:
        compute_drift(ref, cur, DEFAULTS)
    assert isinstance(exc.value, MlopsError)
    with pytest.raises(DriftInputError, match=r"missing in the current window .*'b'"):
        compute_drift(ref, cur, DEFAULTS, features=["a", "b"])


def test_config_features_missing_from_a_window(churn_config, churn_frame):
    with pytest.raises(DriftInputError, match="monthly_charges"):
        compute_drift(churn_frame, churn_frame.drop(columns=["monthly_charges"]), churn_config)


def test_empty_window_is_an_error_not_a_verdict(tmp_path):
    ref = _mixed(1000, 1)
    with pytest.raises(DriftInputError, match="current window is empty"):
        compute_drift(ref, ref.iloc[:0], DEFAULTS)
    with pytest.raises(DriftInputError, match="reference window is empty"):
        compute_drift(ref.iloc[:0], ref, DEFAULTS)
    ref.iloc[:0].to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(DriftInputError, match="current window is empty"):
        compute_drift(ref, tmp_path / "empty.parquet", DEFAULTS)
    with pytest.raises(DriftInputError, match="not found"):
        compute_drift(ref, tmp_path / "nope.csv", DEFAULTS)


def test_all_null_feature_is_a_data_problem():
    ref, cur = _mixed(1000, 1), _mixed(1000, 2)
    cur["y"] = np.nan
    with pytest.raises(DriftInputError, match=r"'y'.*current window \(all null\)"):
        compute_drift(ref, cur, DEFAULTS)
    ref2 = _mixed(1000, 1)
    ref2["plan"] = None
    with pytest.raises(DriftInputError, match=r"'plan'.*reference window \(all null\)"):
        compute_drift(ref2, _mixed(1000, 2), DEFAULTS, features=["x", "plan"])


def test_nan_statistic_is_an_error_not_no_drift(monkeypatch):
    monkeypatch.setattr(stats.kstwo, "sf", lambda *a, **k: np.nan)
    with pytest.raises(DriftInputError, match=r"'x'.*NaN"):
        compute_drift(_mixed(1000, 1), _mixed(1000, 2), DEFAULTS, features=["x"])


def test_text_in_a_numeric_column(tmp_path):
    ref = _mixed(1000, 1)
    cur = _mixed(1000, 2).astype({"y": object})
    cur.loc[3, "y"] = "unknown"
    with pytest.raises(DriftInputError, match=r"'y' has 1 non-numeric value.*'unknown'"):
        compute_drift(ref, cur, DEFAULTS)
