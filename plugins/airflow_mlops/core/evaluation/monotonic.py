"""Declared monotonic features (``features[].monotonic: increasing|decreasing``), judged by individual conditional
expectation: each of up to MONOTONIC_ROWS test rows is scored with the feature set to each point of its 5%..95%
quantile grid (core.evaluation.perturb.grid); a row breaks the declaration when its score, anywhere along the grid,
falls below (increasing) or rises above (decreasing) its value at a lower grid point by more than
`evaluation.robustness.monotonic_tolerance` (a probability; regression: a fraction of the test target's std).
The challenger's share of such rows must stay within `max_monotonic_violations`, first models too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from airflow_mlops.core.evaluation import perturb

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.evaluation.panel_types import PanelInputs, PanelResult

#: Rows (the first of the panel's seeded sample) whose individual conditional expectation is traced per feature.
MONOTONIC_ROWS = 300
#: `score(which, rows)`: "challenger" or "champion"'s direction score on `rows` (1-D).
Scorer = Callable[[str, "pd.DataFrame"], "np.ndarray"]
_EPS = 1e-12


def monotonic_checks(inputs: PanelInputs, rows: pd.DataFrame, score: Scorer, result: PanelResult) -> None:
    """Per declared monotonic feature, the share of `rows` whose score (`score(which, rows)`: the positive-class
    probability or the prediction) moves the wrong way along its grid; the challenger's share is a gate check."""
    import numpy as np

    config = inputs.config
    rb = config.evaluation.robustness
    declared = [(f.name, f.monotonic) for f in config.features if f.monotonic]
    if not declared:
        return
    if config.task == "multiclass_classification":
        names = ", ".join(name for name, _ in declared)
        result.notes.append(
            f"robustness: monotonic {names} not checked: a multiclass model's score has no single direction to "
            f"rise or fall in; drop the declaration or model the classes as a binary or regression task"
        )
        return
    tolerance = rb.monotonic_tolerance
    if not config.is_classification:
        tolerance *= float(np.std(inputs.y.astype(float)))
    result.detail["monotonic"] = {}
    for name, direction in declared:
        values = perturb.numeric_values(inputs.frame[name]) if name in inputs.frame else None
        points = np.empty(0) if values is None else perturb.grid(values)
        if len(points) < 2:
            result.notes.append(
                f"robustness: monotonic {name} not checked: its 5%..95% quantiles on the test rows hold "
                f"{len(points)} distinct value(s), no grid to move along"
            )
            continue
        stacked = perturb.on_grid(rows, name, points)
        shares, curves = {}, {}
        models = ["challenger", "champion"] if inputs.champion is not None else ["challenger"]
        for which in models:
            ice = score(which, stacked).reshape(len(points), len(rows)).T
            toward = ice if direction == "increasing" else -ice
            setback = (np.maximum.accumulate(toward, axis=1) - toward).max(axis=1)
            shares[which] = float((setback > tolerance + _EPS).mean())
            curves[which] = [float(v) for v in ice.mean(axis=0)]
        limit = rb.max_monotonic_violations
        passed = shares["challenger"] <= limit + _EPS
        label = f"rows whose score {'falls' if direction == 'increasing' else 'rises'} as {name} rises ({direction})"
        theirs = shares.get("champion")
        result.table.append(
            {
                "check": f"monotonic:{name}",
                "label": label,
                "challenger": shares["challenger"],
                "champion": theirs,
                "difference": None if theirs is None else shares["challenger"] - theirs,
                "low": None,
                "high": None,
                "limit": limit,
                "passed": passed,
            }
        )
        result.metrics.update({f"monotonic.{name}.{which}": share for which, share in shares.items()})
        result.detail["monotonic"][name] = {
            "direction": direction,
            "rows": len(rows),
            "grid": [float(p) for p in points],
            "tolerance": tolerance,
            "mean_score": curves,
        }
        champion = "" if "champion" not in shares else f", champion {shares['champion']:.1%}"
        what = (
            f"robustness: {name} is declared {direction}: the challenger's score moves against it by more than "
            f"{tolerance:.3g} on its grid {points[0]:g}..{points[-1]:g} ({len(points)} points) for "
            f"{shares['challenger']:.1%} of {len(rows):,} rows{champion}"
        )
        if passed:
            result.checks.append((True, f"{what} <= robustness.max_monotonic_violations {limit:g}"))
        else:
            result.checks.append(
                (
                    False,
                    f"{what} > robustness.max_monotonic_violations {limit:g}: it breaks the declared direction; "
                    f"constrain the model (e.g. HistGradientBoosting's monotonic_cst) or correct features[{name}].monotonic",
                )
            )
