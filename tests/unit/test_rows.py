"""core.rows: the three roles of a snapshot's rows, row hashes, and the gate's test rows that
exclude, exactly, every row the serving champion was trained or selected on."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import churn_stream

from airflow_mlops.core import rows
from airflow_mlops.core.config import parse_config
from airflow_mlops.core.errors import SplitError


def window(first: str, days: int, rows_per_day: int = 200, seed: int = 7) -> pd.DataFrame:
    start = dt.date.fromisoformat(first)
    return pd.concat(
        [churn_stream.daily_batch(start + dt.timedelta(days=i), rows=rows_per_day, seed=seed) for i in range(days)],
        ignore_index=True,
    )


def with_split(config, **split):
    raw = copy.deepcopy(config.raw)
    raw["split"] = split
    return parse_config(raw, file=config.path, check_estimators=False)


def hashes(frame, columns=None):
    return set(rows.row_hashes(frame, columns).tolist())


# --------------------------------------------------------------------------- the three roles


def test_time_split_newest_days_test_then_validation_then_train(churn_config):
    df = window("2026-01-01", 12)
    split = rows.split_roles(df, churn_config)  # churn.yaml: time, test_days 3, validation_days 3
    assert split.strategy == "time"
    assert sorted(split.test["event_date"].unique()) == ["2026-01-10", "2026-01-11", "2026-01-12"]
    assert sorted(split.validation["event_date"].unique()) == ["2026-01-07", "2026-01-08", "2026-01-09"]
    assert split.train["event_date"].max() == "2026-01-06" and split.train["event_date"].min() == "2026-01-01"
    assert len(split.train) + len(split.validation) + len(split.test) == len(df)
    assert set(split.train.index).isdisjoint(split.validation.index)
    assert set(split.seen.index).isdisjoint(split.test.index)
    assert "test 600 rows, 2026-01-10..2026-01-12" in split.describe()


def test_time_split_from_shares_of_days(churn_config):
    config = with_split(churn_config, strategy="time", test_size=0.2, validation_size=0.1)
    split = rows.split_roles(window("2026-01-01", 10), config)
    assert split.test["event_date"].nunique() == 2 and split.validation["event_date"].nunique() == 1


def test_time_is_the_default_with_a_date_column_random_without(churn_config):
    assert with_split(churn_config).split_strategy == "time"
    raw = copy.deepcopy(churn_config.raw)
    raw["source"].pop("date_column")
    raw.pop("split")
    assert parse_config(raw, file=churn_config.path, check_estimators=False).split_strategy == "random"


def test_random_split_gives_each_row_its_role_by_key_and_holds_the_fractions(churn_config):
    df = window("2026-01-01", 50)  # 10,000 rows
    config = with_split(churn_config, strategy="random", test_size=0.2, validation_size=0.2)
    a, b = rows.split_roles(df, config), rows.split_roles(df, config)
    for role, share in (("train", 0.6), ("validation", 0.2), ("test", 0.2)):
        assert abs(len(getattr(a, role)) / len(df) - share) <= 0.01, (role, len(getattr(a, role)))
    assert a.test.index.equals(b.test.index) and a.validation.index.equals(b.validation.index)
    assert set(a.train.index).isdisjoint(a.test.index) and set(a.validation.index).isdisjoint(a.test.index)
    rate = df["churned"].mean()
    for frame in (a.train, a.validation, a.test):
        assert abs(frame["churned"].mean() - rate) < 0.02
    other = rows.split_roles(df, config._replace(seed=config.seed + 1))
    assert not other.test.index.equals(a.test.index)


def test_a_row_keeps_its_role_as_the_data_grows_and_rows_of_one_key_share_it(churn_config):
    config = with_split(churn_config, strategy="random", test_size=0.2, validation_size=0.2)
    df = window("2026-01-01", 10)
    df.loc[df.index[-50:], "customer_id"] = df["customer_id"].iloc[0]  # one customer, 51 rows on several days
    grown = pd.concat([df, window("2026-01-11", 5, seed=8)], ignore_index=True)
    before, after = rows.split_roles(df, config), rows.split_roles(grown, config)
    for role in rows.ROLES:
        old = set(getattr(before, role)["customer_id"] + getattr(before, role)["event_date"])
        new = set(getattr(after, role)["customer_id"] + getattr(after, role)["event_date"])
        assert old <= new, f"rows left the {role} role as the data grew"
    roles_of_customer = {
        role for role in rows.ROLES if (getattr(after, role)["customer_id"] == df["customer_id"].iloc[0]).any()
    }
    assert len(roles_of_customer) == 1


def test_random_split_of_a_regression_is_not_stratified():
    config = parse_config(
        {
            "pipeline": "cost",
            "source": {"path": "data/cost.csv"},
            "target": {"column": "y", "task": "regression"},
            "features": [{"name": "x", "type": "numeric"}],
            "validation": {"suite": "include/expectations/cost.json"},
            "model": {"name": "cost", "candidates": [{"name": "lr", "estimator": "sklearn.linear_model.Ridge"}]},
            "metrics": {"primary": "rmse"},
            "seed": 3,
        }
    )
    split = rows.split_roles(pd.DataFrame({"x": range(1000), "y": [i * 0.5 for i in range(1000)]}), config)
    assert split.strategy == "random" and len(split.train) + len(split.validation) + len(split.test) == 1000
    assert abs(len(split.test) - 200) <= 40 and abs(len(split.validation) - 200) <= 40  # keyed by the feature x


def test_a_window_too_short_for_three_roles_names_pipeline_window_and_keys(churn_config):
    with pytest.raises(SplitError) as info:
        rows.split_roles(window("2026-01-01", 6), churn_config)
    message = str(info.value)
    for words in (
        "churn.yaml",
        "pipeline 'churn'",
        "2026-01-01..2026-01-06",
        "6 day(s)",
        "3 test day(s)",
        "source.window_days",
        "split.test_days",
    ):
        assert words in message, message


def test_a_single_class_test_window_names_the_role_and_what_to_change(churn_config):
    df = window("2026-01-01", 10)
    df.loc[df["event_date"] >= "2026-01-08", "churned"] = 0
    with pytest.raises(SplitError) as info:
        rows.split_roles(df, churn_config)
    message = str(info.value)
    for words in ("pipeline 'churn'", "test rows, 2026-01-08..2026-01-10", "single class", "split.test_days"):
        assert words in message, message


@pytest.mark.parametrize(
    ("split", "match"),
    [
        ({"strategy": "sometimes"}, r"split\.strategy: 'sometimes' is not one of time, random"),
        ({"strategy": "random", "test_days": 3}, r"split\.test_days: counts days of a time split"),
        ({"test_days": 0}, r"split\.test_days: must be >= 1"),
        ({"test_size": 0.5, "validation_size": 0.5}, r"split\.validation_size: test_size \+ validation_size"),
        ({"strategy": "random", "key": ["account"]}, r"split\.key: 'account' is not a column of this pipeline"),
        ({"strategy": "time", "key": ["customer_id"]}, r"split\.key: names the rows of the random split"),
    ],
)
def test_bad_split_config_names_the_key(churn_config, split, match):
    from airflow_mlops.core.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        with_split(churn_config, **split)


@pytest.mark.parametrize(
    ("evaluation", "match"),
    [
        ({"require": "sometimes"}, r"evaluation\.require: 'sometimes' is not one of point, lower_bound"),
        (
            {"min_test_events": 600, "min_test_rows": 500},
            r"evaluation\.min_test_events: 600 events of each class "
            r"cannot fit in evaluation\.min_test_rows \(500\)",
        ),
        ({"min_test_events": 0}, r"evaluation\.min_test_events: must be >= 1"),
    ],
)
def test_bad_gate_config_names_the_key(churn_config, evaluation, match):
    from airflow_mlops.core.errors import ConfigError

    raw = copy.deepcopy(churn_config.raw)
    raw["evaluation"].update(evaluation)
    with pytest.raises(ConfigError, match=match):
        parse_config(raw, file=churn_config.path, check_estimators=False)


def test_a_split_key_names_the_rows_of_one_customer(churn_config):
    config = with_split(churn_config, strategy="random", key=["customer_id"])
    assert config.split.key == ("customer_id",)


def test_time_split_needs_a_date_column(churn_config):
    from airflow_mlops.core.errors import ConfigError

    raw = copy.deepcopy(churn_config.raw)
    raw["source"].pop("date_column")
    with pytest.raises(ConfigError, match=r"split\.strategy: 'time' needs source\.date_column"):
        parse_config(raw, file=churn_config.path, check_estimators=False)


# --------------------------------------------------------------------------- row hashes


def test_row_hashes_are_canonical_across_dtypes_and_column_order():
    a = pd.DataFrame({"n": [1, 2, 3], "s": ["x", "y", None], "f": [0.5, 1.5, 2.5]})
    b = a.astype({"n": "float64"})[["f", "s", "n"]]  # an int column read as float in another window
    assert rows.row_hashes(a).tolist() == rows.row_hashes(b).tolist()
    c = a.copy()
    c.loc[1, "s"] = "z"
    assert rows.row_hashes(c)[1] != rows.row_hashes(a)[1] and rows.row_hashes(c)[0] == rows.row_hashes(a)[0]
    assert rows.row_hashes(a).dtype == np.uint64


def test_records_round_trip_and_corrupt_ones_are_refused(churn_config, tmp_path):
    split = rows.split_roles(window("2026-01-01", 10), churn_config)
    path = rows.write_record(rows.training_record(split), tmp_path / rows.TRAINING_ROWS_ARTIFACT)
    record = rows.read_record(path, "here")
    assert set(record.hashes.tolist()) == hashes(split.seen) and record.columns == sorted(split.seen.columns)
    assert path.stat().st_size < 12 * len(split.seen) + 4096  # about 8 bytes a row plus the dictionary of dates
    table = __import__("pyarrow.parquet", fromlist=["x"]).read_table(path)
    assert set(table.column("role").to_pylist()) == {"train", "validation"}
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        rows.read_record(path, "here")


# --------------------------------------------------------------------------- the gate's test rows


def champion_and_challenger(config, champion_config=None, *, shift=1, days=14):
    """The champion's split of the window ending day d and the challenger's of the window ending d + shift."""
    stream = window("2026-01-01", days + shift)
    first = sorted(stream["event_date"].unique())
    champion_rows = stream[stream["event_date"] <= first[days - 1]]
    challenger_rows = stream[stream["event_date"] >= first[shift]]
    champion = rows.split_roles(champion_rows, champion_config or config)
    challenger = rows.split_roles(challenger_rows, config)
    return champion, challenger


def assert_exact_exclusion(test_rows, champion_split):
    seen = hashes(champion_split.seen, test_rows.hash_columns)
    kept = hashes(test_rows.frame, test_rows.hash_columns)
    dropped = hashes(test_rows.candidate_frame[~test_rows.kept], test_rows.hash_columns)
    assert kept.isdisjoint(seen), "a row the champion was trained or selected on reached the gate"
    assert dropped <= seen, "a row the champion never saw was excluded"


def test_time_split_test_rows_are_newer_than_anything_the_champion_saw(churn_config):
    champion, challenger = champion_and_challenger(churn_config)
    test_rows = rows.gate_rows(challenger.test, churn_config, champion=rows.record_of(champion), has_champion=True)
    assert_exact_exclusion(test_rows, champion)
    assert test_rows.excluded == 0 and test_rows.n_rows == len(challenger.test) == 600
    assert test_rows.span == ("2026-01-13", "2026-01-15")


def test_random_split_with_the_same_key_never_tests_on_the_champions_rows(churn_config):
    config = with_split(churn_config, strategy="random", test_size=0.3, validation_size=0.2)
    champion, challenger = champion_and_challenger(config)
    test_rows = rows.gate_rows(challenger.test, config, champion=rows.record_of(champion), has_champion=True)
    assert test_rows.excluded == 0 and test_rows.n_rows == len(challenger.test)  # a row keeps its role


def test_random_split_overlap_after_a_seed_change_is_excluded_exactly(churn_config):
    config = with_split(churn_config, strategy="random", test_size=0.3, validation_size=0.2)
    champion, challenger = champion_and_challenger(config, config._replace(seed=config.seed + 1))
    test_rows = rows.gate_rows(challenger.test, config, champion=rows.record_of(champion), has_champion=True)
    assert test_rows.excluded > 0.5 * len(challenger.test)  # most of another seed's holdout was the champion's
    assert_exact_exclusion(test_rows, champion)
    assert "by row hash" in test_rows.describe() and f"{test_rows.excluded:,} of the" in test_rows.describe()


def test_hashes_that_miss_the_champions_days_fall_back_to_the_dates_and_say_why(churn_config):
    time_config = with_split(churn_config, strategy="time", test_days=3, validation_days=2)
    champion, challenger = champion_and_challenger(time_config, shift=6)
    record = rows.record_of(champion, "the champion's record")
    test = challenger.test.assign(monthly_charges=challenger.test["monthly_charges"] + 0.01)  # values re-exported
    test = pd.concat([champion.train.tail(100).assign(monthly_charges=lambda f: f["monthly_charges"] + 0.01), test])
    test_rows = rows.gate_rows(test, time_config, champion=record, has_champion=True, champion_window_end="2026-01-14")
    assert test_rows.method.startswith("by date") and "do not match this data" in test_rows.method
    assert test_rows.frame["event_date"].min() > "2026-01-14"


def test_exact_copies_of_the_challengers_own_rows_leave_its_test_rows(churn_config):
    _, challenger = champion_and_challenger(churn_config)
    copies = challenger.train.head(40)
    test = pd.concat([challenger.test, copies])
    test_rows = rows.gate_rows(
        test, churn_config, champion=None, has_champion=False, own=rows.record_of(challenger, "its own record")
    )
    assert test_rows.own_duplicates == 40 and test_rows.n_rows == len(challenger.test)
    assert "40 more were exact copies of the challenger's own training rows" in test_rows.describe()


def test_a_config_change_between_champion_and_challenger_is_excluded_exactly(churn_config):
    random_config = with_split(churn_config, strategy="random", test_size=0.2, validation_size=0.2)
    time_config = with_split(churn_config, strategy="time", test_days=4, validation_days=2)
    champion, challenger = champion_and_challenger(time_config, random_config, shift=2)
    test_rows = rows.gate_rows(challenger.test, time_config, champion=rows.record_of(champion), has_champion=True)
    # the champion's random test share of its newest days is clean; everything else it saw is dropped
    assert 0 < test_rows.excluded < len(challenger.test)
    assert_exact_exclusion(test_rows, champion)


def test_the_champion_record_from_another_column_set_is_used_as_recorded(churn_config):
    champion, challenger = champion_and_challenger(churn_config, with_split(churn_config, strategy="random"))
    record = rows.record_of(champion)
    test = challenger.test.assign(new_column=1)  # the export grew a column since the champion was trained
    test_rows = rows.gate_rows(test, churn_config, champion=record, has_champion=True)
    assert test_rows.hash_columns == record.columns and test_rows.excluded > 0
    assert hashes(test_rows.frame, record.columns).isdisjoint(record.hashes.tolist())


def test_without_a_record_every_row_up_to_the_champion_window_end_is_dropped(churn_config):
    _, challenger = champion_and_challenger(churn_config, shift=2)
    test_rows = rows.gate_rows(
        challenger.test,
        churn_config,
        champion=None,
        has_champion=True,
        champion_window_end="2026-01-14",
        why_no_record="its training run has no training_rows.parquet",
    )
    assert test_rows.frame["event_date"].min() == "2026-01-15" and test_rows.excluded == 200
    assert "by date" in test_rows.method and "2026-01-14" in test_rows.method and "no training_rows" in test_rows.method


def test_without_a_record_or_a_window_end_it_says_what_to_do(churn_config):
    _, challenger = champion_and_challenger(churn_config)
    with pytest.raises(SplitError) as info:
        rows.gate_rows(challenger.test, churn_config, champion=None, has_champion=True, why_no_record="it is corrupt")
    message = str(info.value)
    assert "pipeline 'churn'" in message and "it is corrupt" in message and "roll back" in message


def test_first_model_keeps_every_test_row(churn_config):
    _, challenger = champion_and_challenger(churn_config)
    test_rows = rows.gate_rows(challenger.test, churn_config, champion=None, has_champion=False)
    assert test_rows.n_rows == len(challenger.test) and "no champion yet" in test_rows.describe()
    record = test_rows.record()
    assert record.num_rows == len(challenger.test) and all(record.column("scored").to_pylist())
