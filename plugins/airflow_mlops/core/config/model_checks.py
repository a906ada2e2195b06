"""The sections of `evaluation` that look past one number: slices, fairness, robustness, explain.

Each names the key it refuses, at parse time: a slice or group column that is not a feature, a negative
tolerance, a fairness metric a regression cannot have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core.config.reader import Reader, read_struct
from airflow_mlops.core.config.sections import (
    FAIRNESS_METRICS,
    SLICE_CORRECTIONS,
    ExplainConfig,
    FairnessConfig,
    RobustnessConfig,
    SlicesConfig,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_mlops.core.config.sections import Feature


def slices_config(sl: Reader, features: Sequence[Feature]) -> SlicesConfig:
    """`evaluation.slices`: the columns (features) the test rows are sliced by, and when a slice blocks."""
    slices = read_struct(sl, SlicesConfig, choices={"correction": SLICE_CORRECTIONS}, custom={"crossings": _crossings})
    sl.done()
    _features_only(sl, "columns", slices.columns, features, "slice")
    for i, pair in enumerate(slices.crossings):
        _features_only(sl, f"crossings[{i}]", pair, features, "slice")
    if slices.bins < 2:
        sl.fail(f"must be >= 2 (numeric features are cut into this many quantile bins), got {slices.bins}", "bins")
    if slices.min_slice_rows < 2:
        sl.fail(f"must be >= 2, got {slices.min_slice_rows}", "min_slice_rows")
    if slices.min_slice_events < 1:
        sl.fail(
            f"must be >= 1 (a slice holding one class cannot be scored by AUC), got {slices.min_slice_events}",
            "min_slice_events",
        )
    _not_negative(sl, "slice_tolerance", slices.slice_tolerance)
    _share(sl, "alpha", slices.alpha)
    return slices


def fairness_config(fr: Reader, features: Sequence[Feature], task: str) -> FairnessConfig:
    """`evaluation.fairness` (opt-in): the group columns and the gaps judged between their groups."""
    fairness = read_struct(fr, FairnessConfig)
    fr.done()
    if not fairness.groups:
        if fairness.limits or fairness.metrics != FAIRNESS_METRICS:
            fr.fail("fairness is judged between the groups of these columns: name at least one feature", "groups")
        return fairness
    if task != "binary_classification":
        fr.fail(f"the gaps (true/false positive rates, selection rate) need a binary task; the task is {task!r}")
    _features_only(fr, "groups", fairness.groups, features, "group")
    unknown = [m for m in fairness.metrics if m not in FAIRNESS_METRICS]
    if unknown or not fairness.metrics:
        fr.fail(f"{unknown or '[]'}: choose from {', '.join(FAIRNESS_METRICS)}", "metrics")
    for metric, limit in fairness.limits.items():
        if metric not in FAIRNESS_METRICS:
            fr.fail(f"{metric!r} is not one of {', '.join(FAIRNESS_METRICS)}", "limits")
        if not 0 <= limit <= 1:
            fr.fail(f"{metric}: a gap or a ratio of rates lies in [0, 1], got {limit:g}", "limits")
    _not_negative(fr, "tolerance", fairness.tolerance)
    if fairness.min_group_rows < 2:
        fr.fail(f"must be >= 2, got {fairness.min_group_rows}", "min_group_rows")
    return fairness


def robustness_config(rb: Reader) -> RobustnessConfig:
    """`evaluation.robustness`: how far inputs move and what the challenger may lose to it."""
    robustness = read_struct(rb, RobustnessConfig)
    rb.done()
    if not robustness.perturbation > 0:
        rb.fail(
            f"must be > 0 (a fraction of each feature's median absolute deviation), got {robustness.perturbation:g}",
            "perturbation",
        )
    if not 0 < robustness.missing_share < 1:
        rb.fail(f"must be in (0, 1), got {robustness.missing_share:g}", "missing_share")
    if robustness.sample_rows < 50:
        rb.fail(f"must be >= 50, got {robustness.sample_rows}", "sample_rows")
    _not_negative(rb, "max_flip_rate_increase", robustness.max_flip_rate_increase)
    _share(rb, "max_monotonic_violations", robustness.max_monotonic_violations, closed=True)
    if not 0 <= robustness.monotonic_tolerance < 1:
        rb.fail(
            f"must be in [0, 1) (how far a score may move against a declared monotonic feature before a row breaks "
            f"it), got {robustness.monotonic_tolerance:g}",
            "monotonic_tolerance",
        )
    return robustness


def explain_config(ex: Reader) -> ExplainConfig:
    """`evaluation.explain`: permutation importance of both models and how far its ranking may move."""
    explain = read_struct(ex, ExplainConfig)
    ex.done()
    if explain.sample_rows < 50:
        ex.fail(f"must be >= 50, got {explain.sample_rows}", "sample_rows")
    if explain.repeats < 1:
        ex.fail(f"must be >= 1, got {explain.repeats}", "repeats")
    _share(ex, "min_importance_ndcg", explain.min_importance_ndcg, closed=True)
    if not explain.max_share_ratio > 1:
        ex.fail(f"must be > 1, got {explain.max_share_ratio:g}", "max_share_ratio")
    return explain


def _crossings(reader: Reader, key: str, default: tuple) -> tuple[tuple[str, str], ...]:
    raw = reader.get(key, list, default)
    out = []
    for i, pair in enumerate(raw):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(c, str) for c in pair)):
            reader.fail(f"[{i}]: a crossing is a list of two feature names, e.g. [region, contract]; got {pair!r}", key)
        if pair[0] == pair[1]:
            reader.fail(f"[{i}]: crosses {pair[0]!r} with itself; name two different features", key)
        out.append((pair[0], pair[1]))
    return tuple(out)


def _features_only(reader: Reader, key: str, columns: Sequence[str], features: Sequence[Feature], what: str) -> None:
    names = [f.name for f in features]
    unknown = [c for c in columns if c not in names]
    if unknown:
        reader.fail(
            f"{', '.join(map(repr, unknown))} is not a feature of this pipeline; a {what} column must be one of "
            f"its features ({', '.join(names)})",
            key,
        )


def _not_negative(reader: Reader, key: str, value: float) -> None:
    if value < 0:
        reader.fail(f"must be >= 0 (a regression the challenger may have), got {value:g}", key)


def _share(reader: Reader, key: str, value: float, *, closed: bool = False) -> None:
    if not (0 <= value <= 1 if closed else 0 < value < 1):
        reader.fail(f"must be in {'[0, 1]' if closed else '(0, 1)'}, got {value:g}", key)
