"""The sections of a pipeline in operation: monitoring (drift, performance), scoring, security, schedule, alerts."""

from __future__ import annotations

from typing import Any

from airflow_mlops.core.config.reader import Reader, default_of, read_field, read_struct
from airflow_mlops.core.config.sections import (
    ALERT_CHANNEL_TYPES,
    ALERT_EVENTS,
    WEBHOOK_FORMATS,
    AlertChannel,
    AlertsConfig,
    MonitoringConfig,
    PerformanceConfig,
    ScheduleConfig,
    ScoringConfig,
    SecurityConfig,
)


def monitoring_config(mon: Reader, features: list[str]) -> MonitoringConfig:
    """`monitoring`: drift checks over the pipeline's `features`, and performance on delayed labels."""
    monitoring = read_struct(
        mon, MonitoringConfig, custom={"performance": lambda r, key, default: performance_config(r.sub(key, {}))}
    )
    mon.done()
    unknown_weights = sorted(set(monitoring.weights) - set(features))
    if unknown_weights:
        mon.fail(f"unknown feature(s) {', '.join(map(repr, unknown_weights))}", "weights")
    if not 1 <= monitoring.confirm_checks <= monitoring.of_last_checks:
        mon.fail(
            f"need 1 <= confirm_checks <= of_last_checks, got {monitoring.confirm_checks} of "
            f"{monitoring.of_last_checks}",
            "confirm_checks",
        )
    for key in ("alpha", "drift_share"):
        if not 0 < getattr(monitoring, key) <= 1:
            mon.fail(f"must be in (0, 1], got {getattr(monitoring, key)}", key)
    if monitoring.window_days < 1:
        mon.fail("must be >= 1", "window_days")
    return monitoring


def performance_config(per: Reader) -> PerformanceConfig:
    performance = read_struct(per, PerformanceConfig)
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
        per.fail(
            f"need 1 <= confirm_days <= of_last_days, got {performance.confirm_days} of {performance.of_last_days}",
            "confirm_days",
        )
    return performance


def scoring_config(sco: Reader) -> ScoringConfig:
    scoring = read_struct(sco, ScoringConfig)
    sco.done()
    if scoring.label_delay_days < 0:
        sco.fail(f"must be >= 0, got {scoring.label_delay_days}", "label_delay_days")
    if scoring.chunk_rows < 1000:
        sco.fail(f"score at least 1000 rows at a time, got {scoring.chunk_rows}", "chunk_rows")
    if scoring.labels and not scoring.source:
        sco.fail("labels are joined with the predictions of scoring.source: set it too", "labels")
    return scoring


def security_config(sec: Reader) -> SecurityConfig:
    security = read_struct(sec, SecurityConfig)
    sec.done()
    return security


def schedule_config(sch: Reader) -> ScheduleConfig:
    schedule = read_struct(sch, ScheduleConfig)
    sch.done()
    for key in ("retrain", "drift_monitor", "scoring", "performance_monitor"):
        cron = getattr(schedule, key)
        if cron is not None and not cron.startswith("@") and len(cron.split()) != 5:
            sch.fail(
                f"{cron!r} is not a cron expression of 5 fields (e.g. '0 2 * * *'), a preset such as @daily, "
                "or null for none",
                key,
            )
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(schedule.timezone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        sch.fail(f"unknown time zone {schedule.timezone!r} (an IANA name such as UTC or Europe/Paris)", "timezone")
    return schedule


def alerts_config(alr: Reader, file: str) -> AlertsConfig:
    channels: dict[str, AlertChannel] = {}
    for name, raw in alr.get("channels", dict, default_of(AlertsConfig, "channels")).items():
        ch = Reader(file, raw, f"alerts.channels.{name}")
        kind = read_field(ch, AlertChannel, "type", choices=ALERT_CHANNEL_TYPES)
        conn_id = read_field(ch, AlertChannel, "conn_id")
        if not conn_id.strip():
            ch.fail("must name an Airflow connection", "conn_id")
        to: list[Any] = []
        if kind == "email":
            to = ch.get("to", list)
            if not to or not all(isinstance(a, str) and "@" in a for a in to):
                ch.fail(f"expected a list of e-mail addresses, got {to!r}", "to")
            sender = read_field(ch, AlertChannel, "from_email", key="from")
        else:
            sender = None
        fmt = (
            read_field(ch, AlertChannel, "format", choices=WEBHOOK_FORMATS)
            if kind == "webhook"
            else default_of(AlertChannel, "format")
        )
        ch.done()
        channels[str(name)] = AlertChannel(
            name=str(name), type=kind, conn_id=conn_id, to=tuple(to), from_email=sender, format=fmt
        )
    events: dict[str, tuple[str, ...]] = {}
    for event, names in alr.get("events", dict, default_of(AlertsConfig, "events")).items():
        if event not in ALERT_EVENTS:
            alr.fail(f"unknown event {event!r}; events: {', '.join(ALERT_EVENTS)}", "events")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            alr.fail(f"{event}: expected a list of channel names, got {names!r}", "events")
        unknown = [n for n in names if n not in channels]
        if unknown:
            alr.fail(
                f"{event}: unknown channel(s) {', '.join(map(repr, unknown))}; channels: "
                f"{', '.join(channels) or 'none defined (alerts.channels)'}",
                "events",
            )
        events[event] = tuple(names)
    alr.done()
    return AlertsConfig(channels=channels, events=events)
