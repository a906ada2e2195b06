"""The sections of a pipeline in operation: performance monitoring, scoring, schedule and alerts."""

from __future__ import annotations

from typing import Any

from airflow_mlops.core.config.reader import Reader
from airflow_mlops.core.config.sections import (
    ALERT_CHANNEL_TYPES,
    ALERT_EVENTS,
    WEBHOOK_FORMATS,
    AlertChannel,
    AlertsConfig,
    PerformanceConfig,
    ScheduleConfig,
    ScoringConfig,
)


def performance_config(per: Reader) -> PerformanceConfig:
    d = PerformanceConfig()
    performance = PerformanceConfig(
        tolerance=float(per.get("tolerance", float, d.tolerance)),
        min_join_rate=float(per.get("min_join_rate", float, d.min_join_rate)),
        min_rows=per.get("min_rows", int, d.min_rows),
        bootstrap_samples=per.get("bootstrap_samples", int, d.bootstrap_samples),
        confirm_days=per.get("confirm_days", int, d.confirm_days),
        of_last_days=per.get("of_last_days", int, d.of_last_days),
        cooldown_hours=float(per.get("cooldown_hours", float, d.cooldown_hours)),
    )
    per.done()
    if performance.tolerance < 0:
        per.fail(f"must be >= 0, got {performance.tolerance}", "tolerance")
    if not 0 < performance.min_join_rate <= 1:
        per.fail(f"must be in (0, 1], got {performance.min_join_rate}", "min_join_rate")
    if performance.min_rows < 2:
        per.fail(f"must be >= 2, got {performance.min_rows}", "min_rows")
    if performance.bootstrap_samples < 100:
        per.fail(f"use at least 100 resamples, got {performance.bootstrap_samples}", "bootstrap_samples")
    if not 1 <= performance.confirm_days <= performance.of_last_days:
        per.fail(f"need 1 <= confirm_days <= of_last_days, got {performance.confirm_days} of "
                 f"{performance.of_last_days}", "confirm_days")
    return performance


def scoring_config(sco: Reader) -> ScoringConfig:
    d = ScoringConfig()
    scoring = ScoringConfig(
        source=sco.get("source", str, None),
        labels=sco.get("labels", str, None),
        label_delay_days=sco.get("label_delay_days", int, d.label_delay_days),
        chunk_rows=sco.get("chunk_rows", int, d.chunk_rows),
    )
    sco.done()
    if scoring.label_delay_days < 0:
        sco.fail(f"must be >= 0, got {scoring.label_delay_days}", "label_delay_days")
    if scoring.chunk_rows < 1000:
        sco.fail(f"score at least 1000 rows at a time, got {scoring.chunk_rows}", "chunk_rows")
    if scoring.labels and not scoring.source:
        sco.fail("labels are joined with the predictions of scoring.source: set it too", "labels")
    return scoring


def schedule_config(sch: Reader) -> ScheduleConfig:
    default = ScheduleConfig()
    schedule = ScheduleConfig(
        retrain=sch.get("retrain", (str, type(None)), default.retrain),
        drift_monitor=sch.get("drift_monitor", (str, type(None)), default.drift_monitor),
        scoring=sch.get("scoring", (str, type(None)), default.scoring),
        performance_monitor=sch.get("performance_monitor", (str, type(None)), default.performance_monitor),
        timezone=sch.get("timezone", str, default.timezone),
    )
    sch.done()
    for key in ("retrain", "drift_monitor", "scoring", "performance_monitor"):
        cron = getattr(schedule, key)
        if cron is not None and not cron.startswith("@") and len(cron.split()) != 5:
            sch.fail(f"{cron!r} is not a cron expression of 5 fields (e.g. '0 2 * * *'), a preset such as @daily, "
                     "or null for none", key)
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(schedule.timezone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        sch.fail(f"unknown time zone {schedule.timezone!r} (an IANA name such as UTC or Europe/Paris)", "timezone")
    return schedule


def alerts_config(alr: Reader, file: str) -> AlertsConfig:
    channels: dict[str, AlertChannel] = {}
    for name, raw in alr.get("channels", dict, {}).items():
        ch = Reader(file, raw, f"alerts.channels.{name}")
        kind = ch.get("type", str, choices=ALERT_CHANNEL_TYPES)
        conn_id = ch.get("conn_id", str)
        if not conn_id.strip():
            ch.fail("must name an Airflow connection", "conn_id")
        to: list[Any] = []
        if kind == "email":
            to = ch.get("to", list)
            if not to or not all(isinstance(a, str) and "@" in a for a in to):
                ch.fail(f"expected a list of e-mail addresses, got {to!r}", "to")
            sender = ch.get("from", str, None)
        else:
            sender = None
        fmt = ch.get("format", str, "json", WEBHOOK_FORMATS) if kind == "webhook" else "json"
        ch.done()
        channels[str(name)] = AlertChannel(
            name=str(name), type=kind, conn_id=conn_id, to=tuple(to), from_email=sender, format=fmt
        )
    events: dict[str, tuple[str, ...]] = {}
    for event, names in alr.get("events", dict, {}).items():
        if event not in ALERT_EVENTS:
            alr.fail(f"unknown event {event!r}; events: {', '.join(ALERT_EVENTS)}", "events")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            alr.fail(f"{event}: expected a list of channel names, got {names!r}", "events")
        unknown = [n for n in names if n not in channels]
        if unknown:
            alr.fail(f"{event}: unknown channel(s) {', '.join(map(repr, unknown))}; channels: "
                     f"{', '.join(channels) or 'none defined (alerts.channels)'}", "events")
        events[event] = tuple(names)
    alr.done()
    return AlertsConfig(channels=channels, events=events)
