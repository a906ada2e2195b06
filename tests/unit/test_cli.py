"""The airflow-mlops CLI in-process, on the test's own MLflow store (AIRFLOW_MLOPS_HOME)."""

from __future__ import annotations

import getpass
import json
import socket

import pytest
from conftest import binary_config

from airflow_mlops import cli
from airflow_mlops.core import registry, training

MODEL = "cli_test_model"
ACTOR = {"airflow.dag_id": "retrain", "airflow.run_id": "scheduled__1", "airflow.task_id": "deploy"}


@pytest.fixture
def promoted(mlflow_client, breast_cancer):
    """MODEL with versions 1..3: champion 2, previous_champion 1, challenger 3 rejected."""
    import json as _json

    from airflow_mlops.core.rows import split_roles

    df = breast_cancer
    config = binary_config(MODEL, ("mean_radius", "mean_area"), pipeline="cli_test")
    split = split_roles(df, config)
    result = training.train_candidate(
        split,
        config,
        "logreg",
        client=mlflow_client,
        experiment=config.name,
        data_digest="sha256:x",
        data_uri="file:///x.parquet",
        tags={},
    )
    for i in range(1, 4):
        registry.register_challenger(
            mlflow_client, MODEL, result["model_uri"], result["run_id"], tags={"data.digest": f"sha256:{i}" + "0" * 20}
        )
    registry.promote(mlflow_client, MODEL, "1", expected_champion=None, actor=ACTOR, reason="first model")
    registry.promote(mlflow_client, MODEL, "2", expected_champion="1", actor=ACTOR, reason="beats v1 by 0.02")
    mlflow_client.set_model_version_tag(MODEL, "3", "decision", "reject")
    mlflow_client.set_model_version_tag(MODEL, "3", "decision.reasons", _json.dumps(["roc_auc gain 0.001 < margin"]))
    mlflow_client.set_model_version_tag(MODEL, "3", "decision.at", "2026-02-01T00:00:00Z")
    mlflow_client.set_model_version_tag(MODEL, "3", "mlops.trigger", "drift")
    mlflow_client.set_model_version_tag(MODEL, "3", "mlops.trigger.summary", "drift: 4 of 7 features")
    return mlflow_client


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_table_and_json(promoted, capsys):
    code, out, _ = run(capsys, "status")
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["MODEL", "CHAMPION", "CHALLENGER", "PREVIOUS"]
    assert row.split()[:8] == [MODEL, "2", "3", "1", "3", "reject", "drift", "2026-02-01T00:00:00Z"]
    assert "roc_auc gain 0.001 < margin" in out
    assert "started by drift: drift: 4 of 7 features" in out
    code, out, _ = run(capsys, "status", "--json")
    [entry] = json.loads(out)
    assert (entry["champion"], entry["previous_champion"], entry["decision"]) == ("2", "1", "reject")
    assert entry["latest_version"] == "3"  # the newest version (not a count: that would read every version)


def test_status_names_the_worst_slice_and_the_robustness_figure(promoted, capsys):
    code, out, _ = run(capsys, "status")
    assert code == 0 and "slices:" not in out and "robustness:" not in out  # an older verdict: nothing said
    worst = "worst slice region=south: roc_auc -0.069 (-0.095..-0.041), blocks"
    promoted.set_model_version_tag(MODEL, "3", "evaluation.slices", worst)
    promoted.set_model_version_tag(MODEL, "3", "evaluation.importance", "importance ranking nDCG 0.97")
    code, out, _ = run(capsys, "status")
    verdict = out.split(f"{MODEL} v3 reject:", 1)[1]
    assert f"  slices: {worst}\n  robustness: not measured\n  importance: importance ranking nDCG 0.97" in verdict
    promoted.set_model_version_tag(MODEL, "3", "evaluation.robustness", "flip rate 1.2% (champion 1.0%)")
    code, out, _ = run(capsys, "status")
    assert "  robustness: flip rate 1.2% (champion 1.0%)" in out
    code, out, _ = run(capsys, "status", "--json")
    [entry] = json.loads(out)
    assert entry["panel_summaries"] == {
        "slices": worst,
        "robustness": "flip rate 1.2% (champion 1.0%)",
        "importance": "importance ranking nDCG 0.97",
    }


def test_status_on_an_empty_registry(mlflow_client, capsys):
    code, out, err = run(capsys, "status")
    assert (code, out) == (0, "No registered models yet.\n")  # logs go to stderr, stdout is the answer only
    code, out, _ = run(capsys, "status", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_history_table_and_json(promoted, capsys):
    code, out, _ = run(capsys, "history", MODEL)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["AT", "ACTION", "ALIAS", "FROM", "TO", "BY", "REASON"]
    assert len(lines) == 4 and "airflow:retrain/scheduled__1/deploy" in lines[1] and "first model" in lines[1]
    code, out, _ = run(capsys, "history", MODEL, "--json")
    entries = json.loads(out)
    assert [(e["alias"], e["from"], e["to"]) for e in entries] == [
        ("champion", None, "1"),
        ("champion", "1", "2"),
        ("previous_champion", None, "1"),
    ]


def test_rollback_records_the_cli_user(promoted, capsys):
    code, out, err = run(capsys, "rollback", MODEL, "--reason", "latency regression")
    assert code == 0, err
    assert "champion is now version 1 (previous_champion: version 2)" in out
    assert registry.read_aliases(promoted, MODEL) == {"champion": "1", "previous_champion": "2"}
    last = registry.history(promoted, MODEL)[-1]
    assert last["by"] == f"cli:{getpass.getuser()}@{socket.gethostname()}"
    assert last["action"] == "rollback" and last["reason"] == "latency regression"
    code, out, _ = run(capsys, "rollback", MODEL, "--to", "3", "--reason", "try v3", "--json")
    assert code == 0 and json.loads(out)["champion"] == "3"


def test_unknown_model_or_version_exits_2(promoted, capsys):
    code, out, err = run(capsys, "rollback", "no_such_model", "--reason", "x")
    assert code == 2 and out == ""
    assert "no registered model named 'no_such_model'" in err and MODEL in err
    code, _, err = run(capsys, "history", "no_such_model")
    assert code == 2 and "no registered model named 'no_such_model'" in err
    code, _, err = run(capsys, "rollback", MODEL, "--to", "42", "--reason", "x")
    assert code == 2 and "has no version '42'" in err
    code, _, err = run(capsys, "rollback", MODEL, "--to", "2", "--reason", "x")
    assert code == 2 and "already the champion" in err
    assert registry.read_aliases(promoted, MODEL) == {"champion": "2", "previous_champion": "1"}


def test_bad_arguments_exit_2(mlflow_client, capsys):
    code, _, err = run(capsys, "rollback", MODEL)  # --reason is required
    assert code == 2 and "--reason" in err
    assert run(capsys)[0] == 2
    assert run(capsys, "--help")[0] == 0
