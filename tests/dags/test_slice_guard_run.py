"""Issue 24's "done when": in a dag.test() run of churn_retrain the gate rejects a challenger that wins overall but
regresses in one region, naming the region, and the champion is untouched.

The demo's day 4 on the demo's data: the champion is made on 2026-02-10 from the churn stream; on 2026-03-27
churn_retrain runs under `churn_reexport` (include/pipelines/churn_reexport.yaml) on a faulty re-export of the
same stream in which a bug inverted the north region's churn flags on 2026-03-11..03-20. The data drifted on
2026-03-01, so the retrained challenger beats the stale champion overall; in the north it learned the opposite.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from conftest import ROOT, churn_stream, task_states

START, DAYS = dt.date(2026, 1, 1), 86  # .. 2026-03-27
DRIFT = dt.date(2026, 3, 1)
FLIPPED = ("north", dt.date(2026, 3, 11), dt.date(2026, 3, 20))  # the Makefile's data/churn_reexport


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).get_dag("churn_retrain")


@pytest.fixture
def streams(tmp_path):
    """The demo's stream and its faulty re-export (the same records but the north's flags on 03-11..03-20)."""
    stream, reexport = tmp_path / "churn", tmp_path / "churn_reexport"
    churn_stream.write_stream(stream, START, DAYS, drift_from=DRIFT)
    churn_stream.write_stream(reexport, START, DAYS, drift_from=DRIFT, flipped_labels=FLIPPED)
    return stream, reexport


def run(dag, day: str, conf: dict):
    logical = dt.datetime.fromisoformat(f"{day}T02:00:00+00:00")
    return dag.test(logical_date=logical, run_conf={"as_of": day, **conf})


def version_of(client, alias: str) -> str:
    return str(client.get_model_version_by_alias("churn_classifier", alias).version)


def test_a_challenger_that_wins_overall_but_loses_the_north_is_rejected_naming_it(
    dag, mlops_home, mlflow_client, streams, tmp_path
):
    stream, reexport = streams
    first = run(dag, "2026-02-10", {"source": str(stream)})
    assert task_states(first)["deploy"] == "success"
    champion = version_of(mlflow_client, "champion")

    s = task_states(run(dag, "2026-03-27", {"source": str(reexport), "config": "churn_reexport"}))

    assert s["record_rejection"] == "success" and s["deploy"] == "skipped", s
    challenger = mlflow_client.get_model_version_by_alias("churn_classifier", "challenger")
    assert challenger.version != champion and challenger.tags["decision"] == "REJECT"
    assert version_of(mlflow_client, "champion") == champion  # untouched
    reasons = json.loads(challenger.tags["decision.reasons"])
    # It wins overall: the primary metric's gain passes the margin and its interval lies above zero ...
    assert any(r.startswith("PASS: roc_auc improved by") for r in reasons), reasons
    assert any(r.startswith("PASS: the 95% CI") and "lies above zero" in r for r in reasons), reasons
    # ... and the guard rails on the other metrics hold ...
    assert not any(r.startswith("FAIL") and ("accuracy" in r or "log_loss" in r) for r in reasons), reasons
    # ... but the slice guard names the north, and no other slice.
    slices = [r for r in reasons if r.startswith("FAIL: slice")]
    assert len(slices) == 1 and "region=north" in slices[0], reasons
    assert "region=north" in challenger.tags["evaluation.slices"]

    # The evaluation run keeps the slice table: the north judged and regressing, every other slice holding.
    run_id = challenger.tags["evaluation.run_id"]
    path = Path(mlflow_client.download_artifacts(run_id, "evaluation/slices.json", str(tmp_path)))
    table = json.loads(path.read_text(encoding="utf-8"))["table"]
    blocking = {row["slice"] for row in table if row.get("status") == "regresses"}
    assert blocking == {"region=north"}, table
