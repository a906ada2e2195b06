"""End to end: a churn pipeline whose daily files live in a bucket runs its retrain DAG through dag.test().

The churn stream's 28 daily CSV files are uploaded to moto's standalone S3 server on loopback (tests/s3_server.py,
IAM checks on: only the key moto issued to the `churn_s3` connection may read), and the pipeline's YAML says
``source.path: s3://churn_s3@churn-data/daily/``. The snapshot task reads them through Airflow's ObjectStoragePath
with that connection's credentials; the rest of the DAG (Great Expectations, training, the gate, deploy) runs on
the local snapshot as for any source. Its data version is the one the same files give from a local folder.

Then two bad runs (a `source` outside the allowed prefixes; a connection whose secret the store refuses) fail at
the snapshot, naming the URI and the connection, with the champion untouched and no secret in the run's output.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, churn_stream, task_states

sys.path.insert(0, str(ROOT / "tests"))
from s3_server import S3Server  # noqa: E402

#: End to end through dag.test() (minutes on 2 cores): `make soak`, which CI runs after the default suite.
pytestmark = pytest.mark.slow

LOGICAL = dt.datetime(2026, 1, 28, 2, 0, tzinfo=dt.UTC)
BUCKET = "churn-data"
SOURCE = f"s3://churn_s3@{BUCKET}/daily/"
WRONG_SECRET = "wr0ng-Secret-Hk4Vn8Qs2"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto_server holding the churn stream's 28 days under churn-data/daily/; connections churn_s3 (its key) and
    churn_s3_wrong (the same key id, a wrong secret)."""
    base = tmp_path_factory.mktemp("s3-pipeline")
    server = S3Server.start(base)
    try:
        keys = server.user_keys()
        local = base / "churn"
        churn_stream.write_stream(local, dt.date(2026, 1, 1), 28, rows=200)
        server.upload_folder(local, BUCKET, "daily/", **keys)
        server.enforce_auth()
        key_id, secret = keys["aws_access_key_id"], keys["aws_secret_access_key"]
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AIRFLOW_CONN_CHURN_S3", server.connection(key_id, secret))
            mp.setenv("AIRFLOW_CONN_CHURN_S3_WRONG", server.connection(key_id, WRONG_SECRET))
            yield {"local": local, "secret": secret, "key_id": key_id}
    finally:
        server.stop()


def s3_project(tmp_path: Path) -> Path:
    """A project root whose include/pipelines/s3churn.yaml is churn's, reading the bucket (one candidate: quick)."""
    config = yaml.safe_load((ROOT / "include" / "pipelines" / "churn.yaml").read_text())
    config["pipeline"] = "s3churn"
    config["model"]["name"] = "s3churn_classifier"
    config["model"]["candidates"] = config["model"]["candidates"][:1]
    config["source"]["path"] = SOURCE
    config["source"]["allowed_roots"] = ["data", f"s3://churn_s3@{BUCKET}/daily", f"s3://churn_s3_wrong@{BUCKET}/daily"]
    config["schedule"] = {"retrain": None}
    config.pop("scoring", None)
    root = tmp_path / "project"
    (root / "include" / "pipelines").mkdir(parents=True)
    shutil.copytree(ROOT / "include" / "expectations", root / "include" / "expectations")
    (root / "include" / "pipelines" / "s3churn.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _task_logs(run_id: str) -> str:
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return "\n".join(
        p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file() and f"run_id={run_id}" in str(p)
    )


def test_an_s3_sourced_pipeline_retrains_then_refuses_bad_sources(
    airflow_db, s3, mlops_home, mlflow_client, tmp_path, monkeypatch, capfd
):
    from airflow.dag_processing.dagbag import DagBag

    from airflow_mlops.core.config import load_config
    from airflow_mlops.core.data import take_snapshot

    root = s3_project(tmp_path)
    monkeypatch.setenv("AIRFLOW_MLOPS_PROJECT_ROOT", str(root))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.get_dag("s3churn_retrain")

    run = dag.test(logical_date=LOGICAL, run_conf={"source": None, "as_of": None, "config": None})

    assert task_states(run) == {t: "success" for t in dag.task_ids} | {"record_rejection": "skipped"}
    champion = mlflow_client.get_model_version_by_alias("s3churn_classifier", "champion")
    assert champion.tags["decision"] == "NO_BASELINE_PROMOTE"
    summary = run.get_task_instance("snapshot").xcom_pull(task_ids="snapshot")
    assert summary["source"] == f"s3://{BUCKET}/daily/ (Airflow connection 'churn_s3')" and summary["files"] == 28
    config = load_config(root / "include" / "pipelines" / "s3churn.yaml")
    local = take_snapshot(config, source=str(s3["local"]), window_end=LOGICAL.date(), snapshot_root=tmp_path / "l")
    assert champion.tags["data.digest"] == local["digest"]  # the same data version as the files on a local disk

    for source, expected in (
        (f"s3://churn_s3@{BUCKET}/private/", "source URI is outside the allowed URI prefixes"),
        (
            f"s3://churn_s3_wrong@{BUCKET}/daily/",
            "the store refused the credentials of Airflow connection 'churn_s3_wrong' (SignatureDoesNotMatch)",
        ),
    ):
        capfd.readouterr()
        bad = dag.test(logical_date=LOGICAL + dt.timedelta(days=1), run_conf={"source": source, "as_of": None})
        out = capfd.readouterr()
        output = out.out + out.err + _task_logs(bad.run_id)
        states = task_states(bad)
        assert states["snapshot"] == "failed" and states["train"] != "success" and states["deploy"] != "success"
        assert expected in output and f"s3://{BUCKET}/" in output, output[-3000:]
        assert s3["secret"] not in output and WRONG_SECRET not in output
        now = mlflow_client.get_model_version_by_alias("s3churn_classifier", "champion")
        assert now.version == champion.version  # the champion untouched
