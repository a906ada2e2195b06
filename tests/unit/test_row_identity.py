"""core.row_identity: one canonical hash per row, whatever dtypes a reader guessed. Each drift a real export
shows keeps the champion's exclusion exact through take_snapshot and read_snapshot."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import churn_stream

from airflow_mlops.core import rows
from airflow_mlops.core.data import read_snapshot, take_snapshot
from airflow_mlops.core.row_identity import row_hashes

FIRST = dt.date(2026, 1, 1)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (pd.Series([1, 2, 3]), pd.Series([1.0, 2.0, 3.0])),  # an int column read as float
        (pd.Series([1, 2, 3]), pd.Series(["1", "2", "3"], dtype=object)),  # stringified (a mixed column)
        (pd.Series([1, 2, 3]), pd.Series(["1", "2", "3"], dtype="str")),
        (pd.Series([0.0, 1.5]), pd.Series([-0.0, 1.5])),  # -0.0 against 0.0
        (pd.Series([0.1, 2.7]), pd.Series([0.1, 2.7], dtype="float32")),  # float32 against float64
        (pd.Series([True, False, None], dtype=object), pd.Series(["True", "false", ""], dtype=object)),
        (pd.Series([True, False]), pd.Series([1, 0])),
        (
            pd.to_datetime(pd.Series(["2026-01-05", "2026-01-06 12:30"]), format="ISO8601"),
            pd.Series(["2026-01-05", "2026-01-06T12:30:00"], dtype=object),
        ),  # a timestamp against its text
        (pd.Series([None, np.nan, pd.NA], dtype=object), pd.Series(["", " ", None], dtype=object)),
    ],
    ids=[
        "int-float",
        "int-object-text",
        "int-str",
        "negative-zero",
        "float32",
        "bool-blank",
        "bool-int",
        "timestamp-text",
        "missing",
    ],
)
def test_one_value_one_hash_across_dtypes(left, right):
    a = pd.DataFrame({"x": left, "k": range(len(left))})
    b = pd.DataFrame({"x": right, "k": range(len(right))})
    assert row_hashes(a).tolist() == row_hashes(b).tolist()


def test_different_values_hash_differently_and_the_seed_gives_another_family():
    frame = pd.DataFrame({"x": [1, 2, 1, 1], "s": ["a", "a", "b", "1"]})
    hashes = row_hashes(frame)
    assert len(set(hashes.tolist())) == 4 and hashes.dtype == np.uint64
    assert row_hashes(frame, seed=1).tolist() != hashes.tolist()
    assert (
        row_hashes(frame, ["s", "x"]).tolist() != row_hashes(frame, ["x", "s"]).tolist()
    )  # the columns' order is the record's


def export(frame: pd.DataFrame, folder, fmt: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for day, rows_of_day in frame.groupby("event_date"):
        path = folder / f"churn_{day}.{fmt}"
        rows_of_day.to_parquet(path, index=False) if fmt == "parquet" else rows_of_day.to_csv(path, index=False)


def drifted(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The same rows as another export writes them."""
    out = frame.copy()
    if kind == "float32":
        out["monthly_charges"] = out["monthly_charges"].astype("float32")
    elif kind == "negative_zero":
        out["discount"] = -out["discount"]  # all zeros: -0.0
    elif kind == "bool_blank":
        out["paperless"] = out["paperless"].map({True: "True", False: "False", None: ""}).astype(object)
    elif kind == "timestamp_text":
        out["signup_at"] = out["signup_at"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return out


@pytest.mark.parametrize("kind", ["float32", "negative_zero", "bool_blank", "timestamp_text", "mixed_stringified"])
def test_the_champions_rows_are_found_after_a_dtype_drift_through_snapshots(churn_config, tmp_path, kind):
    """The champion's window is exported one way, the challenger's (the same rows and a day more) another: every
    row the champion trained on is still found by hash in the challenger's snapshot, so none reaches the gate."""
    days = [churn_stream.daily_batch(FIRST + dt.timedelta(days=i), rows=60, seed=5) for i in range(11)]
    frame = pd.concat(days, ignore_index=True)
    frame["discount"] = 0.0
    frame["paperless"] = pd.Series([True, False, None] * (len(frame) // 3), dtype=object)
    frame["signup_at"] = pd.Timestamp("2025-06-01") + pd.to_timedelta(np.arange(len(frame)), unit="h")
    fmt = "csv" if kind == "mixed_stringified" else "parquet"
    config = churn_config._replace(source=churn_config.source._replace(format=fmt))
    champion_rows, challenger_rows = (
        frame[frame["event_date"] <= "2026-01-10"],
        frame[frame["event_date"] >= "2026-01-02"],
    )
    if kind == "mixed_stringified":  # one text value on day 1 makes the champion's whole column text
        champion_rows = champion_rows.assign(plan_code=np.where(champion_rows.index == 0, "X9", "7"))
        challenger_rows = challenger_rows.assign(plan_code=7)
    else:
        challenger_rows = drifted(challenger_rows, kind)
    export(champion_rows, tmp_path / "old", fmt)
    export(challenger_rows, tmp_path / "new", fmt)
    snapshots = tmp_path / "snapshots"
    old = read_snapshot(
        take_snapshot(config, source=str(tmp_path / "old"), snapshot_root=snapshots, allowed_roots=[tmp_path])["uri"]
    )
    new = read_snapshot(
        take_snapshot(config, source=str(tmp_path / "new"), snapshot_root=snapshots, allowed_roots=[tmp_path])["uri"]
    )
    if kind == "mixed_stringified":
        assert old["plan_code"].dtype != new["plan_code"].dtype  # the drift is real
    champion = rows.record_of(rows.split_roles(old, config), "the champion's record")
    # the challenger's rows on the champion's training days: every one must be found
    overlap = new[new["event_date"].isin(sorted(champion.days))]
    test_rows = rows.gate_rows(overlap, config, champion=champion, has_champion=True, champion_window_end="2026-01-10")
    assert len(overlap) > 0 and test_rows.n_rows == 0, test_rows.describe()
    assert "by row hash" in test_rows.method
