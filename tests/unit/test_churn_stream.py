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
        "customer_id",
        "event_date",
        "tenure_months",
        "monthly_charges",
        "support_calls",
        "data_usage_gb",
        "contract",
        "payment_method",
        "region",
        "churned",
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


def test_batches_and_labels_split_the_records_the_way_production_sees_them(tmp_path):
    out, batches, labels = tmp_path / "full", tmp_path / "batches", tmp_path / "labels"
    import pandas as pd

    full = churn_stream.write_stream(out, DAY, 2, rows=50, batches=batches, labels=labels)
    plain = churn_stream.write_stream(tmp_path / "plain", DAY, 2, rows=50)
    assert [p.read_bytes() for p in full] == [p.read_bytes() for p in plain]  # --out is unchanged

    records = pd.read_csv(out / "churn_2026-01-10.csv")
    batch = pd.read_csv(batches / "churn_2026-01-10.csv")
    outcome = pd.read_csv(labels / "churn_labels_2026-01-10.csv")
    assert "churned" not in batch.columns and batch.equals(records.drop(columns=["churned"]))
    assert list(outcome.columns) == ["customer_id", "event_date", "churned"]
    assert outcome.equals(records[["customer_id", "event_date", "churned"]])
    assert sorted(p.name for p in labels.iterdir()) == ["churn_labels_2026-01-10.csv", "churn_labels_2026-01-11.csv"]


def test_concept_drift_moves_the_relationship_not_the_inputs():
    shift = DAY + dt.timedelta(days=1)
    plain = churn_stream.daily_batch(shift, rows=4000)
    shifted = churn_stream.daily_batch(shift, rows=4000, concept_drift_from=shift)
    before = churn_stream.daily_batch(DAY, rows=4000, concept_drift_from=shift)
    assert shifted.drop(columns=["churned"]).equals(plain.drop(columns=["churned"]))  # the very same inputs
    assert before.equals(churn_stream.daily_batch(DAY, rows=4000))  # nothing changes before the shift
    assert abs(shifted["churned"].mean() - plain["churned"].mean()) < 0.05  # about the same churn rate
    long_tenure = lambda f: f[f.tenure_months > 36].churned.mean() - f[f.tenure_months < 12].churned.mean()  # noqa: E731
    assert long_tenure(plain) < -0.2 and long_tenure(shifted) > long_tenure(plain) + 0.3  # tenure's effect flipped


def test_the_command_line_writes_batches_and_labels(tmp_path, capsys):
    churn_stream.main(
        [
            "--out",
            str(tmp_path / "c"),
            "--days",
            "2",
            "--rows",
            "20",
            "--batches",
            str(tmp_path / "b"),
            "--labels",
            str(tmp_path / "l"),
            "--concept-drift-from",
            "2026-01-02",
        ]
    )
    out = capsys.readouterr().out
    assert "wrote 2 unlabelled batches" in out and "wrote 2 label files" in out
    assert (tmp_path / "l" / "churn_labels_2026-01-02.csv").is_file()


def test_flipped_labels_invert_one_regions_flags_on_those_days_only(tmp_path):
    import pandas as pd

    first, last = DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    plain = churn_stream.write_stream(tmp_path / "plain", DAY, 4, rows=200)
    faulty = churn_stream.write_stream(tmp_path / "faulty", DAY, 4, rows=200, flipped_labels=("north", first, last))
    assert plain[0].read_bytes() == faulty[0].read_bytes() and plain[3].read_bytes() == faulty[3].read_bytes()
    for i in (1, 2):
        a, b = pd.read_csv(plain[i]), pd.read_csv(faulty[i])
        north = a["region"] == "north"
        assert a.drop(columns=["churned"]).equals(b.drop(columns=["churned"]))  # every input as the stream has it
        assert (b.loc[north, "churned"] == 1 - a.loc[north, "churned"]).all() and north.sum() > 20
        assert b.loc[~north, "churned"].equals(a.loc[~north, "churned"])


def test_flipped_labels_on_the_command_line(tmp_path):
    import pandas as pd
    import pytest

    churn_stream.main(["--out", str(tmp_path / "a"), "--start", "2026-01-10", "--days", "1", "--rows", "80"])
    churn_stream.main(
        ["--out", str(tmp_path / "b"), "--start", "2026-01-10", "--days", "1", "--rows", "80",
         "--flipped-labels", "south:2026-01-10:2026-01-10"]
    )  # fmt: skip
    a, b = pd.read_csv(tmp_path / "a" / "churn_2026-01-10.csv"), pd.read_csv(tmp_path / "b" / "churn_2026-01-10.csv")
    south = a["region"] == "south"
    assert (b.loc[south, "churned"] != a.loc[south, "churned"]).all()
    for bad in ("mars:2026-01-10:2026-01-11", "south:2026-01-11:2026-01-10", "south:yesterday"):
        with pytest.raises(SystemExit):
            churn_stream.main(["--out", str(tmp_path / "c"), "--flipped-labels", bad])
