"""Batch scoring (core.scoring) with a real champion in a real MLflow store: columns, scores, the pinned
version, an idempotent and crash-safe partition, chunking, and every bad input refused with nothing written."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import churn_stream

DAY = dt.date(2026, 2, 12)
FEATURES = [
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "data_usage_gb",
    "contract",
    "payment_method",
    "region",
]


@pytest.fixture(scope="module")
def champion(tmp_path_factory, churn_config):
    """A logistic-regression champion of churn_classifier in a private MLflow store, shared by the module."""
    from mlflow import MlflowClient

    from airflow_mlops import settings
    from airflow_mlops.core import registry, tracking, training
    from airflow_mlops.core.data import read_snapshot, take_snapshot
    from airflow_mlops.core.rows import split_roles

    home = tmp_path_factory.mktemp("scoring-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_MLOPS_HOME", str(home))
        client = MlflowClient(
            tracking_uri=settings.default_tracking_uri(), registry_uri=settings.default_tracking_uri()
        )
        tracking.configure(client)
        source = tmp_path_factory.mktemp("scoring-train") / "churn"
        churn_stream.write_stream(source, dt.date(2026, 1, 1), 14, rows=120)
        snap = take_snapshot(churn_config, source=str(source), window_end=dt.date(2026, 1, 14))
        result = training.train_candidate(
            split_roles(read_snapshot(snap["uri"]), churn_config),
            churn_config,
            "logistic_regression",
            client=client,
            experiment="churn",
            data_digest=snap["digest"],
            data_uri=snap["uri"],
            tags={"data.digest": snap["digest"]},
        )
        version = registry.register_challenger(
            client, churn_config.model_name, result["model_uri"], result["run_id"], tags={"data.digest": snap["digest"]}
        )["version"]
        registry.set_alias(client, churn_config.model_name, registry.CHAMPION, version)
        model = training.load_model(f"models:/{churn_config.model_name}/{version}")
        yield {
            "client": client,
            "home": home,
            "version": version,
            "model": model,
            "result": result,
            "digest": snap["digest"],
        }


def write_batch(folder, day=DAY, rows=2000, *, name=None, fmt="csv", change=None):
    """The day's unlabeled records (churn_stream minus `churned`) as <folder>/churn_YYYY-MM-DD.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = churn_stream.daily_batch(day, rows=rows).drop(columns="churned")
    if change is not None:
        frame = change(frame)
    path = folder / (name or f"churn_{day.isoformat()}.{fmt}")
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path, index=False)
    return path


def score(config, champion, source, day=DAY, **kwargs):
    from airflow_mlops.core.scoring import score_day

    return score_day(config, day, client=champion["client"], source=str(source), **kwargs)


def with_chunks(config, chunk_rows):
    return config._replace(scoring=config.scoring._replace(chunk_rows=chunk_rows))


def partition(champion, day=DAY):
    return champion["home"] / "predictions" / "churn" / f"day={day.isoformat()}" / "predictions.parquet"


class OnProgress(logging.Handler):
    """Runs `action` once, when core.scoring logs its first 'rows scored so far' (after chunk 1): a real event
    happening mid-run, without patching the code under test."""

    def __init__(self, action):
        super().__init__()
        self.action, self.fired = action, False

    def emit(self, record):
        if "rows scored so far" in record.getMessage() and not self.fired:
            self.fired = True
            self.action()

    def __enter__(self):
        self.logger = logging.getLogger("airflow_mlops.core.scoring")
        self.level = self.logger.level
        self.logger.addHandler(self)
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)


# --------------------------------------------------------------------------- the predictions


def test_a_day_is_scored_by_the_champion_into_one_partition(champion, churn_config, tmp_path):
    batch = write_batch(tmp_path / "batches")

    summary = score(churn_config, champion, batch.parent)  # a folder of daily files: the day's file in it

    path = partition(champion)
    assert summary["path"] == str(path) and summary["rows"] == 2000 and summary["chunks"] == 1
    assert summary["model_version"] == champion["version"] and summary["day"] == DAY.isoformat()
    table = pq.read_table(path)
    assert table.column_names == ["customer_id", "score", "predicted", "model_version", "data_digest", "scored_at"]
    got = table.to_pandas()
    records = pd.read_csv(batch)
    assert got["customer_id"].tolist() == records["customer_id"].tolist()
    model = champion["model"]
    assert list(model.classes_) == [0, 1]
    expected = model.predict_proba(records[FEATURES])[:, 1]  # churned=1 is the positive class
    assert (got["score"] - expected).abs().max() < 1e-12
    assert got["predicted"].tolist() == model.predict(records[FEATURES]).tolist()
    assert set(got["model_version"]) == {champion["version"]}
    assert set(got["data_digest"]) == {f"sha256:{hashlib.sha256(batch.read_bytes()).hexdigest()}"}
    assert summary["data_digest"] == got["data_digest"].iloc[0]
    assert got["scored_at"].nunique() == 1 and str(got["scored_at"].dt.tz) == "UTC"
    assert not os.access(path, os.W_OK) or os.geteuid() == 0  # written read-only: a partition is replaced, never edited
    # The evidence: one MLflow run in churn-scoring with the summary.
    client = champion["client"]
    run = client.get_run(summary["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "churn-scoring"
    assert run.data.tags["mlops.step"] == "score" and run.data.tags["model.version"] == champion["version"]
    assert run.data.tags["data.digest"] == summary["data_digest"]
    assert run.data.metrics["rows"] == 2000 and run.data.params["path"] == str(path)


def test_the_version_is_resolved_once_even_if_the_champion_moves_mid_run(champion, churn_config, tmp_path):
    """@champion moves to another version after the first chunk: the whole day is still scored by the first."""
    from airflow_mlops.core import registry

    client, name = champion["client"], churn_config.model_name
    result = champion["result"]
    other = registry.register_challenger(
        client, name, result["model_uri"], result["run_id"], tags={"data.digest": "sha256:another-window"}
    )["version"]
    assert other != champion["version"]
    try:
        with OnProgress(lambda: registry.set_alias(client, name, registry.CHAMPION, other)) as hook:
            summary = score(with_chunks(churn_config, 1000), champion, write_batch(tmp_path, rows=3000))
        assert hook.fired and summary["chunks"] == 3
        got = pd.read_parquet(summary["path"])
        assert set(got["model_version"]) == {champion["version"]} == {summary["model_version"]}
        # The next run scores with the new champion, again one version for the whole day.
        again = score(churn_config, champion, tmp_path / f"churn_{DAY.isoformat()}.csv")
        assert set(pd.read_parquet(again["path"])["model_version"]) == {other}
    finally:
        registry.set_alias(client, name, registry.CHAMPION, champion["version"])


def test_a_rerun_replaces_the_days_partition_never_appends(champion, churn_config, tmp_path):
    batch = write_batch(tmp_path, rows=1500)
    first = score(churn_config, champion, batch)
    before = pd.read_parquet(first["path"])

    second = score(churn_config, champion, batch)

    after = pd.read_parquet(second["path"])
    assert second["path"] == first["path"] and len(after) == len(before) == 1500
    assert sorted(p.name for p in partition(champion).parent.iterdir()) == ["predictions.parquet"]
    pd.testing.assert_frame_equal(after.drop(columns="scored_at"), before.drop(columns="scored_at"))
    assert after["scored_at"].iloc[0] > before["scored_at"].iloc[0]
    assert second["mlflow_run_id"] != first["mlflow_run_id"]


def test_a_crash_mid_write_keeps_the_previous_partition_and_leaves_no_temp_file(
    champion, churn_config, tmp_path, monkeypatch
):
    config = with_chunks(churn_config, 1000)
    batch = write_batch(tmp_path, rows=5000)
    score(config, champion, batch)
    path = partition(champion)
    kept = path.read_bytes()
    calls = []
    real_write = pq.ParquetWriter.write_table

    def crash_on_second_chunk(self, table, *args, **kwargs):  # fault injection: the disk fails mid-file
        calls.append(table.num_rows)
        if len(calls) == 2:
            raise RuntimeError("injected: the worker died while writing chunk 2")
        return real_write(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", crash_on_second_chunk)
    with pytest.raises(RuntimeError, match="injected"):
        score(config, champion, batch)

    assert len(calls) == 2
    assert path.read_bytes() == kept  # the previous partition, intact
    assert [p.name for p in path.parent.iterdir()] == ["predictions.parquet"]  # no temp file behind
    # A first run that crashes leaves nothing at all, not even the day's folder.
    calls.clear()
    other_day = DAY - dt.timedelta(days=1)
    with pytest.raises(RuntimeError, match="injected"):
        score(config, champion, write_batch(tmp_path, other_day, rows=5000), day=other_day)
    assert not partition(champion, other_day).parent.exists()


def test_an_export_rewritten_while_it_is_scored_writes_nothing(champion, churn_config, tmp_path):
    from airflow_mlops.core.errors import DataSourceError

    config = with_chunks(churn_config, 1000)
    batch = write_batch(tmp_path, rows=3000)
    score(config, champion, batch)
    kept = partition(champion).read_bytes()

    def upstream_appends():
        with batch.open("a") as fh:
            fh.write("C-late,2026-02-12,3,50.0,1,10.0,one-year,card,north\n")

    with OnProgress(upstream_appends) as hook, pytest.raises(DataSourceError, match="the file changed while"):
        score(config, champion, batch)
    assert hook.fired and partition(champion).read_bytes() == kept


def test_chunked_scoring_gives_the_same_predictions_as_one_chunk(champion, churn_config, tmp_path):
    batch = write_batch(tmp_path, rows=5300)  # 5 chunks of 1000 (the last 300 join the fifth)
    whole = score(churn_config, champion, batch)
    one = pd.read_parquet(whole["path"])

    chunked = score(with_chunks(churn_config, 1000), champion, batch)

    assert (whole["chunks"], chunked["chunks"]) == (1, 5)
    many = pd.read_parquet(chunked["path"])
    assert pq.ParquetFile(chunked["path"]).metadata.num_row_groups == 5
    pd.testing.assert_frame_equal(many.drop(columns="scored_at"), one.drop(columns="scored_at"))
    # A Parquet batch of the same records scores the same (only the file digest differs).
    parquet = write_batch(tmp_path / "pq", rows=5300, fmt="parquet")
    from_parquet = pd.read_parquet(score(with_chunks(churn_config, 1000), champion, parquet)["path"])
    pd.testing.assert_frame_equal(
        from_parquet.drop(columns=["scored_at", "data_digest"]), one.drop(columns=["scored_at", "data_digest"])
    )


def test_scores_for_regression_and_multiclass_models(churn_config, breast_cancer):
    """Regression: score = predicted = the prediction; multiclass: score = the predicted class's probability."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from airflow_mlops.core.scoring import Scorer

    x = breast_cancer[["mean_radius", "mean_texture", "mean_area"]]
    regression = churn_config._replace(task="regression")
    model = LinearRegression().fit(x, breast_cancer["mean_perimeter"])
    score_, predicted = Scorer.of(model, regression).score(x)
    assert (score_ == model.predict(x)).all() and (predicted == score_).all()

    multiclass = churn_config._replace(task="multiclass_classification")
    y = pd.cut(breast_cancer["mean_perimeter"], 3, labels=["low", "mid", "high"]).astype(str)
    model = LogisticRegression(max_iter=2000).fit(x, y)
    score_, predicted = Scorer.of(model, multiclass).score(x)
    assert (predicted == model.predict(x)).all()
    assert abs(score_ - model.predict_proba(x).max(axis=1)).max() < 1e-12


# --------------------------------------------------------------------------- bad input: a clear error, nothing written


def refused(champion, config, source, match, day=DAY, error=None):
    from airflow_mlops.core.errors import MlopsError

    with pytest.raises(error or MlopsError, match=match) as info:
        score(config, champion, source, day=day)
    assert not partition(champion, day).parent.exists(), "bad input must write nothing"
    return info.value


@pytest.fixture
def fresh_day():
    """A day no other test scores, so that 'nothing written' is checked against an empty folder."""
    return dt.date(2026, 3, 2)


def test_a_missing_feature_column_is_named(champion, churn_config, tmp_path, fresh_day):
    batch = write_batch(tmp_path, fresh_day, change=lambda f: f.drop(columns="support_calls"))
    err = refused(
        champion, churn_config, batch, r"missing required column\(s\) 'support_calls' \(features\)", day=fresh_day
    )
    assert str(batch) in str(err)


def test_duplicated_ids_are_refused_with_examples(champion, churn_config, tmp_path, fresh_day):
    def duplicate(frame):
        frame.loc[[10, 11, 12, 13], "customer_id"] = frame.loc[[0, 1, 2, 3], "customer_id"].to_numpy()
        return frame

    batch = write_batch(tmp_path, fresh_day, change=duplicate)
    err = refused(
        champion, churn_config, batch, r"'customer_id' \(source.id_columns\) has duplicates: 8 row\(s\)", day=fresh_day
    )
    assert "'C20260302-00000', 'C20260302-00001', 'C20260302-00002', ..." in str(err)


def test_ids_duplicated_across_chunks_are_found(champion, churn_config, tmp_path, fresh_day):
    def duplicate(frame):
        frame.loc[4500, "customer_id"] = frame.loc[7, "customer_id"]
        return frame

    batch = write_batch(tmp_path, fresh_day, rows=5000, change=duplicate)
    refused(
        champion,
        with_chunks(churn_config, 1000),
        batch,
        r"has duplicates: 1 row\(s\) in the first 5,000 data rows .* e.g. 'C20260302-00007'",
        day=fresh_day,
    )


def test_missing_ids_are_refused(champion, churn_config, tmp_path, fresh_day):
    def blank(frame):
        frame.loc[[3, 9], "customer_id"] = None
        return frame

    refused(
        champion,
        churn_config,
        write_batch(tmp_path, fresh_day, change=blank),
        r"'customer_id' \(source.id_columns\) missing in 2 row\(s\), e.g. data row\(s\) 4, 10",
        day=fresh_day,
    )


def test_scoring_needs_an_id_column(champion, churn_config, tmp_path, fresh_day):
    from airflow_mlops.core.errors import ConfigError

    no_ids = churn_config._replace(source=churn_config.source._replace(id_columns=()))
    refused(
        champion,
        no_ids,
        write_batch(tmp_path, fresh_day),
        r"source.id_columns: scoring needs at least one id",
        day=fresh_day,
        error=ConfigError,
    )


def test_a_day_in_the_future_is_refused(champion, churn_config, tmp_path):
    future = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)
    refused(champion, churn_config, write_batch(tmp_path, future), r"day .* is in the future", day=future)


def test_no_champion_is_its_own_error(champion, churn_config, tmp_path, fresh_day):
    from airflow_mlops.core.scoring import NoChampionError

    nobody = churn_config._replace(model_name="nobody_classifier")
    refused(
        champion,
        nobody,
        write_batch(tmp_path, fresh_day),
        r"nobody_classifier has no champion to score with: run churn_retrain first",
        day=fresh_day,
        error=NoChampionError,
    )


def test_the_suite_minus_the_target_rules_validates_the_batch(champion, churn_config, tmp_path, fresh_day):
    from airflow_mlops.core.scoring import BatchValidationFailed

    def broken(frame):
        frame.loc[frame.index[::50], "contract"] = "lifetime"
        return frame

    err = refused(
        champion,
        churn_config,
        write_batch(tmp_path, fresh_day, change=broken),
        r"failed validation, nothing was written",
        day=fresh_day,
        error=BatchValidationFailed,
    )
    failed = {(f.expectation, f.column) for f in err.report.failed}
    assert failed == {("expect_column_values_to_be_in_set", "contract")}  # nothing about the absent `churned`
    assert "'lifetime'" in str(err)
    # The row-count rule holds for the whole file, not per chunk: 30 rows are too few (min 50).
    err = refused(
        champion,
        churn_config,
        write_batch(tmp_path, fresh_day, rows=30),
        r"failed validation",
        day=fresh_day,
        error=BatchValidationFailed,
    )
    assert [f.expectation for f in err.report.failed] == ["expect_table_row_count_to_be_between"]
    assert "observed 30" in str(err)


@pytest.mark.parametrize(
    ("what", "source", "match"),
    [
        ("no file for the day", lambda tmp: tmp, r"no batch for 2026-03-02 \(looked for churn_2026-03-02.csv"),
        ("outside the allowed folders", lambda tmp: "/etc/hostname", r"outside the allowed folders"),
        ("a NUL byte in the path", lambda tmp: f"{tmp}/x\x00.csv", r"NUL byte"),
        ("a ragged row", "ragged", r"1 row\(s\) with missing or extra fields .* line 4 has 2"),
        ("a truncated file", "truncated", r"looks truncated"),
        ("not UTF-8", "latin1", r"not UTF-8"),
    ],
)
def test_a_bad_source_file_is_refused_unread(champion, churn_config, tmp_path, fresh_day, what, source, match):
    if isinstance(source, str):
        path = write_batch(tmp_path, fresh_day, rows=100)
        text = path.read_text()
        lines = text.splitlines(keepends=True)
        if source == "ragged":
            lines[3] = "C1,2026-03-02\n"
            path.write_text("".join(lines))
        elif source == "truncated":
            path.write_text(text.rstrip("\n")[:-12])
        else:
            path.write_bytes(text.replace("north", "nörth").encode("latin-1"))
        source = path
    else:
        source = source(tmp_path)
    refused(champion, churn_config, source, match, day=fresh_day)


def test_a_day_that_is_not_a_date_is_refused(champion, churn_config, tmp_path):
    from airflow_mlops.core.errors import DataSourceError

    with pytest.raises(DataSourceError, match=r"day '12/02/2026' is not a date: use YYYY-MM-DD"):
        score(churn_config, champion, tmp_path, day="12/02/2026")
