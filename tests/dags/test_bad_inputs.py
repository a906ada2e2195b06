"""Bad input through the real DAG: a clear error naming the file and the problem, the champion untouched.

Each case feeds a malformed source to `churn_retrain` with the `source` param and runs it with
dag.test(). The failing task's log (what a user reads in the Airflow UI) must name the file and
the problem; the champion (trained once for the module, from a UTF-8 file with a byte-order mark:
a BOM is not bad input) must stay where it was with no new version beside it; and the bad batch
must be kept: a snapshot that stays on disk and is named in the log, or, for a file refused
before any snapshot, the original left untouched.

Cost: one MLflow store and one champion for the whole module; failing runs stop at the snapshot
or validation task; the two cases that train use a config variant with a single candidate.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from conftest import CHURN_CONFIG, ROOT, churn_stream

from airflow_mlops.core.config import load_config

LOGICAL = dt.datetime(2026, 1, 28, 2, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 1, 20)
MODEL = "churn_classifier"


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).get_dag("churn_retrain")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One MLOps home (MLflow store, snapshots) for the whole battery."""
    patch = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("bad-inputs") / "mlops"
    home.mkdir()
    patch.setenv("AIRFLOW_MLOPS_HOME", str(home))
    yield home
    patch.undo()


@pytest.fixture(scope="module")
def client(home):
    from mlflow import MlflowClient

    from airflow_mlops import settings
    from airflow_mlops.core import tracking

    client = MlflowClient(tracking_uri=settings.default_tracking_uri(), registry_uri=settings.default_tracking_uri())
    tracking.configure(client)
    return client


FAST = "churn_fast"  # include/pipelines/churn_fast.yaml: the same model and gate, one candidate


@pytest.fixture(scope="module")
def champion(dag, client, tmp_path_factory) -> dict:
    """A champion trained from a clean batch saved with a UTF-8 byte-order mark."""
    source = tmp_path_factory.mktemp("bom") / "churn_bom.csv"
    source.write_bytes(b"\xef\xbb\xbf" + _clean().to_csv(index=False).encode())
    dag_run = dag.test(logical_date=LOGICAL, run_conf=_conf(source, FAST))
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    version = client.get_model_version_by_alias(MODEL, "champion")
    return {"states": states, "version": version.version, "run_id": dag_run.run_id}


def _conf(source, config: str = "churn") -> dict:
    # Every param explicitly: in dag.test() one run's conf leaks into the next run's params (same DAG object).
    return {"source": str(source), "as_of": DAY.isoformat(), "config": config}


def test_utf8_bom_is_not_bad_input_it_trains_and_deploys(champion, client):
    assert champion["states"]["deploy"] == "success", champion["states"]
    assert client.get_model_version(MODEL, champion["version"]).tags["airflow.run_id"] == champion["run_id"]


# --------------------------------------------------------------------------- the cases
# Each returns (source, fragments the failing task's log must contain). Sources are files under
# tmp (an allowed data root in tests: AIRFLOW_MLOPS_DATA_ROOTS) unless the case is about the path.


def _clean(days: int = 8, rows_per_day: int = 200):
    """A clean window ending on DAY: enough days for the time split, enough test rows for the gate."""
    import pandas as pd

    first = DAY - dt.timedelta(days=days - 1)
    return pd.concat(
        [churn_stream.daily_batch(first + dt.timedelta(days=i), rows=rows_per_day) for i in range(days)],
        ignore_index=True,
    )


def _csv(tmp: Path, name: str, frame) -> Path:
    path = tmp / name
    frame.to_csv(path, index=False)
    return path


def missing_file(tmp):
    return tmp / "churn_2026-01-20.csv", ["churn_2026-01-20.csv", "not found"]


def binary_garbage(tmp):
    path = tmp / "garbage.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20)
    return path, ["garbage.csv", "binary"]


def corrupted_parquet(tmp):
    path = tmp / "batch.parquet"
    _clean().to_parquet(path)
    path.write_bytes(path.read_bytes()[:300])
    return path, ["batch.parquet", "Parquet"]


def truncated_csv(tmp):
    path = tmp / "cut.csv"
    data = _clean().to_csv(index=False).encode()
    path.write_bytes(data[: data.index(b"\n", len(data) // 2) + 20])  # cut in the middle of a record
    return path, ["cut.csv", "truncated"]


def rows_with_missing_fields(tmp):
    path = tmp / "short_rows.csv"
    lines = _clean().to_csv(index=False).splitlines()
    lines[5] = ",".join(lines[5].split(",")[:6])
    lines[9] = ",".join(lines[9].split(",")[:3])
    path.write_text("\n".join(lines) + "\n")
    return path, ["short_rows.csv", "line 6", "line 10"]


def wrong_delimiter(tmp):
    path = tmp / "semicolons.csv"
    _clean().to_csv(path, index=False, sep=";")
    return path, ["semicolons.csv", "semicolon-delimited", "delimiter ','"]


def duplicated_header(tmp):
    path = tmp / "two_regions.csv"
    frame = _clean()
    frame.insert(3, "region_copy", frame["region"])
    path.write_text(frame.to_csv(index=False).replace("region_copy", "region", 1))
    return path, ["two_regions.csv", "duplicated column name", "'region'"]


def missing_required_column(tmp):
    return _csv(tmp, "no_region.csv", _clean().drop(columns=["region"])), ["no_region.csv", "region"]


def strings_in_numeric_column(tmp):
    frame = _clean()
    frame["monthly_charges"] = frame["monthly_charges"].astype(str) + " USD"
    path = _csv(tmp, "text_charges.csv", frame)
    return path, ["text_charges.csv", "monthly_charges", "expect_column_values_to_be_in_type_list", "not numbers"]


def mixed_types(tmp):
    frame = _clean()
    frame["tenure_months"] = frame["tenure_months"].astype(object)
    frame.loc[:4, "tenure_months"] = "twelve"
    path = _csv(tmp, "mixed_tenure.csv", frame)
    return path, ["mixed_tenure.csv", "'tenure_months'", "5 of 1600 values are not numbers", "'twelve'"]


def infinities(tmp):
    frame = _clean()
    frame.loc[:2, "data_usage_gb"] = float("inf")
    return _csv(tmp, "inf_usage.csv", frame), ["inf_usage.csv", "'data_usage_gb'", "3 infinite value(s)"]


def all_null_column(tmp):
    frame = _clean()
    frame["data_usage_gb"] = None
    path = _csv(tmp, "null_usage.csv", frame)
    return path, ["null_usage.csv", "data_usage_gb", "expect_column_values_to_not_be_null"]


def constant_column(tmp):
    frame = _clean()
    frame["support_calls"] = 3
    path = _csv(tmp, "stuck_calls.csv", frame)
    return path, ["stuck_calls.csv", "'support_calls'", "1 distinct value", "constant column"]


def empty_file(tmp):
    path = tmp / "zero.csv"
    path.touch()
    return path, ["zero.csv", "empty (0 bytes)"]


def header_only(tmp):
    path = tmp / "empty.csv"
    path.write_text(_clean().head(0).to_csv(index=False))
    return path, ["empty.csv", "zero data rows"]


def ten_times_the_columns(tmp):
    frame = _clean()
    for i in range(90):
        frame[f"extra_{i}"] = i
    path = _csv(tmp, "wide.csv", frame)
    return path, ["wide.csv", "expect_table_columns_to_match_set", "unexpected ['extra_0'", "+86 more"]


def unseen_target_labels(tmp):
    frame = _clean()
    frame.loc[:6, "churned"] = 2
    path = _csv(tmp, "label_two.csv", frame)
    return path, ["label_two.csv", "column 'churned': expect_column_values_to_be_in_set", "7 of 1600", "e.g. [2]"]


def single_class_target(tmp):
    frame = _clean()
    frame["churned"] = 0
    return _csv(tmp, "nobody_churns.csv", frame), ["churned", "single class", "nobody_churns", "kept for inspection"]


def target_leakage(tmp):
    frame = _clean()
    frame["support_calls"] = frame["churned"] * 10  # the label, thinly disguised
    path = _csv(tmp, "leaky.csv", frame)
    return path, ["rejected", "suspected target leakage through feature(s) 'support_calls'"]


def extreme_outliers(tmp):
    frame = _clean()
    frame.loc[:3, "monthly_charges"] = 1e9
    path = _csv(tmp, "outliers.csv", frame)
    return path, ["outliers.csv", "column 'monthly_charges': expect_column_values_to_be_between", "1000000000"]


def future_timestamps(tmp):
    frame = _clean()
    frame.loc[:9, "event_date"] = "2099-01-01"
    path = _csv(tmp, "from_2099.csv", frame)
    return path, ["from_2099.csv", "date column 'event_date'", "10 row(s) dated in the future", "2099-01-01"]


def outside_the_data_roots(tmp):
    return Path("/etc/passwd"), ["/etc/passwd", "outside the allowed folders"]


def path_traversal(tmp):
    source = "data/../include/pipelines/churn.yaml"  # relative to the project root: escapes data/
    return source, ["data/../include/pipelines/churn.yaml", "outside the allowed folders", "was not read"]


def symlink_loop(tmp):
    a, b = tmp / "loop_a.csv", tmp / "loop_b.csv"
    a.symlink_to(b)
    b.symlink_to(a)
    return a, ["loop_a.csv", "symbolic link loop"]


def huge_file(tmp):
    path = tmp / "huge.csv"
    limit = load_config(CHURN_CONFIG).source.max_file_mb
    with path.open("wb") as fh:
        fh.truncate(int((limit + 1) * 1024 * 1024))  # sparse: no disk space, no write time
    return path, ["huge.csv", "too large", f"source.max_file_mb {limit:g}"]


def shell_separator(tmp):
    return f"data/x; touch {tmp / 'pwned'}", [f"data/x; touch {tmp / 'pwned'}", "not found"]


def shell_substitution(tmp):
    return f"$(touch {tmp / 'pwned'})", [f"$(touch {tmp / 'pwned'})", "outside the allowed folders"]


def template_in_the_param(tmp):
    source = "{{ macros.ds_add(ds, 1) }}.csv"  # a param value is data: Airflow does not render it again
    return source, ["{{ macros.ds_add(ds, 1) }}.csv", "outside the allowed folders"]


# name -> (make, the task that stops the run: snapshot / validate / train, or evaluate for a rejection)
CASES = {
    "missing file": (missing_file, "snapshot"),
    "binary garbage CSV": (binary_garbage, "snapshot"),
    "corrupted Parquet": (corrupted_parquet, "snapshot"),
    "truncated CSV": (truncated_csv, "snapshot"),
    "rows with missing fields": (rows_with_missing_fields, "snapshot"),
    "wrong delimiter": (wrong_delimiter, "snapshot"),
    "duplicated header": (duplicated_header, "snapshot"),
    "missing required column": (missing_required_column, "snapshot"),
    "strings in a numeric column": (strings_in_numeric_column, "validate"),
    "mixed types in a column": (mixed_types, "validate"),
    "infinities": (infinities, "snapshot"),
    "all-null column": (all_null_column, "validate"),
    "constant column": (constant_column, "validate"),
    "empty file": (empty_file, "snapshot"),
    "header only": (header_only, "snapshot"),
    "10x the expected columns": (ten_times_the_columns, "validate"),
    "unseen target labels": (unseen_target_labels, "validate"),
    "single-class target": (single_class_target, "train"),
    "target leakage": (target_leakage, "evaluate"),
    "extreme outliers": (extreme_outliers, "validate"),
    "timestamps from the future": (future_timestamps, "snapshot"),
    "path outside the data roots": (outside_the_data_roots, "snapshot"),
    "path traversal": (path_traversal, "snapshot"),
    "symlink loop": (symlink_loop, "snapshot"),
    "file beyond source.max_file_mb": (huge_file, "snapshot"),
    "shell command separator": (shell_separator, "snapshot"),
    "shell command substitution": (shell_substitution, "snapshot"),
    "template in the param": (template_in_the_param, "snapshot"),
}


def _fingerprint(source) -> tuple | None:
    path = ROOT / source if not os.path.isabs(source) else Path(source)
    try:
        st = path.lstat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_mode


def _versions(client) -> set[str]:
    return {v.version for v in client.search_model_versions(f"name = '{MODEL}'")}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_clearly_and_the_champion_stays(case, dag, home, client, champion, tmp_path, capfd):
    make, stage = CASES[case]
    source, expected = make(tmp_path)
    snapshots = home / "snapshots" / "churn"
    kept_before = set(snapshots.glob("*.parquet"))
    original = _fingerprint(source)
    versions = _versions(client)
    capfd.readouterr()

    dag_run = dag.test(logical_date=LOGICAL, run_conf=_conf(source, FAST if stage == "evaluate" else "churn"))

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    log = capfd.readouterr()
    text = log.out + log.err
    for fragment in expected:
        assert fragment.lower() in text.lower(), f"{case}: the task log does not mention {fragment!r}"
    # The champion is untouched; only a rejected challenger may be registered beside it.
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion["version"]
    new_versions = _versions(client) - versions
    if stage == "evaluate":
        assert states["record_rejection"] == "success" and states["deploy"] == "skipped", states
        assert len(new_versions) == 1
    else:
        assert states[stage] == "failed", states
        assert states.get("register_challenger") != "success" and not new_versions, states
    # The bad batch is kept: its snapshot stays and the log says where, or the original is untouched.
    kept = set(snapshots.glob("*.parquet")) - kept_before
    if stage == "snapshot":
        assert not kept, f"{case}: a refused source must not leave a snapshot"
        assert _fingerprint(source) == original, f"{case}: the original must be left untouched"
    else:
        (snapshot,) = kept
        assert str(snapshot) in text, f"{case}: the log does not say where the batch is kept"
    assert not (tmp_path / "pwned").exists(), "a source path must never reach a shell"


def test_config_errors_fail_the_task_without_retry(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops.operators.training import PipelineCandidatesOperator

    text = CHURN_CONFIG.read_text()
    unknown_key = tmp_path / "unknown_key.yaml"
    unknown_key.write_text(text + "\nlearning_rate: 0.1\n")
    bad_estimator = tmp_path / "bad_estimator.yaml"
    bad_estimator.write_text(text.replace("sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.RandomJungle"))
    wrong_type = tmp_path / "wrong_type.yaml"
    wrong_type.write_text(text.replace("seed: 42", "seed: forty-two"))

    for path, fragment in [
        (unknown_key, "unknown key(s) 'learning_rate'"),
        (bad_estimator, "model.candidates[1].estimator: unknown estimator 'sklearn.ensemble.RandomJungle'"),
        (wrong_type, "seed: expected int, got str 'forty-two'"),
    ]:
        op = PipelineCandidatesOperator(task_id="candidates", config_path=str(path))
        with pytest.raises(AirflowFailException) as err:
            op.execute(context={})
        assert path.name in str(err.value) and fragment in str(err.value)
    assert load_config(CHURN_CONFIG).name == "churn"
