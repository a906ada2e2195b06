"""When a promotion waits for a person (``evaluation.approval``): the rule, from the gate's numbers alone.

``borderline`` asks a person when the challenger passes the margin on the point estimate and, with
the bar the interval must clear (zero under ``evaluation.require: point``, the margin under
``lower_bound``),

- the lower bound of the gain's interval clears the bar by no more than ``approval.band`` (the gate
  promotes; a person confirms), or
- the lower bound misses the bar by no more than ``approval.band``, and every other check passed
  (the gate alone would reject; a person may approve: the gain is real on the point estimate and
  the doubt is within the band), or
- the gate promotes and a guard-rail metric may have regressed (the upper bound of its interval)
  by the last 20% of its tolerance or more.

``always`` asks for every would-be promotion (a first model too) and for the borderline rejects above.
``never`` asks nobody. Without a champion there is no interval: only ``always`` asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_mlops.core.config import ApprovalConfig

#: A guard rail whose regression reached this share of its tolerance (its last 20%) is borderline.
GUARD_RAIL_BORDER = 0.8
_EPS = 1e-12  # the same floating-point tolerance as the gate's comparisons


class GateNumbers(NamedTuple):
    """What the approval rule reads from a verdict."""

    has_champion: bool
    promote: bool  # the gate's own decision
    gain: float | None = None  # primary-metric gain of the challenger over the champion (positive: better)
    low: float | None = None  # the lower bound of the gain's interval
    confidence: float | None = None  # of that interval
    margin: float = 0.0
    # guard-rail metric -> (worst regression: the upper bound of its interval, tolerance), rails that held
    rails: Mapping[str, tuple[float, float]] = {}
    only_interval_failed: bool = False  # every check passed except the interval's (above zero / clears the margin)
    require: str = "point"  # evaluation.require: the bar the lower bound must clear is zero (point) or the margin


def approval_reasons(approval: ApprovalConfig, numbers: GateNumbers, primary: str) -> list[str]:
    """Why a person must decide (the numbers in words); empty when the gate decides alone."""
    if approval.mode == "never":
        return []
    n = numbers
    interval = f"the {n.confidence:.0%} interval" if n.confidence is not None else "the interval"
    band = approval.band
    passes_margin = n.gain is not None and n.gain >= n.margin - _EPS
    on_margin = n.require == "lower_bound"
    bar = n.margin if on_margin else 0.0
    bar_words = f"the margin {n.margin:g}" if on_margin else "zero"
    why: list[str] = []
    if on_margin:  # the lower bound misses the margin, by at most the band
        missed = n.low is not None and bar - band - _EPS <= n.low < bar - _EPS
    else:  # at or below zero, by at most the band
        missed = n.low is not None and -band - _EPS <= n.low <= _EPS
    borderline_reject = not n.promote and n.has_champion and n.only_interval_failed and passes_margin and missed
    if borderline_reject:
        why.append(
            f"the {primary} gain {n.gain:.4f} passes the margin {n.margin:g}, but the lower bound of {interval}, "
            f"{n.low:.4f}, {'is below the margin' if on_margin else 'is not above zero'}: it is within "
            f"evaluation.approval.band {band:g} of {bar_words}, so the gate's REJECT waits for a person, who may approve"
        )
    if n.promote and n.has_champion:
        cleared_by = None if n.low is None else n.low - bar
        if cleared_by is not None and passes_margin and (-_EPS if on_margin else _EPS) < cleared_by <= band + _EPS:
            why.append(
                f"the lower bound of {interval} of the {primary} gain, {n.low:.4f}, is within "
                f"evaluation.approval.band {band:g} of {bar_words}"
            )
    if (n.promote or borderline_reject) and n.has_champion:
        for metric, (regression, tolerance) in n.rails.items():
            if tolerance > 0 and regression >= GUARD_RAIL_BORDER * tolerance - _EPS:
                why.append(
                    f"guard rail {metric} may have regressed by up to {regression:.4f} (the upper bound of its "
                    f"interval), {regression / tolerance:.0%} of its tolerance {tolerance:g} (the last "
                    f"{1 - GUARD_RAIL_BORDER:.0%} is borderline)"
                )
    if approval.mode == "always" and n.promote:
        why.insert(0, "evaluation.approval is always: every promotion waits for a person")
    return why
