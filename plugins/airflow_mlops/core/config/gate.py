"""The sections that decide which rows judge a challenger and who approves it: split and evaluation.approval."""

from __future__ import annotations

from airflow_mlops.core.config.reader import Reader, string_list
from airflow_mlops.core.config.sections import (
    APPROVAL_MODES,
    SPLIT_STRATEGIES,
    ApprovalConfig,
    SourceConfig,
    SplitConfig,
)


def approval_config(ev: Reader) -> ApprovalConfig:
    """`evaluation.approval`: a mode (``approval: borderline``) or a mapping {mode, band, timeout_hours}."""
    d = ApprovalConfig()
    raw = ev.get("approval", (str, dict), d.mode)
    if isinstance(raw, str):
        if raw not in APPROVAL_MODES:
            ev.fail(f"{raw!r} is not one of {', '.join(APPROVAL_MODES)} (or a mapping with mode, band, timeout_hours)",
                    "approval")
        return d._replace(mode=raw)
    apr = ev.sub("approval")
    approval = ApprovalConfig(
        mode=apr.get("mode", str, d.mode, APPROVAL_MODES),
        band=float(apr.get("band", float, d.band)),
        timeout_hours=float(apr.get("timeout_hours", float, d.timeout_hours)),
    )
    apr.done()
    if approval.band < 0:
        apr.fail(f"must be >= 0 (in units of the primary metric), got {approval.band:g}", "band")
    if not approval.timeout_hours > 0:
        apr.fail(f"must be > 0 (how long a run waits for an answer before it rejects), got {approval.timeout_hours:g}",
                 "timeout_hours")
    return approval


def split_config(spl: Reader, source: SourceConfig, known_columns: list[str]) -> SplitConfig:
    split = SplitConfig(
        strategy=spl.get("strategy", str, None, SPLIT_STRATEGIES),
        test_days=spl.get("test_days", int, None),
        validation_days=spl.get("validation_days", int, None),
        test_size=float(spl.get("test_size", float, 0.2)),
        validation_size=float(spl.get("validation_size", float, 0.2)),
        stratify=spl.get("stratify", bool, True),
        key=tuple(string_list(spl, "key")),
    )
    spl.done()
    for key in ("test_size", "validation_size"):
        if not 0.0 < getattr(split, key) < 1.0:
            spl.fail(f"must be between 0 and 1, got {getattr(split, key)}", key)
    if split.test_size + split.validation_size >= 1.0:
        spl.fail(f"test_size + validation_size must leave rows to train on, got {split.test_size} + "
                 f"{split.validation_size}", "validation_size")
    for key in ("test_days", "validation_days"):
        value = getattr(split, key)
        if value is not None and value < 1:
            spl.fail(f"must be >= 1, got {value}", key)
        if value is not None and split.strategy == "random":
            spl.fail("counts days of a time split; the random split takes test_size / validation_size", key)
    unknown = [c for c in split.key if c not in known_columns and c != source.date_column]
    if unknown:
        spl.fail(f"{', '.join(map(repr, unknown))} is not a column of this pipeline (its features, "
                 f"source.id_columns or date column); the split key names the columns that identify a row", "key")
    if split.key and (split.strategy == "time" or (split.strategy is None and source.date_column)):
        spl.fail("names the rows of the random split; a time split gives each row its role by its date", "key")
    if split.strategy == "time" and not source.date_column:
        spl.fail("'time' needs source.date_column (the day each row belongs to); set it, or use 'random'", "strategy")
    if split.strategy is None and not source.date_column and (split.test_days or split.validation_days):
        spl.fail("test_days / validation_days need source.date_column (a time split); use test_size / "
                 "validation_size for a random split", "test_days" if split.test_days else "validation_days")
    return split
