"""Fail early, naming the column and what to do, when a frame cannot train this pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import TrainingError

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.config import PipelineConfig


def check_training_data(df: pd.DataFrame, config: PipelineConfig) -> None:
    """Fail early, with a message saying what to do, when `df` cannot train this pipeline."""
    where = f"{config.path}: pipeline {config.name!r}"
    if df is None or len(df) == 0:
        raise TrainingError(
            f"{where}: the training data has no rows; check source.path ({config.source.path}) "
            f"and that the window (source.window_days) covers days with data"
        )
    needed = [*config.feature_names, config.target]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        kinds = ["target" if c == config.target else "feature" for c in missing]
        listed = ", ".join(f"{k} {c!r}" for k, c in zip(kinds, missing, strict=True))
        raise TrainingError(
            f"{where}: the training data lacks column(s) {listed}; present: {', '.join(map(str, df.columns))}. "
            f"Fix the config's features/target or the source data"
        )
    _check_numeric_features(df, config, where)
    y = df[config.target]
    n_missing = int(y.isna().sum())
    if n_missing:
        raise TrainingError(
            f"{where}: target column {config.target!r} has {n_missing} missing value(s) (NaN) in {len(df)} rows; "
            f"labels must be complete: drop or fix those rows upstream (the expectation suite should catch them)"
        )
    if config.is_classification:
        counts = y.value_counts()
        if len(counts) < 2:
            only = _scalar(counts.index[0])
            raise TrainingError(
                f"{where}: target column {config.target!r} has a single class ({only!r}) in all {len(df)} rows; "
                f"a classifier needs at least two classes: widen the training window (source.window_days) "
                f"or check the labels"
            )
        if config.task == "binary_classification" and len(counts) > 2:
            raise TrainingError(
                f"{where}: target column {config.target!r} has {len(counts)} classes "
                f"({', '.join(repr(_scalar(k)) for k in counts.index[:10])}) but target.task is binary_classification; "
                f"use multiclass_classification or fix the labels"
            )
    else:
        from pandas.api.types import is_numeric_dtype

        if not is_numeric_dtype(y):
            raise TrainingError(
                f"{where}: target column {config.target!r} has dtype {y.dtype}, but a regression target "
                f"must be numeric; fix the column or the task"
            )


def _check_numeric_features(df: pd.DataFrame, config: PipelineConfig, where: str) -> None:
    """A numeric feature holding text fails here, naming it, not inside scikit-learn's imputer."""
    import pandas as pd

    for name in config.numeric_features:
        col = df[name]
        if pd.api.types.is_numeric_dtype(col):
            continue
        values = col.dropna()
        bad = values[pd.to_numeric(values, errors="coerce").isna()]
        if bad.empty:
            raise TrainingError(
                f"{where}: numeric feature {name!r} is stored as text (dtype {col.dtype}) though its values read as "
                f"numbers; declare it float (or int) in source.dtypes"
            )
        shown = ", ".join(repr(v) for v in list(dict.fromkeys(bad.tolist()))[:3])
        raise TrainingError(
            f"{where}: numeric feature {name!r} holds text (dtype {col.dtype}): {len(bad)} of {len(col)} value(s) are "
            f"not numbers, e.g. {shown}; fix the export, read blanks as missing with source.na_values, or declare "
            f"the column in source.dtypes (the expectation suite should catch this with "
            f"expect_column_values_to_be_in_type_list)"
        )


def _scalar(value: Any) -> Any:
    """A numpy scalar as the plain Python value (so messages say 1, not np.int64(1))."""
    return value.item() if hasattr(value, "item") else value
