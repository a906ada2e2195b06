"""The sections that judge a challenger and ship it: split, evaluation (with its approval) and deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core.config.model_checks import explain_config, fairness_config, robustness_config, slices_config
from airflow_mlops.core.config.reader import Reader, read_struct
from airflow_mlops.core.config.sections import (
    APPROVAL_MODES,
    REQUIRE_MODES,
    SPLIT_STRATEGIES,
    ApprovalConfig,
    DeploymentConfig,
    EvaluationConfig,
    SourceConfig,
    SplitConfig,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_mlops.core.config.sections import Feature


def split_config(spl: Reader, source: SourceConfig, known_columns: list[str]) -> SplitConfig:
    split = read_struct(spl, SplitConfig, choices={"strategy": SPLIT_STRATEGIES})
    spl.done()
    for key in ("test_size", "validation_size"):
        if not 0.0 < getattr(split, key) < 1.0:
            spl.fail(f"must be between 0 and 1, got {getattr(split, key)}", key)
    if split.test_size + split.validation_size >= 1.0:
        spl.fail(
            f"test_size + validation_size must leave rows to train on, got {split.test_size} + {split.validation_size}",
            "validation_size",
        )
    for key in ("test_days", "validation_days"):
        value = getattr(split, key)
        if value is not None and value < 1:
            spl.fail(f"must be >= 1, got {value}", key)
        if value is not None and split.strategy == "random":
            spl.fail("counts days of a time split; the random split takes test_size / validation_size", key)
    unknown = [c for c in split.key if c not in known_columns and c != source.date_column]
    if unknown:
        spl.fail(
            f"{', '.join(map(repr, unknown))} is not a column of this pipeline (its features, "
            f"source.id_columns or date column); the split key names the columns that identify a row",
            "key",
        )
    if split.key and (split.strategy == "time" or (split.strategy is None and source.date_column)):
        spl.fail("names the rows of the random split; a time split gives each row its role by its date", "key")
    if split.strategy == "time" and not source.date_column:
        spl.fail("'time' needs source.date_column (the day each row belongs to); set it, or use 'random'", "strategy")
    if split.strategy is None and not source.date_column and (split.test_days or split.validation_days):
        spl.fail(
            "test_days / validation_days need source.date_column (a time split); use test_size / "
            "validation_size for a random split",
            "test_days" if split.test_days else "validation_days",
        )
    return split


def evaluation_config(
    ev: Reader, allowed: tuple[str, ...], features: Sequence[Feature] = (), task: str = "binary_classification"
) -> EvaluationConfig:
    """`evaluation`: the champion/challenger gate; `allowed` are the task's metrics, `features` the pipeline's."""
    evaluation = read_struct(
        ev,
        EvaluationConfig,
        choices={"require": REQUIRE_MODES},
        custom={
            "guard_rails": lambda r, key, default: _metric_map(r, key, allowed, default),
            "floors": lambda r, key, default: _metric_map(r, key, allowed, default),
            "approval": approval_config,
            "slices": lambda r, key, default: slices_config(r.sub(key, {}), features),
            "fairness": lambda r, key, default: fairness_config(r.sub(key, {}), features, task),
            "robustness": lambda r, key, default: robustness_config(r.sub(key, {})),
            "explain": lambda r, key, default: explain_config(r.sub(key, {})),
        },
    )
    ev.done()
    if not 0.5 <= evaluation.confidence < 1.0:
        ev.fail(f"must be in [0.5, 1), got {evaluation.confidence}", "confidence")
    if evaluation.bootstrap_samples < 100:
        ev.fail(f"use at least 100 resamples, got {evaluation.bootstrap_samples}", "bootstrap_samples")
    if evaluation.margin < 0:
        ev.fail(f"must be >= 0, got {evaluation.margin}", "margin")
    if evaluation.min_test_rows < 2:
        ev.fail(f"must be >= 2, got {evaluation.min_test_rows}", "min_test_rows")
    if evaluation.min_test_events < 1:
        ev.fail(f"must be >= 1, got {evaluation.min_test_events}", "min_test_events")
    if "min_test_events" in ev.data and evaluation.min_test_events > evaluation.min_test_rows:
        ev.fail(
            f"{evaluation.min_test_events} events of each class cannot fit in evaluation.min_test_rows "
            f"({evaluation.min_test_rows}) test rows; lower min_test_events or raise min_test_rows",
            "min_test_events",
        )
    return evaluation


def approval_config(ev: Reader, key: str, d: ApprovalConfig) -> ApprovalConfig:
    """`evaluation.approval`: a mode (``approval: borderline``) or a mapping {mode, band, timeout_hours}."""
    raw = ev.get(key, (str, dict), d.mode)
    if isinstance(raw, str):
        if raw not in APPROVAL_MODES:
            ev.fail(
                f"{raw!r} is not one of {', '.join(APPROVAL_MODES)} (or a mapping with mode, band, timeout_hours)", key
            )
        return d._replace(mode=raw)
    apr = ev.sub(key)
    approval = read_struct(apr, ApprovalConfig, choices={"mode": APPROVAL_MODES})
    apr.done()
    if approval.band < 0:
        apr.fail(f"must be >= 0 (in units of the primary metric), got {approval.band:g}", "band")
    if not approval.timeout_hours > 0:
        apr.fail(
            f"must be > 0 (how long a run waits for an answer before it rejects), got {approval.timeout_hours:g}",
            "timeout_hours",
        )
    return approval


def _metric_map(reader: Reader, key: str, allowed: tuple[str, ...], default: dict[str, float]) -> dict[str, float]:
    """A {metric: number} mapping whose metrics are known for the task."""
    raw = reader.get(key, dict, default)
    out = {}
    for metric, value in raw.items():
        if metric not in allowed:
            reader.fail(f"{metric!r} is not a metric for this task; allowed: {', '.join(allowed)}", key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            reader.fail(f"{metric}: expected a number, got {type(value).__name__} {value!r}", key)
        out[metric] = float(value)
    return out


def deployment_config(dep: Reader) -> DeploymentConfig:
    """`deployment`: how a promoted model is smoke-tested."""
    deployment = read_struct(dep, DeploymentConfig)
    dep.done()
    if deployment.smoke_rows < 1:
        dep.fail("must be >= 1", "smoke_rows")
    return deployment
