"""End-to-end: a churn pipeline whose rows live in PostgreSQL (`source.kind: sql`) runs its retrain DAG with the real
task runner (dag.test()), real MLflow (SQLite), Great Expectations on the snapshot, and the real PostgreSQL on loopback.

The project `pgchurn` (churn_fast's model and gate, one candidate) reads the table `churn` of a throwaway database
(the churn stream's 28 days, 200 rows a day) through the Airflow connection `pg_churn` (AIRFLOW_CONN_PG_CHURN). The
first run snapshots, validates, trains, judges and deploys. Then each bad input fails the snapshot task with a log that
names the connection (or the query, or the window) and what to do; nothing is written and the champion stays:
a connection id that does not exist, a login the database refuses (its password appears nowhere), SQL in the `as_of`
param, a window with no rows, a table that does not exist, text in a numeric column.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil

import pytest
import yaml
from conftest import ROOT, churn_stream, task_states
from postgres_db import Database, churn_days

#: End to end through dag.test() (minutes on 2 cores): `make soak`, which CI runs after the default suite.
pytestmark = pytest.mark.slow

LOGICAL = dt.datetime(2026, 1, 28, 2, 0, tzinfo=dt.UTC)
MODEL = "pgchurn_classifier"
DAG_ID = "pgchurn_retrain"
PASSWORD = "Pg-" + secrets.token_hex(8)


def _config(**source) -> dict:
    config = yaml.safe_load((ROOT / "include" / "pipelines" / "churn_fast.yaml").read_text())
    config.pop("variant_of", None)
    config.pop("scoring", None)
    config["pipeline"] = "pgchurn"
    config["model"]["name"] = MODEL
    config["schedule"] = {"retrain": None, "drift_monitor": None, "scoring": None, "performance_monitor": None}
    config["source"] = {
        "kind": "sql",
        "conn_id": "pg_churn",
        "table": "churn",
        "date_column": "event_date",
        "window_days": 14,
        "id_columns": ["customer_id"],
        **source,
    }
    return config


def _variant(name: str, **source) -> tuple[str, dict]:
    config = _config(**source)
    config["variant_of"] = "pgchurn"
    return name, config


VARIANTS = dict(
    [
        _variant("pgchurn_noconn", conn_id="churn_warehouse"),
        _variant("pgchurn_refused", conn_id="pg_refused"),
        _variant("pgchurn_archive", table="churn_archive"),
        _variant("pgchurn_text", table="sales.churn"),
        _variant(
            "pgchurn_query",
            table=None,
            query="SELECT * FROM churn WHERE event_date >= %(start)s AND event_date < %(after_end)s ORDER BY customer_id",
        ),
    ]
)


@pytest.fixture(scope="module")
def project(airflow_db, tmp_path_factory):
    """The pgchurn project, its database and connections, an MLflow home, and the DAG."""
    db = Database("mlops_sql_dag")
    root = tmp_path_factory.mktemp("sql-pipeline") / "project"
    try:
        db.load_churn("churn", churn_days(churn_stream, dt.date(2026, 1, 1), 28, 200))
        db.execute("CREATE SCHEMA sales")
        db.execute("CREATE TABLE sales.churn AS SELECT * FROM churn")
        db.execute("ALTER TABLE sales.churn ALTER COLUMN monthly_charges TYPE text")
        db.execute("UPDATE sales.churn SET monthly_charges = 'unknown' WHERE support_calls = 0")
        refused = db.role(f"{db.name}_nologin", PASSWORD, login=False)
        (root / "include" / "pipelines").mkdir(parents=True)
        shutil.copytree(ROOT / "include" / "expectations", root / "include" / "expectations")
        pipelines = root / "include" / "pipelines"
        (pipelines / "pgchurn.yaml").write_text(yaml.safe_dump(_config()))
        for name, config in VARIANTS.items():
            (pipelines / f"{name}.yaml").write_text(
                yaml.safe_dump(config | {"source": _dropped_nones(config["source"])})
            )
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AIRFLOW_MLOPS_PROJECT_ROOT", str(root))
            mp.setenv("AIRFLOW_MLOPS_HOME", str(root.parent / "mlops"))
            mp.setenv("AIRFLOW_CONN_PG_CHURN", db.airflow_connection())
            mp.setenv("AIRFLOW_CONN_PG_REFUSED", db.airflow_connection(login=refused, password=PASSWORD))
            from airflow.dag_processing.dagbag import DagBag
            from mlflow import MlflowClient

            from airflow_mlops import settings
            from airflow_mlops.core import tracking

            bag = DagBag(dag_folder=str(ROOT / "dags"))
            assert bag.import_errors == {}
            client = MlflowClient(
                tracking_uri=settings.default_tracking_uri(), registry_uri=settings.default_tracking_uri()
            )
            tracking.configure(client)
            yield {"dag": bag.get_dag(DAG_ID), "client": client, "db": db, "home": root.parent / "mlops"}
    finally:
        db.drop()


def _dropped_nones(source: dict) -> dict:
    return {k: v for k, v in source.items() if v is not None}


def _conf(config: str = "pgchurn", as_of: str = "2026-01-28") -> dict:
    # Every param explicitly: in dag.test() one run's conf leaks into the next run's params (same DAG object).
    return {"config": config, "as_of": as_of, "source": None}


@pytest.fixture(scope="module")
def champion(project):
    """The first run: snapshot from PostgreSQL, validate, train, judge, deploy."""
    dag, client = project["dag"], project["client"]
    dag_run = dag.test(logical_date=LOGICAL, run_conf=_conf())
    states = task_states(dag_run)
    assert states == {t: "success" for t in dag.task_ids} | {"record_rejection": "skipped"}, states
    return {"run": dag_run, "version": client.get_model_version_by_alias(MODEL, "champion").version}


def test_a_postgresql_sourced_pipeline_snapshots_validates_trains_and_deploys(project, champion):
    client, dag_run = project["client"], champion["run"]
    snapshot = dag_run.get_task_instance("snapshot").xcom_pull(task_ids="snapshot")
    assert snapshot["rows"] == 14 * 200 and snapshot["window_start"] == "2026-01-15"
    assert snapshot["source"] == "SQL connection 'pg_churn'"
    assert snapshot["sql"]["conn_id"] == "pg_churn" and snapshot["sql"]["fetch"] == "copy"
    assert snapshot["sql"]["query"].endswith(
        'FROM "churn" WHERE "event_date" >= %(start)s AND "event_date" < %(after_end)s'
    )
    assert snapshot["sql"]["params"] == {"start": "2026-01-15", "after_end": "2026-01-29"}
    assert snapshot["uri"].startswith(str(project["home"] / "snapshots" / "pgchurn"))

    version = client.get_model_version_by_alias(MODEL, "champion")
    assert version.tags["data.digest"] == snapshot["digest"] and version.tags["decision"] == "NO_BASELINE_PROMOTE"
    experiment = client.get_experiment_by_name("pgchurn")
    validations = client.search_runs([experiment.experiment_id], filter_string="tags.`mlops.step` = 'validate'")
    assert len(validations) == 1  # Great Expectations ran on the snapshot, its result kept with the run
    artifacts = {a.path for a in client.list_artifacts(validations[0].info.run_id, "validation")}
    assert "validation/result.json" in artifacts


def test_a_query_source_gives_the_same_snapshot_as_the_table(project, champion):
    """The same rows through a query (ordered differently): the same canonical snapshot, the same data version."""
    dag = project["dag"]
    first = champion["run"].get_task_instance("snapshot").xcom_pull(task_ids="snapshot")
    dag_run = dag.test(logical_date=LOGICAL, run_conf=_conf("pgchurn_query"))
    assert task_states(dag_run)["snapshot"] == "success"
    by_query = dag_run.get_task_instance("snapshot").xcom_pull(task_ids="snapshot")
    assert by_query["digest"] == first["digest"] and by_query["uri"] == first["uri"]
    assert by_query["sql"]["params"] == {"start": "2026-01-15", "after_end": "2026-01-29"}


def _no_connection(project):
    return _conf("pgchurn_noconn"), [
        "source.conn_id 'churn_warehouse': no Airflow connection has this id",
        "airflow connections add churn_warehouse --conn-uri",
    ]


def _refused(project):
    return _conf("pgchurn_refused"), ["connection 'pg_refused': the database refused it", "not permitted to log in"]


def _sql_in_the_window(project):
    return _conf(as_of="2026-01-28'; DROP TABLE churn; --"), ["param as_of=", "is not a date"]


def _no_rows(project):
    return _conf(as_of="2025-06-30"), [
        "connection 'pg_churn': no rows in the window 2025-06-17..2025-06-30; nothing was written",
        'FROM "churn"',
    ]


def _no_table(project):
    return _conf("pgchurn_archive"), ["connection 'pg_churn'", 'relation "churn_archive" does not exist']


def _text_in_a_number(project):
    return _conf("pgchurn_text"), ["column 'monthly_charges' is a numeric feature", "e.g. 'unknown'", '"sales"."churn"']


CASES = {
    "a connection id that does not exist": _no_connection,
    "credentials refused": _refused,
    "SQL in the as_of param": _sql_in_the_window,
    "no rows in the window": _no_rows,
    "a table that does not exist": _no_table,
    "text in a numeric column": _text_in_a_number,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_sql_input_fails_the_snapshot_clearly_and_the_champion_stays(case, project, champion, capfd):
    dag, client, db = project["dag"], project["client"], project["db"]
    conf, expected = CASES[case](project)
    snapshots = set((project["home"] / "snapshots" / "pgchurn").glob("*.parquet"))
    versions = {v.version for v in client.search_model_versions(f"name = '{MODEL}'")}
    capfd.readouterr()

    dag_run = dag.test(logical_date=LOGICAL, run_conf=conf)

    log = capfd.readouterr()
    text = log.out + log.err
    states = task_states(dag_run)
    assert states["snapshot"] == "failed", states
    for fragment in expected:
        assert fragment in text, f"{case}: the task log does not say {fragment!r}"
    assert PASSWORD not in text
    assert set((project["home"] / "snapshots" / "pgchurn").glob("*.parquet")) == snapshots  # nothing written
    assert {v.version for v in client.search_model_versions(f"name = '{MODEL}'")} == versions
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion["version"]
    assert db.execute("SELECT count(*) FROM churn") == [(28 * 200,)]  # the table is still there, whole
