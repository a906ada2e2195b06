"""What the gate's test rows can see: how often a true gain of twice the margin would be promoted.

From today's paired interval alone (no I/O). The interval's half-width gives the gain's standard
error (se = half-width / z); the gate promotes when, under ``require: point``, the point gain
clears ``max(margin, z * se)`` (at least the margin, and a lower bound above zero), or under
``require: lower_bound`` ``margin + z * se``. A true gain g is then promoted with probability
``Phi((g - bar) / se)``. The half-width shrinks as 1/sqrt(rows), so the rows that would bring the
power at 2x the margin to 80% are today's times (se / se_needed)^2.

The decision-quality benchmark (docs/benchmarks.md) measured why this matters: forests and
boosting on 3 test days of the churn stream promoted a true gain of 2x the margin 59-61% of the
time; the same families on 6 test days 78-93%.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_mlops.core.evaluation.bootstrap import BootstrapResult

#: The power the note asks for at a true gain of twice the margin.
TARGET_POWER = 0.8
_NORMAL = NormalDist()


def promotion_probability(true_gain: float, se: float, margin: float, require: str, confidence: float) -> float:
    """The chance the gate promotes a challenger whose true gain is `true_gain`, the gain's estimate normal with `se`."""
    z = _NORMAL.inv_cdf(0.5 + confidence / 2)
    bar = margin + z * se if require == "lower_bound" else max(margin, z * se)
    return _NORMAL.cdf((true_gain - bar) / se)


def needed_se(margin: float, require: str, confidence: float, power: float = TARGET_POWER) -> float:
    """The largest standard error at which a true gain of 2x `margin` is promoted with `power`."""
    z, z_power = _NORMAL.inv_cdf(0.5 + confidence / 2), _NORMAL.inv_cdf(power)
    # point: the bar is z*se once z*se > margin, which holds at this se; lower_bound: margin + z*se.
    return margin / (z + z_power) if require == "lower_bound" else 2 * margin / (z + z_power)


def power_at_twice_margin(bootstrap: BootstrapResult | None, margin: float, require: str) -> float | None:
    """The chance a true gain of 2x `margin` is promoted with rows like these; None without a usable interval."""
    se = _standard_error(bootstrap)
    if se is None or bootstrap is None or margin <= 0:
        return None
    return promotion_probability(2 * margin, se, margin, require, bootstrap.confidence)


def power_note(bootstrap: BootstrapResult | None, margin: float, require: str) -> str | None:
    """One line for the verdict: the power at 2x the margin, and the rows 80% would need; None without an interval."""
    power = power_at_twice_margin(bootstrap, margin, require)
    se = _standard_error(bootstrap)
    if power is None or se is None or bootstrap is None:
        return None
    head = (
        f"power: with these clean test rows a true gain of 2x the margin ({2 * margin:g}) would be promoted about "
        f"{power:.0%} of the time (the interval's half-width {(bootstrap.high - bootstrap.low) / 2:.4f})"
    )
    if power >= TARGET_POWER:
        return head
    factor = (se / needed_se(margin, require, bootstrap.confidence)) ** 2
    return (
        f"{head}; about {factor:.1f}x these clean test rows would bring it to {TARGET_POWER:.0%} (lengthen "
        f"split.test_days or split.test_size): below that, real gains are often rejected"
    )


def _standard_error(bootstrap: BootstrapResult | None) -> float | None:
    """The gain's standard error read off its interval (half-width / z); None when there is no usable interval."""
    if (
        bootstrap is None
        or not bootstrap.usable
        or not (math.isfinite(bootstrap.low) and math.isfinite(bootstrap.high))
    ):
        return None
    se = (bootstrap.high - bootstrap.low) / (2 * _NORMAL.inv_cdf(0.5 + bootstrap.confidence / 2))
    return se if se > 0 else None
