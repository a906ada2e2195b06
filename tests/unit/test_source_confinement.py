"""A run's `source` reads data files only: never the state folder, never a secret, never a quoted non-data file.

The state folder ($AIRFLOW_MLOPS_HOME) holds secrets.env (the demo's and the local stack's admin password,
Fernet key, JWT secret, MLflow passwords) and Airflow's generated password file: it is no source root, and a
path inside it is refused even when a data folder holds it or lies inside it. Inside a data folder, a file
that is not a CSV/Parquet data file (by its name and by its content) is refused, named as the user gave it,
and nothing of it is quoted. The one redaction (core.redaction) hides the value of any name ending in
password / secret / key / token, whatever its case and separators.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from conftest import churn_stream

from airflow_mlops.core.data import take_snapshot
from airflow_mlops.core.errors import DataSourceError
from airflow_mlops.core.redaction import redact

ADMIN_PASSWORD = "Adm1n-pw-9fQ2xLk7"
JWT_SECRET = "jwt-Zr8Qp1mVb6Kd0sWn"
FERNET_KEY = "t9x3Wq0Y5cV1bN8mK2jH7gF4dS6aP0oI1uY3tR5eW7q="
MLFLOW_PASSWORD = "mlf-Hq2Nw8Rt4Yu6"
GENERATED_PASSWORD = "gen-Pk5Lz9Xc3Vb1"
SECRETS = (ADMIN_PASSWORD, JWT_SECRET, FERNET_KEY, MLFLOW_PASSWORD, GENERATED_PASSWORD)

SECRETS_ENV = (
    f"AIRFLOW_ADMIN_PASSWORD={ADMIN_PASSWORD}\n"
    f"AIRFLOW__API_AUTH__JWT_SECRET={JWT_SECRET}\n"
    f"AIRFLOW_FERNET_KEY={FERNET_KEY}\n"
    f"MLFLOW_ADMIN_PASSWORD={MLFLOW_PASSWORD}\n"
)
GENERATED_PASSWORDS = json.dumps({"admin": GENERATED_PASSWORD})


def write_state(home: Path) -> dict[str, Path]:
    """A state folder as `make demo` leaves it: secrets.env and Airflow's generated password file."""
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    env = home / "secrets.env"
    env.write_text(SECRETS_ENV)
    generated = home / "airflow" / "simple_auth_manager_passwords.json.generated"
    generated.write_text(GENERATED_PASSWORDS)
    return {"secrets.env": env, "password file": generated}


def assert_quotes_nothing(message: str) -> None:
    for secret in SECRETS:
        assert secret not in message, f"a secret leaked into the error: {message}"
    assert "AIRFLOW_ADMIN_PASSWORD" not in message and '"admin"' not in message, message


def refused(config, source, snap_root, **kwargs) -> str:
    with pytest.raises(DataSourceError) as info:
        take_snapshot(config, source=str(source), snapshot_root=snap_root, **kwargs)
    message = str(info.value)
    assert not snap_root.exists(), message  # nothing read, nothing written
    return message


# --------------------------------------------------------------------------- the state folder


def test_the_state_folder_is_not_a_source_root(churn_config, monkeypatch, tmp_path):
    from airflow_mlops.core.paths import source_roots

    monkeypatch.setenv("AIRFLOW_MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIRFLOW_MLOPS_DATA_ROOTS", str(tmp_path / "a"))
    roots = source_roots(churn_config)
    assert tmp_path / "home" not in roots
    assert roots == [Path(churn_config.path).resolve().parents[2] / "data", tmp_path / "a"]


@pytest.mark.parametrize("target", ["secrets.env", "password file"])
def test_a_secret_in_the_state_folder_is_refused_quoting_nothing(churn_config, mlops_home, tmp_path, target):
    """The tests' data root (their temp folder) holds the state folder: a data root around it changes nothing."""
    source = write_state(mlops_home)[target]
    message = refused(churn_config, source, tmp_path / "snapshots")
    assert str(source) in message and "state folder $AIRFLOW_MLOPS_HOME" in message and "nothing was read" in message
    assert_quotes_nothing(message)


def test_a_path_into_the_state_folder_is_named_as_given(churn_config, mlops_home, tmp_path):
    write_state(mlops_home)
    given = f"{tmp_path}/data/../mlops/secrets.env"  # not resolved: named as given
    message = refused(churn_config, given, tmp_path / "snapshots", allowed_roots=[tmp_path])
    assert message.startswith(f"{given}: refused") and "state folder" in message
    assert_quotes_nothing(message)


def test_a_data_root_inside_the_state_folder_is_still_refused(churn_config, mlops_home, tmp_path):
    data = mlops_home / "data"
    churn_stream.write_stream(data, dt.date(2026, 1, 1), 3, rows=20)  # a real data file, in the wrong place
    message = refused(churn_config, data / "churn_2026-01-02.csv", tmp_path / "snapshots", allowed_roots=[data])
    assert "state folder" in message and f"the allowed folder(s) {data.resolve()} lie inside it" in message


def test_the_state_folder_given_as_a_root_is_still_refused(churn_config, mlops_home, tmp_path):
    write_state(mlops_home)
    message = refused(churn_config, mlops_home / "secrets.env", tmp_path / "snapshots", allowed_roots=[mlops_home])
    assert "state folder" in message
    assert_quotes_nothing(message)


def test_a_symlink_from_a_data_root_into_the_state_folder_is_refused(churn_config, mlops_home, tmp_path):
    secrets = write_state(mlops_home)["secrets.env"]
    data = tmp_path / "data"
    data.mkdir()
    (data / "churn_2026-01-05.csv").symlink_to(secrets)
    message = refused(churn_config, data, tmp_path / "snapshots", allowed_roots=[data], window_end=dt.date(2026, 1, 5))
    assert "churn_2026-01-05.csv" in message and "state folder" in message
    assert_quotes_nothing(message)


def test_the_state_folder_is_refused_to_every_reader_of_a_source(churn_config, mlops_home):
    """The drift sensor's window, scoring's batch and the performance check's labels resolve through paths too."""
    from airflow_mlops.core.errors import PerformanceError
    from airflow_mlops.core.monitoring import window_pattern
    from airflow_mlops.core.performance.inputs import find_labels
    from airflow_mlops.core.scoring.batch import batch_file

    secrets = str(write_state(mlops_home)["secrets.env"])
    day = dt.date(2026, 1, 5)
    for read in (
        lambda: window_pattern(churn_config, day, source=secrets),
        lambda: batch_file(churn_config, day, source=secrets),
        lambda: find_labels(churn_config, day, source=secrets),
    ):
        with pytest.raises((DataSourceError, PerformanceError), match="state folder") as info:
            read()
        assert_quotes_nothing(str(info.value))


# --------------------------------------------------------------------------- files that are not data files


NOT_DATA = {
    "notes.txt": SECRETS_ENV,
    "copy.env": SECRETS_ENV,
    "passwords.json": GENERATED_PASSWORDS,
    "simple_auth_manager_passwords.json.generated": GENERATED_PASSWORDS,
    "noextension": SECRETS_ENV,
}


@pytest.mark.parametrize("name", list(NOT_DATA))
def test_a_file_that_is_not_named_csv_or_parquet_is_refused_unread(churn_config, tmp_path, name):
    data = tmp_path / "data"
    data.mkdir()
    (data / name).write_text(NOT_DATA[name])
    message = refused(churn_config, data / name, tmp_path / "snapshots", allowed_roots=[data])
    assert f"{data / name}: not a CSV/Parquet data file" in message and "was not read" in message
    assert_quotes_nothing(message)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("secrets.csv", SECRETS_ENV, ["not a CSV data file", "customer_id"]),
        ("passwords.csv", GENERATED_PASSWORDS, ["not a CSV data file"]),
        # ';' splits the first line in two: still no header of this data, and the line is not quoted
        (
            "semicolon.csv",
            f"AIRFLOW_ADMIN_PASSWORD;{ADMIN_PASSWORD}\nJWT_SECRET;{JWT_SECRET}\n",
            ["not a CSV data file"],
        ),
        ("two_fields.csv", f"AIRFLOW_ADMIN_PASSWORD,{ADMIN_PASSWORD}\nx,{JWT_SECRET}\n", ["not a CSV data file"]),
        ("secrets.parquet", SECRETS_ENV, ["not a Parquet data file", "PAR1"]),
    ],
)
def test_a_data_name_on_other_content_is_refused_quoting_nothing(churn_config, tmp_path, name, content, words):
    data = tmp_path / "data"
    data.mkdir()
    (data / name).write_text(content)
    message = refused(churn_config, data / name, tmp_path / "snapshots", allowed_roots=[data])
    assert str(data / name) in message and all(w in message for w in words), message
    assert_quotes_nothing(message)


def test_a_non_data_file_in_a_folder_of_daily_files_is_named_not_quoted(churn_config, tmp_path):
    data = tmp_path / "data"
    churn_stream.write_stream(data, dt.date(2026, 1, 1), 3, rows=20)
    (data / "churn_2026-01-02.csv").write_text(SECRETS_ENV)
    message = refused(churn_config, data, tmp_path / "snapshots", allowed_roots=[data], window_end=dt.date(2026, 1, 3))
    assert f"{data / 'churn_2026-01-02.csv'}: not a CSV data file" in message
    assert_quotes_nothing(message)


def test_a_header_of_this_data_is_still_shown_when_a_column_is_missing(churn_config, tmp_path):
    """A recognised data file (its header names the config's columns) keeps the helpful message."""
    frame = churn_stream.daily_batch(dt.date(2026, 1, 3), rows=5).drop(columns=["region"])
    source = tmp_path / "narrow.csv"
    frame.to_csv(source, index=False)
    message = refused(churn_config, source, tmp_path / "snapshots")
    assert "missing required column(s) 'region'" in message and "present: customer_id" in message


def test_scoring_and_labels_readers_refuse_non_data_files_quoting_nothing(churn_config, tmp_path):
    """The shared readers (scoring's streaming check, the labels' CSV reader, every frame's column check)."""
    import io

    import pandas as pd

    from airflow_mlops.core import data

    env = tmp_path / "secrets.env"
    env.write_text(SECRETS_ENV)
    for read in (
        lambda: data.check_csv_records(env, io.StringIO(SECRETS_ENV, newline=""), lambda: True),
        lambda: data.read_csv(env),
        lambda: data.read_parquet(env),
    ):
        with pytest.raises(DataSourceError, match="not a CSV/Parquet data file") as info:
            read()
        assert_quotes_nothing(str(info.value))
    frame = pd.DataFrame({f"AIRFLOW_ADMIN_PASSWORD={ADMIN_PASSWORD}": [f"JWT_SECRET={JWT_SECRET}"]})
    with pytest.raises(DataSourceError, match="the header is not shown") as info:
        data.check_frame(frame, churn_config, tmp_path / "batch.csv")
    assert_quotes_nothing(str(info.value))


def test_a_semicolon_delimited_file_is_named_without_quoting_its_header(churn_config, tmp_path):
    source = tmp_path / "semi.csv"
    source.write_text(f"AIRFLOW_ADMIN_PASSWORD;{ADMIN_PASSWORD}\nx;y\n")
    from airflow_mlops.core import data

    with pytest.raises(DataSourceError, match="semicolon-delimited") as info:
        data.read_csv(source)  # no declared columns here (the labels' and init's reader)
    assert_quotes_nothing(str(info.value))


# --------------------------------------------------------------------------- one redaction


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"AIRFLOW_ADMIN_PASSWORD={ADMIN_PASSWORD}", ADMIN_PASSWORD),
        (f"jwt_secret: {JWT_SECRET}", JWT_SECRET),
        (f'{{"AIRFLOW__API_AUTH__JWT_SECRET": "{JWT_SECRET}"}}', JWT_SECRET),
        (f"fernet-key={FERNET_KEY}", FERNET_KEY),
        (f"AIRFLOW__CORE__FERNET_KEY={FERNET_KEY}", FERNET_KEY),
        (f"ApiToken={MLFLOW_PASSWORD}", MLFLOW_PASSWORD),
        (f"apiKey: '{MLFLOW_PASSWORD}'", MLFLOW_PASSWORD),
        (f"MLFLOW_FLASK_SERVER_SECRET_KEY = {MLFLOW_PASSWORD}", MLFLOW_PASSWORD),
        (f"Authorization: Bearer {MLFLOW_PASSWORD}", MLFLOW_PASSWORD),
        (f"postgresql://airflow:{ADMIN_PASSWORD}@db:5432/x", ADMIN_PASSWORD),
        (f"password={ADMIN_PASSWORD} token: {JWT_SECRET}", JWT_SECRET),
    ],
)
def test_redaction_hides_every_name_ending_in_password_secret_key_or_token(text, secret):
    found: list[str] = []
    out = redact(f"error: {text}; retry", on_secret=found.append)
    assert secret not in out and "***" in out and out.endswith("; retry"), out
    assert secret in found  # handed to Airflow's mask_secret by the Airflow-side callers


def test_redaction_leaves_config_keys_and_ordinary_words_alone():
    for text in ("churn.yaml: split.key: expected str, got int 3", "monkey=3", "unknown key(s) 'learning_rate'"):
        assert redact(text) == text


def test_alerts_and_operators_use_the_one_redaction():
    from airflow_mlops.core import alerts, redaction

    assert alerts.redact is redaction.redact
    html = alerts.Alert(event="run_failed", pipeline="churn", summary="s", meaning="m",
                        details=[f'{{"AIRFLOW__API_AUTH__JWT_SECRET": "{JWT_SECRET}"}}']).html()  # fmt: skip
    assert JWT_SECRET not in html


def test_bad_input_errors_reach_the_task_log_redacted_and_masked(monkeypatch):
    from airflow.sdk._shared.secrets_masker import redact as airflow_redact
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops.operators.base import fail_on_bad_input

    with pytest.raises(AirflowFailException) as info, fail_on_bad_input():
        raise DataSourceError(f"x.csv: bad value AIRFLOW_ADMIN_PASSWORD={ADMIN_PASSWORD}")
    assert ADMIN_PASSWORD not in str(info.value) and "x.csv: bad value AIRFLOW_ADMIN_PASSWORD=***" in str(info.value)
    assert ADMIN_PASSWORD not in str(airflow_redact(f"elsewhere in the log: {ADMIN_PASSWORD}"))
