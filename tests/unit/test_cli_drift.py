"""`airflow-mlops drift`: the table or JSON on stdout, exit 0 (no drift), 3 (drift), 2 (bad input)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from conftest import CHURN_CONFIG, churn_stream

from airflow_mlops import cli


def run(capsys, *argv):
    code = cli.main(["drift", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def windows(tmp_path):
    """Two clean churn windows and one after the drift, as a CSV folder and Parquet files."""
    drift_from = dt.date(2026, 2, 15)
    churn_stream.write_stream(tmp_path / "ref", dt.date(2026, 1, 1), 28, rows=400, drift_from=drift_from)
    clean = pd.concat(
        [churn_stream.daily_batch(dt.date(2026, 1, 29) + dt.timedelta(days=i), rows=400) for i in range(7)],
        ignore_index=True,
    )
    drifted = pd.concat(
        [
            churn_stream.daily_batch(drift_from + dt.timedelta(days=i), rows=400, drift_from=drift_from)
            for i in range(7)
        ],
        ignore_index=True,
    )
    clean.to_parquet(tmp_path / "clean.parquet")
    drifted.to_parquet(tmp_path / "drifted.parquet")
    return tmp_path


def test_no_drift_exits_0_with_a_table(capsys, windows):
    code, out, err = run(
        capsys,
        "--reference",
        str(windows / "ref"),
        "--current",
        str(windows / "clean.parquet"),
        "--config",
        str(CHURN_CONFIG),
    )
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["FEATURE", "KIND", "TEST"]
    assert "no drift: 0 of 7 feature(s) drifted" in out
    assert "[target] churned" in out


def test_drift_exits_3_and_json(capsys, windows, tmp_path):
    code, out, err = run(
        capsys,
        "--reference",
        str(windows / "ref"),
        "--current",
        str(windows / "drifted.parquet"),
        "--config",
        str(CHURN_CONFIG),
        "--json",
        "--html",
        str(tmp_path / "report"),
    )
    assert code == 3, err
    data = json.loads(out)
    assert data["drift"] is True
    assert {"monthly_charges", "support_calls", "contract"} <= set(data["drifted"])
    assert data["features"][0]["drifted"] and data["target"]["name"] == "churned"
    assert (tmp_path / "report" / "drift_report.html").is_file()


def test_without_config_every_column_types_inferred(capsys, tmp_path):
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"amount": rng.normal(50, 10, 5000), "kind": rng.choice(["a", "b"], 5000)})
    cur = pd.DataFrame({"amount": rng.normal(80, 10, 5000), "kind": rng.choice(["a", "b"], 5000, p=[0.1, 0.9])})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_parquet(tmp_path / "cur.parquet")
    code, out, err = run(capsys, "--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "cur.parquet"))
    assert code == 3, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:3]}
    assert rows["amount"][1] == "numeric" and rows["kind"][1] == "categorical"
    assert rows["amount"][-1] == rows["kind"][-1] == "DRIFT"
    code, out, _ = run(capsys, "--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "ref.csv"))
    assert code == 0 and "no drift" in out


def test_bad_input_exits_2_with_a_message(capsys, tmp_path):
    pd.DataFrame({"a": [1, 2, 3], "b": [1, 2, 3]}).to_csv(tmp_path / "ref.csv", index=False)
    pd.DataFrame({"a": [1, 2, 3], "c": [1, 2, 3]}).to_csv(tmp_path / "cur.csv", index=False)
    code, out, err = run(capsys, "--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "cur.csv"))
    assert code == 2 and out == ""
    assert "airflow-mlops: error:" in err and "'b'" in err and "'c'" in err
    (tmp_path / "empty.csv").write_text("a,b\n")
    code, _, err = run(capsys, "--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "empty.csv"))
    assert code == 2 and "empty" in err
    code, _, err = run(capsys, "--reference", str(tmp_path / "missing.csv"), "--current", str(tmp_path / "cur.csv"))
    assert code == 2 and "not found" in err
    code, _, err = run(capsys, "--reference", str(tmp_path / "ref.csv"))  # argparse: --current is required
    assert code == 2 and "--current" in err
