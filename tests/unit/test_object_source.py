"""Object-storage sources (`source.path: s3://CONN_ID@bucket/prefix/`) against a real S3 API on loopback.

moto's standalone server runs as a subprocess (tests/s3_server.py) with its IAM checks on: requests must be signed
with an access key it issued (the `s3_data` connection's), so a wrong secret or an unknown key is refused as S3
refuses it. The files are read through the snapshot task's filesystem (hooks.objects: Airflow's ObjectStoragePath,
the amazon provider's s3fs, the credentials of the Airflow connection named in the URI).

Bad inputs, each a test: a URI outside the allowed prefixes (refused before the connection is even looked up), a
bucket that does not exist, credentials refused, a connection that does not exist, no file in the window, an
object too large (refused before it is downloaded), a store that cannot be reached (retried, not failed). Every
error names the URI and the connection and says what to do; none holds the connection's secret.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from pathlib import Path

import pytest
from conftest import ROOT, churn_stream

sys.path.insert(0, str(ROOT / "tests"))
from s3_server import S3Server, free_port  # noqa: E402  (free_port: nothing listens there)

from airflow_mlops.core.data import take_snapshot  # noqa: E402
from airflow_mlops.core.data.objects import ObjectStoreUnavailableError  # noqa: E402
from airflow_mlops.core.errors import ConfigError, DataSourceError  # noqa: E402
from airflow_mlops.core.paths import ObjectURI, confine_uri, object_prefixes, parse_object_uri  # noqa: E402
from airflow_mlops.hooks.objects import object_filesystem  # noqa: E402

BUCKET = "churn-data"
WINDOW_END = dt.date(2026, 1, 28)
WRONG_SECRET = "wr0ng-Secret-Qz7Lp2Xv9"
CONNS = ("s3_data", "s3_wrong_secret", "s3_unknown_key", "s3_down")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto_server with IAM checks on, a bucket of daily churn files (CSV under daily/, Parquet under parquet/),
    and Airflow connections: s3_data (a key moto issued), s3_wrong_secret, s3_unknown_key, s3_down (no server)."""
    base = tmp_path_factory.mktemp("s3-source")
    server = S3Server.start(base)
    try:
        keys = server.user_keys()
        local = base / "churn"
        churn_stream.write_stream(local, dt.date(2026, 1, 1), 28, rows=150)
        server.upload_folder(local, BUCKET, "daily/", **keys)
        parquet = base / "parquet"
        parquet.mkdir()
        import pandas as pd

        for csv in sorted(local.glob("*.csv"))[-7:]:
            pd.read_csv(csv).to_parquet(parquet / csv.with_suffix(".parquet").name, index=False)
        server.upload_folder(parquet, BUCKET, "parquet/", **keys)
        server.enforce_auth()
        key_id, secret = keys["aws_access_key_id"], keys["aws_secret_access_key"]
        once = {"retries": {"max_attempts": 1}, "connect_timeout": 2}  # the test need not wait for botocore's retries
        conns = {
            "s3_data": server.connection(key_id, secret),
            "s3_wrong_secret": server.connection(key_id, WRONG_SECRET),
            "s3_unknown_key": server.connection("AKIAUNKNOWNKEY000000", WRONG_SECRET),
            "s3_down": server.connection(
                key_id, secret, endpoint=f"http://127.0.0.1:{free_port()}", config_kwargs=once
            ),
        }
        with pytest.MonkeyPatch.context() as mp:
            for conn_id, value in conns.items():
                mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
            mp.setenv("AIRFLOW_MLOPS_DATA_ROOTS", f"{base}{os.pathsep}s3://s3_data@{BUCKET}/daily")
            yield {"server": server, "keys": keys, "secret": secret, "local": local, "base": base}
    finally:
        server.stop()


@pytest.fixture
def config(churn_config):
    """churn's config with allowed URI prefixes for the bucket (each connection's own)."""
    prefixes = tuple(f"s3://{conn}@{BUCKET}/daily" for conn in CONNS) + (f"s3://s3_data@{BUCKET}/parquet",)
    return churn_config._replace(source=churn_config.source._replace(allowed_roots=("data", *prefixes)))


def snapshot(config, source: str, tmp_path: Path, **kwargs):
    return take_snapshot(
        config,
        source=source,
        window_end=kwargs.pop("window_end", WINDOW_END),
        snapshot_root=tmp_path / "snapshots",
        open_store=kwargs.pop("open_store", object_filesystem),
        **kwargs,
    )


def refused(config, source: str, tmp_path: Path, s3, error=DataSourceError, **kwargs) -> str:
    with pytest.raises(error) as info:
        snapshot(config, source, tmp_path, **kwargs)
    message = str(info.value)
    assert not (tmp_path / "snapshots").exists(), message  # nothing written
    assert s3["secret"] not in message and WRONG_SECRET not in message, message
    return message


# --------------------------------------------------------------------------- reading


def test_a_bucket_prefix_snapshots_the_window_exactly_as_the_same_local_files(s3, config, tmp_path):
    got = snapshot(config, f"s3://s3_data@{BUCKET}/daily/", tmp_path)
    local = take_snapshot(config, source=str(s3["local"]), window_end=WINDOW_END, snapshot_root=tmp_path / "local")

    assert got["digest"] == local["digest"] and got["rows"] == local["rows"] == 28 * 150
    assert got["files"] == 28 and got["source"] == f"s3://{BUCKET}/daily/ (Airflow connection 's3_data')"
    assert Path(got["uri"]).is_file()


def test_the_window_selects_the_daily_objects_by_the_date_in_their_names(s3, config, tmp_path):
    week = config._replace(source=config.source._replace(window_days=7))
    got = snapshot(week, f"s3://s3_data@{BUCKET}/daily/", tmp_path, window_end=dt.date(2026, 1, 10))

    assert got["files"] == 7 and got["window_start"] == "2026-01-04" and got["rows"] == 7 * 150


def test_parquet_objects_and_a_single_object(s3, config, tmp_path):
    parquet = config._replace(source=config.source._replace(format="parquet", window_days=7))
    folder = snapshot(parquet, f"s3://s3_data@{BUCKET}/parquet/", tmp_path)
    one = snapshot(config, f"s3://s3_data@{BUCKET}/daily/churn_2026-01-28.csv", tmp_path / "one")

    assert folder["files"] == 7 and folder["rows"] == 7 * 150
    assert one["files"] == 1 and one["rows"] == 150


def test_a_file_uri_is_a_local_path_under_the_same_rules(s3, config, tmp_path):
    got = snapshot(config, s3["local"].as_uri(), tmp_path)
    assert got["files"] == 28

    secrets = Path(os.environ["AIRFLOW_MLOPS_HOME"]) / "x.csv"
    message = refused(config, secrets.as_uri(), tmp_path / "refused", s3)
    assert "state folder" in message or "outside the allowed folders" in message


# --------------------------------------------------------------------------- bad inputs


def test_a_uri_outside_the_allowed_prefixes_is_refused_before_the_connection_is_looked_up(s3, config, tmp_path):
    asked: list[ObjectURI] = []

    def recording(uri):
        asked.append(uri)
        return object_filesystem(uri)

    for source in (
        f"s3://s3_data@{BUCKET}/secret/",  # another prefix of the same bucket
        f"s3://s3_data@{BUCKET}/daily-copy/",  # a longer name is not inside daily/
        "s3://s3_data@other-bucket/daily/",  # another bucket
        f"s3://admin@{BUCKET}/daily/",  # another connection's credentials
        f"s3a://s3_data@{BUCKET}/daily/",  # another scheme
    ):
        message = refused(config, source, tmp_path, s3, open_store=recording)
        assert "outside the allowed URI prefixes" in message and "source.allowed_roots" in message, message
        assert "AIRFLOW_MLOPS_DATA_ROOTS" in message
    assert asked == []


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (f"s3://s3_data@{BUCKET}/daily/../secret/", "'..'"),
        (f"s3://s3_data@{BUCKET}/daily/./x/", "'..'"),
        (f"s3://s3_data@{BUCKET}/daily//x/", "empty"),
        (f"s3://s3_data@{BUCKET}/daily/%2e%2e/secret/", "'%'-escapes"),
        (f"s3://s3_data@{BUCKET}/daily/?prefix=secret", "'?'"),
        (f"s3://s3_data@{BUCKET}/daily/#x", "'#'"),
        (f"S3://s3_data@{BUCKET}/daily/", "lower case"),
        ("local:///etc/", "reads the local disk"),
        (f"s3://{BUCKET}/daily/", "name the Airflow connection"),
        ("s3://s3_data@Not_A_Bucket/daily/", "not a bucket name"),
    ],
)
def test_uri_tricks_are_refused_before_anything_is_read(s3, config, tmp_path, source, reason):
    message = refused(config, source, tmp_path, s3, open_store=lambda uri: pytest.fail(f"opened {uri}"))
    assert reason in message, message


def test_a_password_in_the_uri_is_refused_without_being_quoted(s3, config, tmp_path):
    message = refused(config, f"s3://s3_data:{WRONG_SECRET}@{BUCKET}/daily/", tmp_path, s3)
    assert "a password in the URI is refused" in message


def test_a_bucket_that_does_not_exist(s3, config, tmp_path):
    wide = config._replace(source=config.source._replace(allowed_roots=("s3://s3_data@no-such-bucket",)))
    message = refused(wide, "s3://s3_data@no-such-bucket/daily/", tmp_path, s3)
    assert "s3://no-such-bucket/daily/ (Airflow connection 's3_data')" in message
    assert "bucket 'no-such-bucket' does not exist (NoSuchBucket)" in message and "check the bucket" in message


@pytest.mark.parametrize(
    ("conn_id", "code"), [("s3_wrong_secret", "SignatureDoesNotMatch"), ("s3_unknown_key", "InvalidAccessKeyId")]
)
def test_credentials_refused(s3, config, tmp_path, caplog, conn_id, code):
    caplog.set_level(logging.DEBUG)
    message = refused(config, f"s3://{conn_id}@{BUCKET}/daily/", tmp_path, s3)
    assert f"the store refused the credentials of Airflow connection {conn_id!r} ({code})" in message
    assert "check the connection's access key and secret" in message
    assert s3["secret"] not in caplog.text and WRONG_SECRET not in caplog.text


def test_a_connection_that_does_not_exist_is_named_and_no_other_credentials_are_tried(s3, config, tmp_path):
    wide = config._replace(source=config.source._replace(allowed_roots=(f"s3://nobody@{BUCKET}",)))
    message = refused(wide, f"s3://nobody@{BUCKET}/daily/", tmp_path, s3)
    assert "Airflow connection 'nobody' does not exist" in message and "AIRFLOW_CONN_NOBODY" in message


def test_no_file_in_the_window(s3, config, tmp_path):
    message = refused(config, f"s3://s3_data@{BUCKET}/daily/", tmp_path, s3, window_end=dt.date(2025, 6, 30))
    assert "no .csv files in the window 2025-06-03..2025-06-30 (found 28 file(s) from 2026-01-01 to 2026-01-28)" in (
        message
    )
    assert f"s3://{BUCKET}/daily/ (Airflow connection 's3_data')" in message


def test_a_prefix_with_no_objects_of_the_format(s3, config, tmp_path):
    parquet = config._replace(source=config.source._replace(format="parquet"))
    message = refused(parquet, f"s3://s3_data@{BUCKET}/daily/", tmp_path, s3)
    assert "no .parquet objects under this prefix" in message and "source.format" in message


def test_an_object_larger_than_max_file_mb_is_refused_before_it_is_downloaded(s3, config, tmp_path):
    small = config._replace(source=config.source._replace(max_file_mb=0.001))
    before = s3["server"].log.read_text()
    message = refused(small, f"s3://s3_data@{BUCKET}/daily/", tmp_path, s3)
    assert "object is too large" in message and "source.max_file_mb" in message and "nothing was downloaded" in message
    requests = s3["server"].log.read_text()[len(before) :]
    assert "GET /churn-data/daily/churn_" not in requests and "GET /churn-data?list-type=2" in requests, requests


def test_an_object_that_is_not_data_is_refused_without_quoting_it(s3, config, tmp_path):
    s3client = s3["server"].client(**s3["keys"])
    s3client.put_object(Bucket=BUCKET, Key="odd/churn_2026-01-28.csv", Body=b"AIRFLOW_ADMIN_PASSWORD=hunter2-xyz\n")
    s3client.put_object(Bucket=BUCKET, Key="odd/notes.env", Body=b"TOKEN=abc")
    wide = config._replace(source=config.source._replace(allowed_roots=(f"s3://s3_data@{BUCKET}/odd",)))

    message = refused(wide, f"s3://s3_data@{BUCKET}/odd/", tmp_path, s3)
    assert "not a CSV data file" in message and "hunter2" not in message and "AIRFLOW_ADMIN" not in message
    message = refused(wide, f"s3://s3_data@{BUCKET}/odd/notes.env", tmp_path, s3)
    assert "not a CSV/Parquet data file" in message and "TOKEN" not in message


def test_a_store_that_cannot_be_reached_is_retried_not_failed(s3, config, tmp_path):
    with pytest.raises(ObjectStoreUnavailableError) as info:
        snapshot(config, f"s3://s3_down@{BUCKET}/daily/", tmp_path)
    message = str(info.value)
    assert not isinstance(info.value, DataSourceError)
    assert "cannot be reached through connection 's3_down'" in message and "EndpointConnectionError" in message
    assert s3["secret"] not in message


def test_without_the_snapshot_tasks_filesystem_core_says_where_to_read_it(s3, config, tmp_path):
    message = refused(config, f"s3://s3_data@{BUCKET}/daily/", tmp_path, s3, open_store=None)
    assert "read through its Airflow connection" in message


# --------------------------------------------------------------------------- URIs and prefixes (no server)


def test_prefixes_match_whole_segments_of_the_same_store():
    prefix = parse_object_uri("s3://c@b1b/a/b")
    assert parse_object_uri("s3://c@b1b/a/b/").within(prefix)
    assert parse_object_uri("s3://c@b1b/a/b/x/y.csv").within(prefix)
    assert not parse_object_uri("s3://c@b1b/a/bc/").within(prefix)
    assert not parse_object_uri("s3://c@b1b/a/").within(prefix)
    assert not parse_object_uri("s3://d@b1b/a/b/").within(prefix)
    assert parse_object_uri("s3://c@b1b/anything").within(parse_object_uri("s3://c@b1b"))  # the whole bucket
    assert str(confine_uri("s3://c@b1b/a/b/", [prefix])) == "s3://b1b/a/b/ (Airflow connection 'c')"


def test_data_roots_env_holds_folders_and_uri_prefixes(monkeypatch, churn_config):
    from airflow_mlops import settings

    monkeypatch.setenv("AIRFLOW_MLOPS_DATA_ROOTS", os.pathsep.join(["/srv/a", "s3://c@b1b/x", "file:///srv/b", ""]))
    assert settings.data_root_entries() == ["/srv/a", "s3://c@b1b/x", "file:///srv/b"]
    assert settings.data_roots_from_env() == [Path("/srv/a")]
    from airflow_mlops.core.paths import source_roots

    assert Path("/srv/a") in source_roots(churn_config) and Path("/srv/b") in source_roots(churn_config)
    assert [p.uri for p in object_prefixes(churn_config)] == ["s3://c@b1b/x"]


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"path": "s3://bucket-x/daily/"}, "source.path", "name the Airflow connection"),
        ({"path": "s3://c@b1b/daily/../x/"}, "source.path", "'..'"),
        ({"path": "file://otherhost/srv/x"}, "source.path", "not a local file URI"),
        ({"allowed_roots": ["data", "s3://c@B/x"]}, "source.allowed_roots", "not a bucket name"),
    ],
)
def test_a_bad_uri_in_the_config_is_a_config_error_naming_the_key(change, key, message):
    import yaml

    from airflow_mlops.core.config import parse_config

    raw = yaml.safe_load((ROOT / "include" / "pipelines" / "churn.yaml").read_text())
    raw["source"].update(change)
    with pytest.raises(
        ConfigError, match="churn.yaml: " + key.replace(".", r"\.") + ": .*" + message.replace(".", r"\.")
    ):
        parse_config(raw, file="churn.yaml", check_estimators=False)


def test_a_good_uri_in_the_config_parses():
    import yaml

    from airflow_mlops.core.config import parse_config

    raw = yaml.safe_load((ROOT / "include" / "pipelines" / "churn.yaml").read_text())
    raw["source"].update(
        path="s3://churn_s3@churn-data/daily/", allowed_roots=["data", "s3://churn_s3@churn-data/daily"]
    )
    config = parse_config(raw, file="churn.yaml", check_estimators=False)
    assert config.source.path == "s3://churn_s3@churn-data/daily/"
