"""Model validation beyond one number: the panels that judge both models on the gate's own test rows.

Each panel (``slices``, ``fairness``, ``robustness``, ``importance``) reads `PanelInputs` and returns a
`PanelResult`: gate checks (a failing one rejects the challenger, with its reason), notes (warnings and
"insufficient evidence", shown, never blocking), a table for verdict.json / the Models page, a one-line
summary for version tags and `airflow-mlops status`, and metrics for the MLflow run. A panel that cannot
judge says why; it never crashes the gate (`run_panels`): a guarding panel that fails to run fails closed (its
check says "unverified" and why, and the challenger is rejected); importance, which only warns, says so in a note.

Intervals use the gate's own paired resamples (`PanelInputs.resample`): the same seed, classes and rows, so
a slice's interval and the overall one come from the same draws.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from airflow_mlops.core.evaluation import fairness, importance, robustness, slices
from airflow_mlops.core.evaluation.panel_types import PanelInputs, PanelResult

if TYPE_CHECKING:
    from pathlib import Path


log = logging.getLogger(__name__)


Run = Callable[[PanelInputs], PanelResult | None]  # None: the config leaves the panel off
Plot = Callable[[PanelResult, "Path"], list["Path"]]  # the PNGs written into the folder

#: name -> (run, plot, guards: a failure to run rejects), in the verdict's order.
PANELS: dict[str, tuple[Run, Plot, bool]] = {
    "slices": (slices.run, slices.plot, True),
    "fairness": (fairness.run, fairness.plot, True),
    "robustness": (robustness.run, robustness.plot, True),
    "importance": (importance.run, importance.plot, False),
}


def run_panels(inputs: PanelInputs) -> list[PanelResult]:
    """Every panel the config turns on. One that fails to run says why: unverified (rejects) when it guards.

    The panels call the models many times on a few thousand rows each: on one thread (OpenMP and BLAS), since
    spreading such short calls over threads costs more than it saves, and on a busy worker a boosting model's
    idle threads spin (measured under load: 1.1 s against 77 ms per call of hist gradient boosting on 1,200 rows).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _run_each(inputs)


def _run_each(inputs: PanelInputs) -> list[PanelResult]:
    out = []
    for name, (run, _, guards) in PANELS.items():
        try:
            result = run(inputs)
        except Exception as exc:  # a panel never crashes the gate: it says it could not judge, and why
            log.warning("the %s panel could not run: %s", name, exc, exc_info=True)
            why = f"{name}: unverified, the panel failed to run ({type(exc).__name__}: {exc})"
            result = PanelResult(name, checks=[(False, why)], summary="unverified") if guards else None
            result = result or PanelResult(name, notes=[why], summary="not measured")
        if result is not None:
            log.info("%s: %s", name, result.summary or "done")
            out.append(result)
    return out


def plot_panels(results: list[PanelResult], folder: Path) -> list[Path]:
    """The PNG charts of `results`, written into `folder` (a chart that fails is logged, never fatal)."""
    written: list[Path] = []
    for result in results:
        _, plot, _ = PANELS[result.name]
        try:
            written.extend(plot(result, folder))
        except Exception as exc:
            log.warning("the %s chart could not be drawn: %s", result.name, exc)
    return written
