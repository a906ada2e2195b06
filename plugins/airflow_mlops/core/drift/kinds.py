"""Which columns to compare and how: the config's feature types, else each column's kind inferred from a sample."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pandas as pd

from airflow_mlops.core.drift.report import CATEGORICAL, NUMERIC, DriftInputError

if TYPE_CHECKING:
    from airflow_mlops.core.config import MonitoringConfig, PipelineConfig
    from airflow_mlops.core.drift.windows import WindowReader

DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?")


def feature_specs(
    ref: WindowReader, cur: WindowReader, config: PipelineConfig | MonitoringConfig, features: list[str] | None
) -> tuple[dict[str, str], dict[str, str], tuple[str, str] | None]:
    """{feature: kind}, {skipped column: why}, and (target, kind) when both windows have the target."""
    from airflow_mlops.core.config import PipelineConfig

    ref_cols, cur_cols = ref.columns, cur.columns
    known: dict[str, str] = {}
    target = None
    if isinstance(config, PipelineConfig):
        known = {f.name: f.type for f in config.features}
        names = list(features) if features is not None else config.feature_names
        if config.target in ref_cols and config.target in cur_cols and config.target not in names:
            target = (config.target, CATEGORICAL if config.is_classification else NUMERIC)
    elif features is not None:
        names = list(features)
    else:
        only_ref = [c for c in ref_cols if c not in cur_cols]
        only_cur = [c for c in cur_cols if c not in ref_cols]
        if only_ref or only_cur:
            raise DriftInputError(
                f"the windows have different columns: only in the reference ({ref.label}): "
                f"{', '.join(map(repr, only_ref)) or '-'}; only in the current ({cur.label}): "
                f"{', '.join(map(repr, only_cur)) or '-'}. Compare windows of the same dataset, or name the features"
            )
        names = list(ref_cols)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DriftInputError(f"feature(s) listed twice: {', '.join(map(repr, dupes))}")
    missing_ref = [n for n in names if n not in ref_cols]
    missing_cur = [n for n in names if n not in cur_cols]
    if missing_ref or missing_cur:
        parts = []
        if missing_ref:
            parts.append(f"missing in the reference ({ref.label}): {', '.join(map(repr, missing_ref))}")
        if missing_cur:
            parts.append(f"missing in the current window ({cur.label}): {', '.join(map(repr, missing_cur))}")
        raise DriftInputError(
            f"the windows do not have the same feature columns: {'; '.join(parts)}. Both windows need every feature"
        )
    if not names:
        raise DriftInputError(f"{ref.label}: no columns to compare")

    specs: dict[str, str] = {}
    skipped: dict[str, str] = {}
    unknown = [n for n in names if n not in known]
    sample = ref.sample(unknown) if unknown else None
    for name in names:
        if name in known:
            specs[name] = known[name]
            continue
        assert sample is not None
        kind, why = _infer_kind(sample[name])
        if kind is None:
            skipped[name] = why
        else:
            specs[name] = kind
    return specs, skipped, target


def _infer_kind(series: pd.Series) -> tuple[str | None, str]:
    """numeric for numeric dtypes, categorical otherwise; None (with the reason) for date/time columns."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return CATEGORICAL, ""
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC, ""
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return None, "a date/time column (time moves on: not a feature to compare)"
    values = series.dropna()
    if len(values) and values.astype(str).str.match(DATE_LIKE).all():
        return None, "looks like a date column (time moves on: not a feature to compare)"
    return CATEGORICAL, ""
