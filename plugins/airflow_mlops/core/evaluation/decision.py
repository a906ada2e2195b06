"""The verdict from the numbers alone (no I/O): every check stated, passing or failing.

The gate (``config.evaluation``): promote only when the primary metric improves by at least
``margin`` and the lower bound of the paired-bootstrap interval of the gain is above zero, no
guard-rail metric regresses past its tolerance, and every floor holds. Without a champion the
floors alone decide. A differing input signature, an implausibly perfect test score (target
leakage) or training data older than the champion's (a backfill) is a REJECT with the reason named.
Whether a person must confirm (``evaluation.approval``) is `borderline.approval_reasons`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_mlops.core.evaluation.borderline import GateNumbers, approval_reasons
from airflow_mlops.core.training import LOWER_IS_BETTER

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.evaluation.bootstrap import BootstrapResult
    from airflow_mlops.core.rows import TestRows

PROMOTE = "PROMOTE"
REJECT = "REJECT"
NO_BASELINE_PROMOTE = "NO_BASELINE_PROMOTE"
#: Metrics whose perfect value is 1: the only ones the leakage threshold applies to.
BOUNDED_METRICS = frozenset({"roc_auc", "accuracy", "f1", "precision", "recall", "r2"})
_EPS = 1e-12  # comparisons of differences tolerate floating-point noise


@dataclass(frozen=True)
class Verdict:
    decision: str  # PROMOTE | REJECT | NO_BASELINE_PROMOTE
    reasons: list[str]  # every check, passing ("PASS: ...") and failing ("FAIL: ..."), in words
    promote: bool
    # A person decides before anything moves (evaluation.approval): approve -> promote, reject or no answer -> REJECT.
    needs_approval: bool = False
    approval_reasons: list[str] = field(default_factory=list)  # why, with the numbers


def decide(
    config: PipelineConfig,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    bootstrap: BootstrapResult | None,
    *,
    signature_diff: Sequence[str] = (),
    leakage: Sequence[str] = (),
    window_end: str | None = None,
    champion_window_end: str | None = None,
    test_rows: TestRows | None = None,
) -> Verdict:
    """The verdict from the numbers alone (no I/O): every check is stated, passing or failing.

    `window_end` / `champion_window_end` are the last days (YYYY-MM-DD) of the challenger's and the
    champion's training data: a challenger trained on older data (a backfill) never replaces the champion.
    `test_rows`, when given, is stated first (how many rows judged, how many excluded as the
    champion's, their days) and must hold at least ``evaluation.min_test_rows`` rows.
    """
    ev = config.evaluation
    primary = config.metrics.primary
    checks: list[tuple[bool, str]] = []
    notes: list[str] = []

    if test_rows is not None:
        notes.append(test_rows.describe())
        enough = test_rows.n_rows >= ev.min_test_rows
        checks.append((enough, f"{test_rows.n_rows:,} clean test rows {'>=' if enough else '<'} "
                               f"evaluation.min_test_rows ({ev.min_test_rows:,})"))

    if champion is not None:
        checks.extend(_stale_check(window_end, champion_window_end))

    if signature_diff:
        checks.append((False, "the challenger's input signature differs from the champion's: " + "; ".join(signature_diff)))
    elif champion is not None:
        checks.append((True, "the challenger's input signature matches the champion's"))

    leak = _leakage_check(config, challenger, leakage)
    if leak is not None:
        checks.append(leak)

    interval_check: tuple[bool, str] | None = None
    if champion is None:
        notes.append("no champion yet: the floors alone decide")
    else:
        primary_checks = _primary_checks(primary, challenger, champion, bootstrap, ev.margin)
        checks.extend(primary_checks)
        interval_check = primary_checks[1] if bootstrap is not None and len(primary_checks) == 2 else None
        for metric, tolerance in ev.guard_rails.items():
            checks.append(_guard_rail_check(metric, tolerance, challenger, champion))

    if ev.floors:
        checks.extend(_floor_check(metric, floor, challenger) for metric, floor in ev.floors.items())
    elif champion is None:
        notes.append("no floors are configured (evaluation.floors): nothing bars a first model")

    passed = all(ok for ok, _ in checks)
    if not passed:
        decision = REJECT
    elif champion is None:
        decision = NO_BASELINE_PROMOTE
    else:
        decision = PROMOTE
    reasons = notes + [f"{'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks]
    numbers = _gate_numbers(config, challenger, champion, bootstrap, checks, interval_check, promote=passed)
    why = approval_reasons(ev.approval, numbers, primary)
    reasons += [f"APPROVAL: {w}" for w in why]
    return Verdict(decision=decision, reasons=reasons, promote=decision != REJECT, needs_approval=bool(why),
                   approval_reasons=why)


def _gate_numbers(
    config: PipelineConfig,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    bootstrap: BootstrapResult | None,
    checks: list[tuple[bool, str]],
    interval_check: tuple[bool, str] | None,
    *,
    promote: bool,
) -> GateNumbers:
    """The numbers the approval rule reads: the gain, its interval, the guard rails that held."""
    if champion is None:
        return GateNumbers(has_champion=False, promote=promote)
    primary = config.metrics.primary
    ch, cp = _value(challenger, primary), _value(champion, primary)
    rails = {}
    for metric, tolerance in config.evaluation.guard_rails.items():
        a, b = _value(challenger, metric), _value(champion, metric)
        if a is not None and b is not None and -_gain(metric, a, b) <= tolerance + _EPS:
            rails[metric] = (-_gain(metric, a, b), tolerance)
    only_interval_failed = (
        interval_check is not None and not interval_check[0]
        and all(ok for ok, _ in (check for check in checks if check is not interval_check))
    )
    return GateNumbers(
        has_champion=True, promote=promote,
        gain=None if ch is None or cp is None else _gain(primary, ch, cp),
        low=None if bootstrap is None else bootstrap.low,
        confidence=None if bootstrap is None else bootstrap.confidence,
        margin=config.evaluation.margin, rails=rails, only_interval_failed=only_interval_failed,
    )


def unscored_verdict(
    test_rows: TestRows,
    why: str,
    *,
    has_champion: bool,
    window_end: str | None = None,
    champion_window_end: str | None = None,
) -> Verdict:
    """REJECT without scores (too few clean test rows): `why`, and the checks that need no scores."""
    checks = [(False, why)]
    if has_champion:
        checks.extend(_stale_check(window_end, champion_window_end))
    reasons = [test_rows.describe()] + [f"{'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks]
    return Verdict(decision=REJECT, reasons=reasons, promote=False)


def _stale_check(window_end: str | None, champion_window_end: str | None) -> list[tuple[bool, str]]:
    if not (window_end and champion_window_end):
        return []
    if window_end < champion_window_end:
        return [(False, f"stale data: the challenger was trained on data up to {window_end}, older than the "
                        f"champion's (up to {champion_window_end}); a backfill never replaces a newer champion")]
    return [(True, f"the challenger's data (up to {window_end}) is not older than the champion's "
                   f"(up to {champion_window_end})")]


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
) -> list[tuple[bool, str]]:
    ch, cp = _value(challenger, metric), _value(champion, metric)
    if ch is None or cp is None:
        missing = "challenger" if ch is None else "champion"
        return [(False, f"primary metric {metric} has no value for the {missing}: the models cannot be compared")]
    gain = _gain(metric, ch, cp)
    values = f"champion {cp:.4f} -> challenger {ch:.4f}"
    if bootstrap is None:
        margin_ok = gain >= margin - _EPS
        return [
            (margin_ok, f"{metric} {_change_words(gain)} ({values}) {'>=' if margin_ok else '<'} margin {margin:g}"),
            (False, f"no paired-bootstrap interval for {metric}: the gain's confidence cannot be established"),
        ]
    ci = f"{bootstrap.confidence:.0%} CI {bootstrap.low:.4f}..{bootstrap.high:.4f}"
    margin_ok = gain >= margin - _EPS
    significant = bootstrap.low > 0
    return [
        (margin_ok, f"{metric} {_change_words(gain)} ({ci}; {values}) {'>=' if margin_ok else '<'} margin {margin:g}"),
        (
            significant,
            f"the {ci} of the {metric} gain lies above zero: the gain is significant"
            if significant
            else f"the {ci} of the {metric} gain does not lie above zero: the gain is not significant",
        ),
    ]


def _guard_rail_check(
    metric: str, tolerance: float, challenger: dict[str, float], champion: dict[str, float]
) -> tuple[bool, str]:
    ch, cp = _value(challenger, metric), _value(champion, metric)
    if ch is None or cp is None:
        missing = "challenger" if ch is None else "champion"
        return False, f"guard rail {metric}: no value for the {missing}"
    regression = -_gain(metric, ch, cp)
    values = f"champion {cp:.4f} -> challenger {ch:.4f}"
    if regression > tolerance + _EPS:
        return False, f"{metric} regressed by {regression:.4f} > tolerance {tolerance:g} ({values})"
    if regression > _EPS:
        return True, f"{metric} regressed by {regression:.4f} <= tolerance {tolerance:g} ({values})"
    return True, f"{metric} {_change_words(-regression)}, within guard rail tolerance {tolerance:g} ({values})"


def _floor_check(metric: str, floor: float, challenger: dict[str, float]) -> tuple[bool, str]:
    value = _value(challenger, metric)
    if value is None:
        return False, f"floor {metric}: the challenger has no value for it"
    if metric in LOWER_IS_BETTER:
        ok = value <= floor
        return ok, f"{metric} {value:.4f} {'<=' if ok else '>'} floor {floor:g} (a maximum: lower is better)"
    ok = value >= floor
    return ok, f"{metric} {value:.4f} {'>=' if ok else '<'} floor {floor:g}"


def implausibly_perfect(config: PipelineConfig, metrics: dict[str, float]) -> bool:
    """True when the test-set primary score reaches evaluation.leakage_threshold (bounded metrics only)."""
    threshold = config.evaluation.leakage_threshold
    primary = config.metrics.primary
    value = _value(metrics, primary)
    return threshold is not None and primary in BOUNDED_METRICS and value is not None and value >= threshold


def _leakage_check(config: PipelineConfig, challenger: dict[str, float], leakage: Sequence[str]) -> tuple[bool, str] | None:
    primary = config.metrics.primary
    threshold = config.evaluation.leakage_threshold
    value = _value(challenger, primary)
    if implausibly_perfect(config, challenger) or leakage:
        if leakage:
            why = (
                f"suspected target leakage through feature(s) {', '.join(leakage)}: remove them from the features "
                f"or fix how they are computed (they must not be derived from the label)"
            )
        else:
            why = (
                "no single feature explains it: check for rows shared between the training data and the test rows, "
                "or a combination of features derived from the label"
            )
        shown = "n/a" if value is None else f"{value:.4f}"
        limit = "" if threshold is None else f" >= leakage threshold {threshold:g}"
        return False, f"test-set {primary} {shown}{limit} is implausibly good; {why}"
    if threshold is None or primary not in BOUNDED_METRICS or value is None:
        return None
    return True, f"test-set {primary} {value:.4f} < leakage threshold {threshold:g}: no sign of target leakage"
