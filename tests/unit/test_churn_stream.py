"""The sample data generator is deterministic, realistic, drifts on request and can break a batch."""

from __future__ import annotations

import datetime as dt

from conftest import churn_stream

DAY = dt.date(2026, 1, 10)


def test_same_seed_same_bytes(tmp_path):
    a = churn_stream.write_stream(tmp_path / "a", DAY, 3, rows=50)
    b = churn_stream.write_stream(tmp_path / "b", DAY, 3, rows=50)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    c = churn_stream.write_stream(tmp_path / "c", DAY, 3, rows=50, seed=8)
    assert a[0].read_bytes() != c[0].read_bytes()


def test_clean_batch_shape_and_label_rate():
    frame = churn_stream.daily_batch(DAY, rows=2000)
    assert list(frame.columns) == [
        "customer_id", "event_date", "tenure_months", "monthly_charges", "support_calls",
        "data_usage_gb", "contract", "payment_method", "region", "churned",
    ]
    assert frame.notna().all().all()
    assert set(frame["contract"]) == set(churn_stream.CONTRACTS)
    assert 0.15 < frame["churned"].mean() < 0.5
    assert frame["tenure_months"].between(0, 72).all()


def test_drift_moves_features_and_relationship():
    before = churn_stream.daily_batch(DAY, rows=4000, drift_from=DAY + dt.timedelta(days=1))
    after = churn_stream.daily_batch(DAY + dt.timedelta(days=1), rows=4000, drift_from=DAY + dt.timedelta(days=1))
    assert after["monthly_charges"].mean() - before["monthly_charges"].mean() > 10
    assert after["support_calls"].mean() > before["support_calls"].mean() + 0.8
    south_gap = lambda f: f[f.region == "south"].churned.mean() - f[f.region != "south"].churned.mean()  # noqa: E731
    assert south_gap(after) > south_gap(before) + 0.05


def test_bad_batch_switch():
    bad = churn_stream.daily_batch(DAY, rows=400, bad=True)
    assert bad["monthly_charges"].isna().sum() > 100
    assert (bad["contract"] == "lifetime").any()
    assert (bad["tenure_months"] == "unknown").any()
    assert (bad["tenure_months"].astype(str) == "-5").any()
