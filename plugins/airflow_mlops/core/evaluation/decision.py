"""The verdict from the numbers alone (no I/O): every check stated, passing or failing.

The gate (``config.evaluation``):

- evidence: at least ``min_test_rows`` clean test rows and, for classification, ``min_test_events``
  of each class (binary: the positive and the negative); fewer is a REJECT before any scoring;
- the primary metric, by ``require``: ``point`` (default) promotes when the gain is at least ``margin``
  and the lower bound of its paired-bootstrap interval is above zero; ``lower_bound`` only when that
  lower bound is at least ``margin`` (a guaranteed minimum gain);
- guard rails by their interval: the regression's upper bound (minus the lower bound of the gain,
  same resamples) within the tolerance; with ``baseline_guard`` also against the model's first
  champion, so small regressions cannot accumulate over promotions (unverifiable: a REJECT);
- every floor holds; more than 1% of resamples without a value for a judged metric: no verdict on it.

Without a champion the floors alone decide. A differing input signature, an implausibly perfect
test score (target leakage) or training data older than the champion's (a backfill) is a REJECT
with the reason named. Whether a person must confirm (``evaluation.approval``) is
`borderline.approval_reasons`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.evaluation.borderline import GateNumbers, approval_reasons
from airflow_mlops.core.evaluation.leakage import leakage_check
from airflow_mlops.core.evaluation.power import power_note
from airflow_mlops.core.training import LOWER_IS_BETTER

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.evaluation.bootstrap import BootstrapResult
    from airflow_mlops.core.evaluation.panel_types import PanelResult
    from airflow_mlops.core.rows import TestRows

PROMOTE = "PROMOTE"
REJECT = "REJECT"
NO_BASELINE_PROMOTE = "NO_BASELINE_PROMOTE"
_EPS = 1e-12  # comparisons of differences tolerate floating-point noise


@dataclass(frozen=True)
class Verdict:
    decision: str  # PROMOTE | REJECT | NO_BASELINE_PROMOTE
    reasons: list[str]  # every check, passing ("PASS: ...") and failing ("FAIL: ..."), in words
    promote: bool
    # A person decides before anything moves (evaluation.approval): approve -> promote, reject or no answer -> REJECT.
    needs_approval: bool = False
    approval_reasons: list[str] = field(default_factory=list)  # why, with the numbers


@dataclass(frozen=True)
class ClassCounts:
    """Clean test rows per class (classification): a metric on a rare class is decided by its few rows."""

    counts: dict[Any, int]  # class -> rows, in the model's class order (absent classes: 0)
    positive: Any = None  # binary: the class the metrics treat as positive

    @property
    def fewest(self) -> int:
        return min(self.counts.values(), default=0)

    def short(self, need: int) -> list[Any]:
        """The classes with fewer than `need` rows."""
        return [c for c, k in self.counts.items() if k < need]

    def describe(self) -> str:
        """E.g. "412 positive ('1') and 1,788 negative ('0') test rows"."""
        if self.positive is not None and len(self.counts) == 2 and self.positive in self.counts:
            [negative] = [c for c in self.counts if c != self.positive]
            return (
                f"{self.counts[self.positive]:,} positive ({self.positive!r}) and {self.counts[negative]:,} "
                f"negative ({negative!r}) test rows"
            )
        return "test rows per class: " + ", ".join(f"{c!r} {k:,}" for c, k in self.counts.items())

    def check(self, need: int) -> tuple[bool, str]:
        """(enough, in words): every class has at least `need` rows (``evaluation.min_test_events``)."""
        short = self.short(need)
        if not short:
            return True, f"{self.describe()} >= evaluation.min_test_events ({need:,})"
        if self.positive is not None and len(self.counts) == 2:
            which = " and ".join("positive" if c == self.positive else "negative" for c in short)
            which = f"{which} {'class' if len(short) == 1 else 'classes'}"
        else:
            which = "class " + ", ".join(map(repr, short))
        return False, (
            f"{self.describe()}: fewer than evaluation.min_test_events ({need:,}) of the {which}; a metric "
            f"on so few events is decided by a handful of rows"
        )

    def summary(self) -> dict[str, Any]:
        return {"counts": {str(c): k for c, k in self.counts.items()}, "positive": self.positive}


@dataclass(frozen=True)
class BaselineEvidence:
    """``evaluation.baseline_guard``: the challenger against the model's first champion, on the clean test rows
    minus the rows that champion saw; `why` set: it could not be checked (the guard fails closed)."""

    version: str | None  # the first champion's version
    why: str | None = None  # unverified: why not
    is_champion: bool = False  # the first champion is the current one: the guard rails already compare with it
    metrics: dict[str, float] = field(default_factory=dict)  # the first champion's values on those rows
    challenger: dict[str, float] = field(default_factory=dict)  # the challenger's values on the same rows
    intervals: Mapping[str, BootstrapResult] = field(default_factory=dict)  # gain over it per guard rail
    n_rows: int = 0
    excluded: int = 0  # clean test rows dropped as seen by the first champion

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "unverified": self.why,
            "is_champion": self.is_champion,
            "first_champion": dict(self.metrics),
            "challenger": dict(self.challenger),
            "n_rows": self.n_rows,
            "excluded_seen_by_first_champion": self.excluded,
            "intervals": {m: {"gain": b.diff, "low": b.low, "high": b.high} for m, b in self.intervals.items()},
        }


def decide(
    config: PipelineConfig,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    bootstrap: BootstrapResult | None,
    *,
    intervals: Mapping[str, BootstrapResult] | None = None,
    signature_diff: Sequence[str] = (),
    leakage: Sequence[str] = (),
    window_end: str | None = None,
    champion_window_end: str | None = None,
    test_rows: TestRows | None = None,
    class_counts: ClassCounts | None = None,
    baseline: BaselineEvidence | None = None,
    panels: Sequence[PanelResult] = (),
) -> Verdict:
    """The verdict from the numbers alone (no I/O): every check is stated, passing or failing.

    `bootstrap` is the primary metric's interval; `intervals` those of the guard-rail metrics (from the
    same resamples): a guard rail without one fails. `window_end` / `champion_window_end` are the last
    days (YYYY-MM-DD) of the challenger's and the champion's training data: a challenger trained on
    older data (a backfill) never replaces the champion. `test_rows`, when given, is stated first (how
    many rows judged, how many excluded as the champion's, their days) and must hold at least
    ``evaluation.min_test_rows`` rows; `class_counts` at least ``evaluation.min_test_events`` of each
    class. `baseline`: the first champion's numbers (``evaluation.baseline_guard``; None: not checked,
    which fails when the guard is on and there is a champion). `panels`: their checks join the gate's (a
    failed one rejects) and their notes are stated (core.evaluation.panels).
    """
    ev = config.evaluation
    primary = config.metrics.primary
    intervals = intervals or {}
    checks: list[tuple[bool, str]] = []
    notes: list[str] = []

    if test_rows is not None:
        notes.append(test_rows.describe())
        enough = test_rows.n_rows >= ev.min_test_rows
        checks.append(
            (
                enough,
                f"{test_rows.n_rows:,} clean test rows {'>=' if enough else '<'} "
                f"evaluation.min_test_rows ({ev.min_test_rows:,})",
            )
        )
    if class_counts is not None:
        checks.append(class_counts.check(ev.min_test_events))

    if champion is not None:
        checks.extend(_stale_check(window_end, champion_window_end))

    if signature_diff:
        checks.append(
            (False, "the challenger's input signature differs from the champion's: " + "; ".join(signature_diff))
        )
    elif champion is not None:
        checks.append((True, "the challenger's input signature matches the champion's"))

    leak = leakage_check(config, challenger, leakage)
    if leak is not None:
        checks.append(leak)

    interval_check: tuple[bool, str] | None = None
    if champion is None:
        notes.append("no champion yet: the floors alone decide")
    else:
        primary_checks, interval_check = _primary_checks(
            primary, challenger, champion, bootstrap, ev.margin, ev.require
        )
        checks.extend(primary_checks)
        notes.extend(n for n in [power_note(bootstrap, ev.margin, ev.require)] if n)
        for metric, tolerance in ev.guard_rails.items():
            checks.append(_guard_rail_check(metric, tolerance, challenger, champion, intervals.get(metric)))
        if ev.baseline_guard:
            checks.extend(_baseline_checks(ev.guard_rails, baseline))

    if ev.floors:
        checks.extend(_floor_check(metric, floor, challenger) for metric, floor in ev.floors.items())
    elif champion is None:
        notes.append("no floors are configured (evaluation.floors): nothing bars a first model")

    for panel in panels:
        notes.extend(panel.notes)
        checks.extend(panel.checks)

    passed = all(ok for ok, _ in checks)
    if not passed:
        decision = REJECT
    elif champion is None:
        decision = NO_BASELINE_PROMOTE
    else:
        decision = PROMOTE
    reasons = notes + [f"{'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks]
    numbers = _gate_numbers(config, champion, challenger, bootstrap, intervals, checks, interval_check, promote=passed)
    why = approval_reasons(ev.approval, numbers, primary)
    reasons += [f"APPROVAL: {w}" for w in why]
    return Verdict(
        decision=decision, reasons=reasons, promote=decision != REJECT, needs_approval=bool(why), approval_reasons=why
    )


def _gate_numbers(
    config: PipelineConfig,
    champion: dict[str, float] | None,
    challenger: dict[str, float],
    bootstrap: BootstrapResult | None,
    intervals: Mapping[str, BootstrapResult],
    checks: list[tuple[bool, str]],
    interval_check: tuple[bool, str] | None,
    *,
    promote: bool,
) -> GateNumbers:
    """The numbers the approval rule reads: the gain, its interval, the guard rails that held (their worst
    regression: the upper bound of the regression's interval)."""
    if champion is None:
        return GateNumbers(has_champion=False, promote=promote)
    primary = config.metrics.primary
    ch, cp = _value(challenger, primary), _value(champion, primary)
    rails = {}
    for metric, tolerance in config.evaluation.guard_rails.items():
        interval = intervals.get(metric)
        if (
            interval is not None
            and interval.usable
            and math.isfinite(interval.low)
            and -interval.low <= tolerance + _EPS
        ):
            rails[metric] = (-interval.low, tolerance)
    only_interval_failed = (
        interval_check is not None
        and not interval_check[0]
        and all(ok for ok, _ in (check for check in checks if check is not interval_check))
    )
    return GateNumbers(
        has_champion=True,
        promote=promote,
        gain=None if ch is None or cp is None else _gain(primary, ch, cp),
        low=None if bootstrap is None else bootstrap.low,
        confidence=None if bootstrap is None else bootstrap.confidence,
        margin=config.evaluation.margin,
        rails=rails,
        only_interval_failed=only_interval_failed,
        require=config.evaluation.require,
    )


def unscored_verdict(
    test_rows: TestRows,
    why: str,
    *,
    has_champion: bool,
    window_end: str | None = None,
    champion_window_end: str | None = None,
    passed: Sequence[str] = (),
) -> Verdict:
    """REJECT without scores (too few clean test rows or events): `why`, the evidence checks that `passed`,
    and the checks that need no scores."""
    checks = [(True, text) for text in passed] + [(False, why)]
    if has_champion:
        checks.extend(_stale_check(window_end, champion_window_end))
    reasons = [test_rows.describe()] + [f"{'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks]
    return Verdict(decision=REJECT, reasons=reasons, promote=False)


def _stale_check(window_end: str | None, champion_window_end: str | None) -> list[tuple[bool, str]]:
    if not (window_end and champion_window_end):
        return []
    if window_end < champion_window_end:
        return [
            (
                False,
                f"stale data: the challenger was trained on data up to {window_end}, older than the "
                f"champion's (up to {champion_window_end}); a backfill never replaces a newer champion",
            )
        ]
    return [
        (
            True,
            f"the challenger's data (up to {window_end}) is not older than the champion's "
            f"(up to {champion_window_end})",
        )
    ]


def _value(metrics: dict[str, float], name: str) -> float | None:
    value = metrics.get(name)
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _gain(metric: str, challenger: float, champion: float) -> float:
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def _change_words(gain: float) -> str:
    if abs(gain) <= _EPS:
        return "did not change"
    return f"improved by {gain:.4f}" if gain > 0 else f"regressed by {-gain:.4f}"


def _primary_checks(
    metric: str,
    challenger: dict[str, float],
    champion: dict[str, float],
    bootstrap: BootstrapResult | None,
    margin: float,
    require: str = "point",
) -> tuple[list[tuple[bool, str]], tuple[bool, str] | None]:
    """The primary metric's checks, and among them the one about the interval (None: none is about it)."""
    ch, cp = _value(challenger, metric), _value(champion, metric)
    if ch is None or cp is None:
        missing = "challenger" if ch is None else "champion"
        return [(False, f"primary metric {metric} has no value for the {missing}: the models cannot be compared")], None
    gain = _gain(metric, ch, cp)
    values = f"champion {cp:.4f} -> challenger {ch:.4f}"
    margin_ok = gain >= margin - _EPS
    if bootstrap is None:
        return [
            (margin_ok, f"{metric} {_change_words(gain)} ({values}) {'>=' if margin_ok else '<'} margin {margin:g}"),
            (False, f"no paired-bootstrap interval for {metric}: the gain's confidence cannot be established"),
        ], None
    if not bootstrap.usable or not math.isfinite(bootstrap.low):
        return [
            (
                False,
                f"{metric} {_change_words(gain)} ({values}); {bootstrap.unusable_text()}; make sure every "
                f"resample can compute it (more test rows, split.test_days or split.test_size)",
            )
        ], None
    ci = f"{bootstrap.confidence:.0%} CI {bootstrap.low:.4f}..{bootstrap.high:.4f}"
    if require == "lower_bound":
        clears = bootstrap.low >= margin - _EPS
        check = (
            clears,
            f"{metric} {_change_words(gain)} ({ci}; {values}); the lower bound {bootstrap.low:.4f} "
            + (
                f">= margin {margin:g}: a gain of at least the margin is established (evaluation.require: lower_bound)"
                if clears
                else f"< margin {margin:g}: a gain of at least the margin is not established (evaluation.require: "
                f"lower_bound promotes only when the interval's lower bound clears the margin)"
                + _more_rows_advice(gain, bootstrap, margin)
            ),
        )
        return [check], check
    significant = bootstrap.low > 0
    interval_check = (
        significant,
        f"the {ci} of the {metric} gain lies above zero: the gain is significant"
        if significant
        else f"the {ci} of the {metric} gain does not lie above zero: the gain is not significant"
        + (_more_rows_advice(gain, bootstrap, 0.0) if margin_ok else ""),
    )
    return [
        (margin_ok, f"{metric} {_change_words(gain)} ({ci}; {values}) {'>=' if margin_ok else '<'} margin {margin:g}"),
        interval_check,
    ], interval_check


def _more_rows_advice(gain: float, bootstrap: BootstrapResult, bar: float) -> str:
    """How many times today's test rows would narrow the interval enough to establish a gain of this size over
    `bar` (the half-width shrinks as 1/sqrt(rows)); "" when the point gain itself does not clear the bar."""
    half = (bootstrap.high - bootstrap.low) / 2
    over = gain - bar
    if over <= _EPS or half <= over:
        return ""
    return (
        f"; the interval's half-width {half:.4f} is wider than the gain over {bar:g} ({over:.4f}): about "
        f"{(half / over) ** 2:.1f}x today's clean test rows would establish a gain this size (lengthen "
        f"split.test_days or split.test_size)"
    )


def _guard_rail_check(
    metric: str,
    tolerance: float,
    challenger: dict[str, float],
    champion: dict[str, float],
    interval: BootstrapResult | None,
    against: str = "",
) -> tuple[bool, str]:
    """Passes when the upper bound of the regression's interval (minus the gain's lower bound) is within
    `tolerance`; the point values are stated too. `against`: whom the challenger is compared with, in words."""
    ch, cp = _value(challenger, metric), _value(champion, metric)
    who = "first champion" if against else "champion"
    if ch is None or cp is None:
        missing = "challenger" if ch is None else who
        return False, f"guard rail {metric}{_suffix(against)}: no value for the {missing}"
    gain = _gain(metric, ch, cp)
    point = f"{metric}{_suffix(against)} {_change_words(gain)} ({who} {cp:.4f} -> challenger {ch:.4f})"
    if interval is None:
        return (
            False,
            f"{point}; no interval of its change: how far it may have regressed is unknown (guard rail "
            f"tolerance {tolerance:g})",
        )
    if not interval.usable or not math.isfinite(interval.low):
        return False, f"{point}; guard rail: {interval.unusable_text()}"
    worst = -interval.low
    ci = f"{interval.confidence:.0%} CI of the gain {interval.low:.4f}..{interval.high:.4f}"
    if worst > tolerance + _EPS:
        return False, (
            f"{point}; its regression may be as large as {worst:.4f} ({ci}) > guard rail tolerance {tolerance:g}"
        )
    if worst > _EPS:
        return True, f"{point}; its regression is at most {worst:.4f} ({ci}) <= guard rail tolerance {tolerance:g}"
    return True, f"{point}; no regression within its {ci}, guard rail tolerance {tolerance:g}"


def _suffix(against: str) -> str:
    return f" against the {against}" if against else ""


def _baseline_checks(guard_rails: Mapping[str, float], baseline: BaselineEvidence | None) -> list[tuple[bool, str]]:
    """evaluation.baseline_guard: every guard rail against the model's first champion too; unverifiable fails."""
    if baseline is None:
        return [
            (
                False,
                "baseline guard: unverified: the model's first champion was not looked up "
                "(evaluation.baseline_guard is on); the champion stays",
            )
        ]
    if baseline.why is not None:
        return [(False, f"baseline guard: unverified: {baseline.why}; the champion stays")]
    if baseline.is_champion:
        return [
            (
                True,
                f"baseline guard: the first champion (version {baseline.version}) is the current champion: "
                f"the guard rails above compare with it",
            )
        ]
    if not guard_rails:
        return [
            (
                True,
                f"baseline guard: no guard rails are configured (evaluation.guard_rails) to compare with the "
                f"first champion (version {baseline.version})",
            )
        ]
    against = f"first champion (version {baseline.version}, on {baseline.n_rows:,} test rows it never saw)"
    return [
        _guard_rail_check(
            metric, tolerance, baseline.challenger, baseline.metrics, baseline.intervals.get(metric), against=against
        )
        for metric, tolerance in guard_rails.items()
    ]


def _floor_check(metric: str, floor: float, challenger: dict[str, float]) -> tuple[bool, str]:
    value = _value(challenger, metric)
    if value is None:
        return False, f"floor {metric}: the challenger has no value for it"
    if metric in LOWER_IS_BETTER:
        ok = value <= floor
        return ok, f"{metric} {value:.4f} {'<=' if ok else '>'} floor {floor:g} (a maximum: lower is better)"
    ok = value >= floor
    return ok, f"{metric} {value:.4f} {'>=' if ok else '<'} floor {floor:g}"
