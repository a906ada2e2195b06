"""The verdict states its power at 2x the margin and the test rows that 80% would need (issue 21, item 5)."""

from __future__ import annotations

import numpy as np
import pytest
from test_gate_evidence import BETTER, CHAMPION, interval, steady_rails, with_evaluation

from airflow_mlops.core.evaluation import decide
from airflow_mlops.core.evaluation.power import needed_se, power_at_twice_margin, promotion_probability

MARGIN = 0.005


def simulated_promotions(true_gain: float, se: float, require: str, n: int = 200_000) -> float:
    """The gate's own rule (decision.py) on normal estimates: how often it promotes."""
    rng = np.random.default_rng(7)
    point = rng.normal(true_gain, se, n)
    low = point - 1.959964 * se
    promoted = low >= MARGIN if require == "lower_bound" else (point >= MARGIN) & (low > 0)
    return float(promoted.mean())


@pytest.mark.parametrize("require", ["point", "lower_bound"])
@pytest.mark.parametrize("se", [0.001, 0.0025, 0.004, 0.006])
@pytest.mark.parametrize("true_gain", [0.0, 0.005, 0.01])
def test_the_promotion_probability_is_the_gates_rule(require, se, true_gain):
    expected = simulated_promotions(true_gain, se, require)
    assert promotion_probability(true_gain, se, MARGIN, require, 0.95) == pytest.approx(expected, abs=0.005)


@pytest.mark.parametrize("require", ["point", "lower_bound"])
def test_the_needed_standard_error_gives_80_percent_at_twice_the_margin(require):
    se = needed_se(MARGIN, require, 0.95)
    assert simulated_promotions(2 * MARGIN, se, require) == pytest.approx(0.80, abs=0.005)


def test_a_wide_interval_says_how_many_more_test_rows_80_percent_needs(churn_config):
    config = with_evaluation(churn_config)
    # The tree families' 3 test days: a half-width about 0.0098 (se 0.005) -> power at 2x the margin ~52%.
    verdict = decide(
        config, BETTER, CHAMPION, interval(0.03, 0.0202, 0.0398, "roc_auc"), intervals=steady_rails(BETTER, CHAMPION)
    )
    (note,) = [r for r in verdict.reasons if r.startswith("power:")]
    assert "would be promoted about 52% of the time" in note
    assert "about 2.0x these clean test rows would bring it to 80%" in note and "split.test_days" in note
    assert verdict.promote  # the note informs; it never changes the decision


def test_a_narrow_interval_states_its_power_without_asking_for_rows(churn_config):
    config = with_evaluation(churn_config)
    verdict = decide(
        config, BETTER, CHAMPION, interval(0.03, 0.027, 0.033, "roc_auc"), intervals=steady_rails(BETTER, CHAMPION)
    )
    (note,) = [r for r in verdict.reasons if r.startswith("power:")]
    assert "about 100% of the time" in note and "x these clean test rows" not in note


def test_lower_bound_needs_twice_the_precision_of_point(churn_config):
    boot = interval(0.01, 0.003, 0.017, "roc_auc")
    point = power_at_twice_margin(boot, MARGIN, "point")
    lower = power_at_twice_margin(boot, MARGIN, "lower_bound")
    assert point is not None and lower is not None and lower < point
    assert needed_se(MARGIN, "lower_bound", 0.95) == pytest.approx(needed_se(MARGIN, "point", 0.95) / 2)


def test_no_interval_no_power_line(churn_config):
    config = with_evaluation(churn_config)
    verdict = decide(config, BETTER, CHAMPION, None, intervals=steady_rails(BETTER, CHAMPION))
    assert not [r for r in verdict.reasons if r.startswith("power:")]
    assert power_at_twice_margin(None, MARGIN, "point") is None
