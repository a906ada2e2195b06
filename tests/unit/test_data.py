"""core.data: snapshots of real CSV/Parquet files, digests, windows, splits and every bad input."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import churn_stream

from airflow_mlops.core.data import content_digest, read_snapshot, take_snapshot
from airflow_mlops.core.errors import DataSourceError

END = dt.date(2026, 1, 28)  # churn_dir holds 2026-01-01 .. 2026-01-28, 200 rows a day
ROWS = 200


@pytest.fixture
def snap_root(tmp_path) -> Path:
    return tmp_path / "snapshots"


def snap(config, source, snap_root, **kwargs) -> dict:
    return take_snapshot(config, source=str(source), snapshot_root=snap_root, **kwargs)


def with_source(config, **changes):
    return config._replace(source=config.source._replace(**changes))


def churn_csv_text(rows: int = 5, day: dt.date = dt.date(2026, 1, 3)) -> str:
    return churn_stream.daily_batch(day, rows=rows).to_csv(index=False)


# --------------------------------------------------------------------------- snapshots


def test_snapshot_of_daily_folder(churn_config, churn_dir, snap_root):
    result = snap(churn_config, churn_dir, snap_root, window_end=END)

    assert result["rows"] == 28 * ROWS and result["files"] == 28
    assert result["window_start"] == "2026-01-01" and result["window_end"] == "2026-01-28"
    assert result["source"] == str(churn_dir.resolve())
    assert result["digest"].startswith("sha256:") and len(result["digest"]) == len("sha256:") + 64
    uri = Path(result["uri"])
    assert uri == snap_root / "churn" / f"{result['digest'][7:]}.parquet" and uri.is_file()
    frame = read_snapshot(uri)
    assert len(frame) == result["rows"] and list(frame.columns) == result["columns"]
    assert "customer_id" in result["columns"]  # all source columns are kept, not only the configured ones
    assert content_digest(frame) == result["digest"]  # the digest describes the file's content
    assert sorted(frame["event_date"].unique())[0] == "2026-01-01"
    assert list(uri.parent.iterdir()) == [uri]  # no temp file left behind


def test_snapshot_result_is_json_able(churn_config, churn_dir, snap_root):
    import json

    result = snap(churn_config, churn_dir, snap_root, window_end=END)
    assert json.loads(json.dumps(result)) == result


def test_rerun_is_idempotent_and_does_not_rewrite(churn_config, churn_dir, snap_root):
    first = snap(churn_config, churn_dir, snap_root, window_end=END)
    before = os.stat(first["uri"]).st_mtime_ns
    second = snap(churn_config, churn_dir, snap_root, window_end=END)

    assert second == first
    assert os.stat(second["uri"]).st_mtime_ns == before
    assert len(list((snap_root / "churn").iterdir())) == 1


def test_identical_content_elsewhere_has_same_digest(churn_config, churn_dir, snap_root, tmp_path):
    copy = shutil.copytree(churn_dir, tmp_path / "copy")
    a = snap(churn_config, churn_dir, snap_root, window_end=END)
    b = snap(churn_config, copy, snap_root, window_end=END)
    assert a["digest"] == b["digest"] and a["uri"] == b["uri"]


def test_different_content_has_different_digest(churn_config, churn_dir, snap_root):
    a = snap(churn_config, churn_dir, snap_root, window_end=END)
    day = churn_dir / "churn_2026-01-15.csv"
    frame = pd.read_csv(day)
    frame.loc[3, "support_calls"] += 1
    frame.to_csv(day, index=False)
    b = snap(churn_config, churn_dir, snap_root, window_end=END)

    assert a["digest"] != b["digest"] and a["uri"] != b["uri"]
    assert Path(a["uri"]).is_file() and Path(b["uri"]).is_file()  # the old snapshot is untouched


def test_content_digest_covers_names_dtypes_values_and_order():
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert content_digest(df) == content_digest(df.copy())
    assert content_digest(df) != content_digest(df.rename(columns={"a": "c"}))
    assert content_digest(df) != content_digest(df.astype({"a": "float64"}))
    assert content_digest(df) != content_digest(df.iloc[::-1].reset_index(drop=True))
    assert content_digest(df) != content_digest(df[["b", "a"]])
    assert content_digest(df) == content_digest(df.set_index(pd.Index([7, 8, 9])))  # the index is not content


def test_default_snapshot_root_is_the_mlops_home(churn_config, churn_dir, mlops_home):
    result = take_snapshot(churn_config, source=str(churn_dir), window_end=END)
    assert Path(result["uri"]).parent == mlops_home / "snapshots" / "churn"


def test_config_source_path_is_relative_to_the_project_root(churn_config, churn_dir, snap_root, tmp_path):
    # churn.yaml says path: data/churn; churn_dir is <tmp>/data/churn
    config = churn_config._replace(path=str(tmp_path / "include" / "pipelines" / "churn.yaml"))
    result = take_snapshot(config, window_end=END, snapshot_root=snap_root)
    assert result["source"] == str(churn_dir.resolve()) and result["files"] == 28


# --------------------------------------------------------------------------- windows


def test_window_reads_only_the_files_inside_it(churn_config, churn_dir, snap_root):
    config = with_source(churn_config, window_days=7)
    result = snap(config, churn_dir, snap_root, window_end=dt.date(2026, 1, 20))

    assert result["files"] == 7 and result["rows"] == 7 * ROWS
    assert result["window_start"] == "2026-01-14" and result["window_end"] == "2026-01-20"
    days = read_snapshot(result["uri"])["event_date"]
    assert days.min() == "2026-01-14" and days.max() == "2026-01-20"


def test_window_end_before_the_last_file(churn_config, churn_dir, snap_root):
    result = snap(churn_config, churn_dir, snap_root, window_end=dt.date(2026, 1, 10))
    assert result["files"] == 10 and result["rows"] == 10 * ROWS
    assert result["window_start"] == "2025-12-14"


def test_window_rows_are_filtered_by_the_date_column(churn_config, tmp_path, snap_root):
    """A single file with many days: the window is cut from its rows (window_days=3 -> 3 days)."""
    frame = pd.concat([churn_stream.daily_batch(dt.date(2026, 1, d), rows=20) for d in range(1, 11)])
    source = tmp_path / "all.csv"
    frame.to_csv(source, index=False)
    result = snap(with_source(churn_config, window_days=3), source, snap_root, window_end=dt.date(2026, 1, 6))

    assert result["files"] == 1 and result["rows"] == 3 * 20
    got = read_snapshot(result["uri"])
    assert sorted(got["event_date"].unique()) == ["2026-01-04", "2026-01-05", "2026-01-06"]
    assert got.index.tolist() == list(range(60))


def test_window_filters_undated_rows_even_inside_dated_files(churn_config, churn_dir, snap_root):
    """A daily file holding a stray late row: the row is dropped by its date, not kept by its file name."""
    day = churn_dir / "churn_2026-01-28.csv"
    frame = pd.read_csv(day)
    frame.loc[0, "event_date"] = "2026-02-01"
    frame.to_csv(day, index=False)
    result = snap(churn_config, churn_dir, snap_root, window_end=END)
    assert result["rows"] == 28 * ROWS - 1


def test_no_window_end_reads_everything(churn_config, churn_dir, snap_root):
    result = snap(churn_config, churn_dir, snap_root)
    assert result["files"] == 28 and result["rows"] == 28 * ROWS
    assert result["window_start"] is None and result["window_end"] is None


def test_parquet_source(churn_config, churn_frame, tmp_path, snap_root):
    source = tmp_path / "churn.parquet"
    churn_frame.to_parquet(source, index=False)
    result = snap(with_source(churn_config, format="parquet"), source, snap_root, window_end=dt.date(2026, 1, 10))
    assert result["rows"] == len(churn_frame) and result["files"] == 1
    pd.testing.assert_frame_equal(read_snapshot(result["uri"]), churn_frame, check_dtype=False)


def test_parquet_folder(churn_config, tmp_path, snap_root):
    folder = tmp_path / "pq"
    folder.mkdir()
    for d in range(1, 6):
        day = dt.date(2026, 1, d)
        churn_stream.daily_batch(day, rows=10).to_parquet(folder / f"churn_{day}.parquet", index=False)
    (folder / "notes.csv").write_text("ignored\n")  # other formats are not read
    result = snap(with_source(churn_config, format="parquet"), folder, snap_root, window_end=dt.date(2026, 1, 4))
    assert result["files"] == 4 and result["rows"] == 40


def test_utf8_bom_is_stripped(churn_config, tmp_path, snap_root):
    source = tmp_path / "bom.csv"
    source.write_bytes(b"\xef\xbb\xbf" + churn_csv_text().encode())
    result = snap(churn_config, source, snap_root)
    assert result["columns"][0] == "customer_id"


def test_types_are_not_coerced(churn_config, tmp_path, snap_root):
    """A bad batch (strings in a numeric column) is snapshotted as it is: validation rejects it later."""
    source = tmp_path / "bad.csv"
    churn_stream.daily_batch(dt.date(2026, 1, 3), rows=50, bad=True).to_csv(source, index=False)
    frame = read_snapshot(snap(churn_config, source, snap_root)["uri"])
    assert "unknown" in set(frame["tenure_months"].dropna())


def test_bad_day_in_a_folder_still_snapshots(churn_config, tmp_path, snap_root):
    folder = tmp_path / "stream"
    churn_stream.write_stream(folder, dt.date(2026, 1, 1), 5, rows=30, bad_days=(dt.date(2026, 1, 3),))
    result = snap(churn_config, folder, snap_root, window_end=dt.date(2026, 1, 5))
    assert result["rows"] == 150
    assert "unknown" in set(read_snapshot(result["uri"])["tenure_months"].dropna())


# --------------------------------------------------------------------------- bad input


def raises(config, source, snap_root, *words, **kwargs) -> str:
    """Assert a DataSourceError whose message names the file and says each word; return the message."""
    with pytest.raises(DataSourceError) as info:
        snap(config, source, snap_root, **kwargs)
    message = str(info.value)
    assert Path(source).name in message, message
    for word in words:
        assert word in message, message
    return message


def test_missing_file(churn_config, tmp_path, snap_root):
    raises(churn_config, tmp_path / "nope.csv", snap_root, "not found")


def test_missing_folder(churn_config, tmp_path, snap_root):
    raises(churn_config, tmp_path / "no_such_folder", snap_root, "not found")


def test_missing_source_points_at_this_pipelines_config_not_the_churn_generator(tmp_path, snap_root):
    """Every pipeline was told to generate churn sample data; it is told which config names the source."""
    from conftest import ROOT

    from airflow_mlops.core.config import load_config

    config = load_config(ROOT / "include" / "pipelines" / "diabetes.yaml", check_estimators=False)
    message = raises(config, tmp_path / "no_such_folder", snap_root, "source not found", "diabetes.yaml")

    assert "churn" not in message


def test_folder_without_files_of_the_format(churn_config, tmp_path, snap_root):
    folder = tmp_path / "empty_folder"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    raises(churn_config, folder, snap_root, "no .csv files")


def test_folder_with_no_files_in_the_window(churn_config, churn_dir, snap_root):
    message = raises(churn_config, churn_dir, snap_root, "no .csv files in the window", window_end=dt.date(2025, 6, 1))
    assert "2026-01-01" in message and "2026-01-28" in message  # says what the folder does hold


def test_window_with_no_rows(churn_config, tmp_path, snap_root):
    source = tmp_path / "one_day.csv"
    source.write_text(churn_csv_text(day=dt.date(2026, 1, 3)))
    raises(churn_config, source, snap_root, "no rows", window_end=dt.date(2026, 1, 2))


def test_empty_file(churn_config, tmp_path, snap_root):
    source = tmp_path / "empty.csv"
    source.write_bytes(b"")
    raises(churn_config, source, snap_root, "empty")


def test_whitespace_only_file(churn_config, tmp_path, snap_root):
    source = tmp_path / "blank.csv"
    source.write_text("\n\n  \n")
    raises(churn_config, source, snap_root, "empty")


def test_header_only(churn_config, tmp_path, snap_root):
    source = tmp_path / "header.csv"
    source.write_text(churn_csv_text().splitlines()[0] + "\n")
    raises(churn_config, source, snap_root, "zero data rows")


def test_empty_daily_file_in_a_folder_is_named(churn_config, churn_dir, snap_root):
    (churn_dir / "churn_2026-01-12.csv").write_bytes(b"")
    with pytest.raises(DataSourceError, match=r"churn_2026-01-12\.csv: file is empty"):
        snap(churn_config, churn_dir, snap_root, window_end=END)


def test_binary_garbage(churn_config, tmp_path, snap_root):
    source = tmp_path / "garbage.csv"
    source.write_bytes(bytes(range(256)) * 8)
    raises(churn_config, source, snap_root, "corrupted CSV")


def test_not_utf8(churn_config, tmp_path, snap_root):
    source = tmp_path / "latin1.csv"
    source.write_bytes(churn_csv_text().replace("customer_id", "kündennummer").encode("latin-1"))
    raises(churn_config, source, snap_root, "corrupted CSV", "UTF-8")


def test_unparseable_csv(churn_config, tmp_path, snap_root):
    lines = churn_csv_text().splitlines()
    lines[2] = lines[2].replace("month-to-month", '"month-to-month')  # a quote that never closes
    source = tmp_path / "unclosed.csv"
    source.write_text("\n".join(lines) + "\n")
    raises(churn_config, source, snap_root, "corrupted CSV", "line 3", "quote")


def test_stray_quote(churn_config, tmp_path, snap_root):
    lines = churn_csv_text().splitlines()
    lines[4] = lines[4].replace(",one-year,", ',"one"-year,').replace(",month-to-month,", ',"month"-to-month,')
    lines[4] = lines[4].replace(",two-year,", ',"two"-year,')
    source = tmp_path / "stray.csv"
    source.write_text("\n".join(lines) + "\n")
    raises(churn_config, source, snap_root, "corrupted CSV", "line 5")


def test_quoted_multiline_field_is_one_row(churn_config, tmp_path, snap_root):
    frame = churn_stream.daily_batch(dt.date(2026, 1, 3), rows=5)
    frame.loc[2, "customer_id"] = "C1,\nsecond line"
    source = tmp_path / "multiline.csv"
    frame.to_csv(source, index=False)
    result = snap(churn_config, source, snap_root)
    assert result["rows"] == 5
    assert read_snapshot(result["uri"])["customer_id"][2] == "C1,\nsecond line"


def test_rows_with_missing_fields(churn_config, tmp_path, snap_root):
    lines = churn_csv_text(rows=8).splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]  # line 4 lacks the label
    lines[6] = lines[6].rsplit(",", 2)[0]  # line 7 lacks two fields
    source = tmp_path / "short.csv"
    source.write_text("\n".join(lines) + "\n")
    message = raises(churn_config, source, snap_root, "2 row(s) with missing or extra fields", "line 4", "line 7")
    assert "missing fields" in message


def test_rows_with_extra_fields(churn_config, tmp_path, snap_root):
    lines = churn_csv_text(rows=8).splitlines()
    lines[5] += ",surprise"
    source = tmp_path / "long.csv"
    source.write_text("\n".join(lines) + "\n")
    raises(churn_config, source, snap_root, "line 6 has 11 (extra fields)")


def test_many_ragged_rows_are_summarised(churn_config, tmp_path, snap_root):
    lines = churn_csv_text(rows=20).splitlines()
    lines[1:] = [line + ",x" for line in lines[1:]]
    source = tmp_path / "wide.csv"
    source.write_text("\n".join(lines) + "\n")
    message = raises(churn_config, source, snap_root, "20 row(s)", "line 2", "and 15 more")
    assert "line 7 " not in message


def test_duplicated_header_names(churn_config, tmp_path, snap_root):
    lines = churn_csv_text().splitlines()
    lines[0] = lines[0].replace("region", "contract")
    source = tmp_path / "dupes.csv"
    source.write_text("\n".join(lines) + "\n")
    raises(churn_config, source, snap_root, "duplicated column name", "'contract'")


def test_missing_required_columns(churn_config, tmp_path, snap_root):
    frame = churn_stream.daily_batch(dt.date(2026, 1, 3), rows=5).drop(columns=["churned", "region"])
    source = tmp_path / "narrow.csv"
    frame.to_csv(source, index=False)
    raises(churn_config, source, snap_root, "missing required column", "'churned'", "'region'")


def test_missing_date_column(churn_config, tmp_path, snap_root):
    frame = churn_stream.daily_batch(dt.date(2026, 1, 3), rows=5).drop(columns=["event_date"])
    source = tmp_path / "undated.csv"
    frame.to_csv(source, index=False)
    raises(churn_config, source, snap_root, "missing required column", "'event_date'")


def test_unreadable_dates(churn_config, tmp_path, snap_root):
    frame = churn_stream.daily_batch(dt.date(2026, 1, 3), rows=5)
    frame.loc[1, "event_date"] = "yesterday"
    source = tmp_path / "dates.csv"
    frame.to_csv(source, index=False)
    raises(churn_config, source, snap_root, "'event_date'", "'yesterday'", window_end=dt.date(2026, 1, 3))


def test_daily_files_with_different_columns(churn_config, churn_dir, snap_root):
    day = churn_dir / "churn_2026-01-20.csv"
    pd.read_csv(day).assign(promo="none").to_csv(day, index=False)
    with pytest.raises(DataSourceError, match=r"churn_2026-01-20\.csv: columns differ .*extra: 'promo'"):
        snap(churn_config, churn_dir, snap_root, window_end=END)


def test_file_too_large(churn_config, tmp_path, snap_root):
    source = tmp_path / "big.csv"
    source.write_text(churn_csv_text(rows=400))
    raises(with_source(churn_config, max_file_mb=0.01), source, snap_root, "too large", "max_file_mb")


def test_corrupted_parquet(churn_config, tmp_path, snap_root):
    source = tmp_path / "broken.parquet"
    good = tmp_path / "good.parquet"
    churn_stream.daily_batch(dt.date(2026, 1, 3), rows=50).to_parquet(good, index=False)
    source.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated
    raises(with_source(churn_config, format="parquet"), source, snap_root, "corrupted Parquet")


def test_csv_bytes_named_parquet(churn_config, tmp_path, snap_root):
    source = tmp_path / "fake.parquet"
    source.write_text(churn_csv_text())
    raises(with_source(churn_config, format="parquet"), source, snap_root, "corrupted Parquet")


def test_parquet_with_zero_rows(churn_config, tmp_path, snap_root):
    source = tmp_path / "none.parquet"
    churn_stream.daily_batch(dt.date(2026, 1, 3), rows=5).iloc[:0].to_parquet(source, index=False)
    raises(with_source(churn_config, format="parquet"), source, snap_root, "zero rows")


def test_path_outside_allowed_roots(churn_config, churn_dir, tmp_path, snap_root):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    raises(churn_config, churn_dir, snap_root, "outside the allowed folders", allowed_roots=[allowed])


def test_path_traversal_is_refused(churn_config, churn_dir, tmp_path, snap_root):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    sneaky = allowed / ".." / "data" / "churn"
    raises(churn_config, sneaky, snap_root, "outside the allowed folders", allowed_roots=[allowed])


def test_symlink_escaping_the_allowed_root_is_refused(churn_config, churn_dir, tmp_path, snap_root):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    link = allowed / "churn"
    link.symlink_to(churn_dir, target_is_directory=True)
    raises(churn_config, link, snap_root, "outside the allowed folders", allowed_roots=[allowed])


def test_symlinked_file_inside_an_allowed_folder_is_refused(churn_config, churn_dir, tmp_path, snap_root):
    allowed = tmp_path / "allowed"
    folder = allowed / "churn"
    folder.mkdir(parents=True)
    secret = tmp_path / "secret_2026-01-05.csv"
    secret.write_text(churn_csv_text())
    (folder / "churn_2026-01-05.csv").symlink_to(secret)
    with pytest.raises(
        DataSourceError,
        match=r"churn_2026-01-05\.csv: source path is outside the allowed folders.*secret_2026-01-05\.csv",
    ):
        snap(churn_config, folder, snap_root, window_end=dt.date(2026, 1, 5), allowed_roots=[allowed])


def test_path_inside_allowed_roots_is_read(churn_config, churn_dir, tmp_path, snap_root):
    result = snap(churn_config, churn_dir, snap_root, window_end=END, allowed_roots=[tmp_path / "data"])
    assert result["files"] == 28


def test_default_roots_are_the_project_data_folder_and_the_env_never_the_home(churn_config, monkeypatch, tmp_path):
    from airflow_mlops.core.paths import source_roots

    monkeypatch.setenv("AIRFLOW_MLOPS_HOME", str(tmp_path / "home"))  # the state folder: never a source root
    monkeypatch.setenv("AIRFLOW_MLOPS_DATA_ROOTS", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")]))
    project = Path(churn_config.path).resolve().parents[2]
    assert source_roots(churn_config) == [project / "data", tmp_path / "a", tmp_path / "b"]


def test_default_roots_confine_the_source(churn_config, churn_dir, tmp_path, snap_root, monkeypatch):
    """Without allowed_roots, a path outside the config's roots and AIRFLOW_MLOPS_DATA_ROOTS is refused."""
    monkeypatch.setenv("AIRFLOW_MLOPS_DATA_ROOTS", str(tmp_path / "elsewhere"))
    message = raises(churn_config, churn_dir, snap_root, "outside the allowed folders", "AIRFLOW_MLOPS_DATA_ROOTS")
    assert not snap_root.exists(), message  # nothing read, nothing written
    raises(churn_config, "data/../include/pipelines/churn.yaml", snap_root, "outside the allowed folders")
    monkeypatch.setenv("AIRFLOW_MLOPS_DATA_ROOTS", str(tmp_path / "data"))
    assert snap(churn_config, churn_dir, snap_root, window_end=END)["files"] == 28


def test_a_root_in_the_config_allows_its_folder(churn_config, churn_dir, tmp_path, snap_root, monkeypatch):
    monkeypatch.delenv("AIRFLOW_MLOPS_DATA_ROOTS")
    config = with_source(churn_config, allowed_roots=(str(tmp_path / "data"),))
    assert snap(config, churn_dir, snap_root, window_end=END)["files"] == 28


def test_symlink_loop_is_named_a_loop(churn_config, tmp_path, snap_root):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.symlink_to(b)
    b.symlink_to(a)
    raises(churn_config, a, snap_root, "symbolic link loop")


def test_wrong_delimiter_is_named(churn_config, tmp_path, snap_root):
    for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        source = tmp_path / f"{name}.csv"
        source.write_text(churn_csv_text().replace(",", sep))
        raises(churn_config, source, snap_root, f"looks {name}-delimited", "delimiter ','")


def test_truncated_file_is_named_truncated(churn_config, tmp_path, snap_root):
    source = tmp_path / "cut.csv"
    text = churn_csv_text(rows=20)
    source.write_text(text[: len(text) - 30])
    raises(churn_config, source, snap_root, "looks truncated", "line 21")


def test_infinite_numbers_are_refused_naming_the_column(churn_config, tmp_path, snap_root):
    frame = churn_stream.daily_batch(dt.date(2026, 1, 3), rows=10)
    frame.loc[[2, 7], "monthly_charges"] = [float("inf"), float("-inf")]
    for suffix in ("csv", "parquet"):
        source = tmp_path / f"inf.{suffix}"
        frame.to_csv(source, index=False) if suffix == "csv" else frame.to_parquet(source, index=False)
        raises(churn_config, source, snap_root, "column 'monthly_charges' has 2 infinite value(s) (data row(s) 3, 8)")


def test_dates_in_the_future_are_refused_naming_the_column_and_the_day(churn_config, tmp_path, snap_root):
    from airflow_mlops.core import data

    frame = churn_stream.daily_batch(dt.date(2026, 1, 3), rows=10)
    tomorrow = data._today() + dt.timedelta(days=1)
    frame.loc[0, "event_date"] = tomorrow.isoformat()  # one day of slack for time zones ahead of UTC
    source = tmp_path / "ahead.csv"
    frame.to_csv(source, index=False)
    assert snap(churn_config, source, snap_root)["rows"] == 10
    frame.loc[[3, 4], "event_date"] = "2099-12-31"
    frame.to_csv(source, index=False)
    raises(churn_config, source, snap_root, "date column 'event_date'", "2 row(s) dated in the future", "2099-12-31")


def test_bom_file_snapshots_to_the_same_data_version(churn_config, tmp_path, snap_root):
    plain, bom = tmp_path / "plain.csv", tmp_path / "bom.csv"
    plain.write_text(churn_csv_text())
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert snap(churn_config, bom, snap_root)["digest"] == snap(churn_config, plain, snap_root)["digest"]


def test_read_snapshot_missing(tmp_path):
    with pytest.raises(DataSourceError, match="gone.parquet: snapshot not found"):
        read_snapshot(tmp_path / "gone.parquet")


def test_read_snapshot_accepts_file_uri(churn_config, churn_dir, tmp_path):
    result = snap(churn_config, churn_dir, tmp_path / "snap shots", window_end=END)
    assert len(read_snapshot(Path(result["uri"]).as_uri())) == result["rows"]


def test_read_snapshot_corrupted(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(DataSourceError, match="bad.parquet: snapshot is not a readable Parquet file"):
        read_snapshot(bad)
