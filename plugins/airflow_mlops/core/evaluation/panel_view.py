"""The gate's panels (slices, importance, robustness, fairness) as a person reads them: the same order and words on
the Models page, in the evaluation's report.html and in `airflow-mlops status`.

Reads the JSON the panels write (PanelResult.to_dict(), kept in verdict.json under "panels"); plain data in, plain
data out, no I/O. What a verdict does not hold is not invented: an older verdict, or one with the panels off, has
no panels, and nothing is shown for them.
"""

from __future__ import annotations

import math
from typing import Any

#: The order the panels are shown in: the two every verdict has first.
SHOWN_ORDER = ("slices", "importance", "robustness", "fairness")
#: `status` always names these two once a verdict has any panel (the worst slice, the robustness figure).
STATUS_PANELS = ("slices", "robustness")
#: A table shows this many rows (every single-column slice and a few crossings); the rest fold under "more".
SHOWN_ROWS = 20
NOT_MEASURED = "not measured"

_SLICE_RANK = {"regresses": 0, "holds": 1, "reported": 1, "insufficient evidence": 2}
_FAIRNESS_RANK = {"over limit": 0, "worsens": 0, "holds": 1, "reported": 1, "insufficient evidence": 2}


def shown_panels(panels: Any) -> list[dict[str, Any]]:
    """The panels of a verdict that can be shown, in SHOWN_ORDER (then any other): each a dict with a name.

    `panels`: verdict.json's "panels" ({name: dict}); None, {} or anything else: none (say nothing)."""
    if not isinstance(panels, dict):
        return []
    found = [
        {**value, "name": str(value.get("name") or key)}
        for key, value in panels.items()
        if isinstance(value, dict) and (value.get("summary") or value.get("table") or value.get("checks"))
    ]
    order = {name: i for i, name in enumerate(SHOWN_ORDER)}
    return sorted(found, key=lambda p: order.get(p["name"], len(order)))


def rows_of(panel: dict[str, Any]) -> list[dict[str, Any]]:
    """A panel's table rows (dicts only)."""
    table = panel.get("table")
    return [row for row in table if isinstance(row, dict)] if isinstance(table, list) else []


def slices_worst_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slices in reading order: regressions first, then the judged ones by gain (worst first), then the ones too
    small to judge (largest first). Without a champion ("reported"), by the challenger's own value, worst first."""
    from airflow_mlops.core.training.metrics import LOWER_IS_BETTER

    def key(row: dict[str, Any]) -> tuple:
        status = str(row.get("status") or "")
        rows_count = _finite(row.get("rows")) or 0.0
        if status == "insufficient evidence":  # their numbers decide nothing: largest first
            return (_SLICE_RANK[status], -rows_count, str(row.get("slice") or ""))
        gain = _finite(row.get("gain"))
        if gain is None and status == "reported":
            value = _finite(row.get("challenger"))
            gain = None if value is None else (-value if row.get("metric") in LOWER_IS_BETTER else value)
        low = _finite(row.get("low"))
        return (
            _SLICE_RANK.get(status, 1),
            math.inf if gain is None else gain,
            math.inf if low is None else low,
            -rows_count,
            str(row.get("slice") or ""),
        )

    return sorted(rows, key=key)


def importance_ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Features by the larger of the two models' importance, largest first."""

    def key(row: dict[str, Any]) -> tuple:
        values = [v for v in (_finite(row.get("challenger")), _finite(row.get("champion"))) if v is not None]
        return (-max(values, default=-math.inf), str(row.get("feature") or ""))

    return sorted(rows, key=key)


def fairness_worst_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gaps that block first, then by how much the challenger worsens the champion's gap, then too small ones."""

    def key(row: dict[str, Any]) -> tuple:
        worsening = _finite(row.get("worsening"))
        return (
            _FAIRNESS_RANK.get(str(row.get("status") or ""), 1),
            -worsening if worsening is not None else math.inf,
            str(row.get("group_column") or ""),
            str(row.get("metric") or ""),
        )

    return sorted(rows, key=key)


def importance_scale(rows: list[dict[str, Any]]) -> float:
    """The largest importance (plus its spread) of either model: the full width of a bar; 0 when none is positive."""
    top = 0.0
    for row in rows:
        for who in ("challenger", "champion"):
            value = _finite(row.get(who))
            if value is not None:
                top = max(top, value + (_finite(row.get(f"{who}_std")) or 0.0))
    return top


def status_lines(summaries: dict[str, str] | None) -> list[str]:
    """`airflow-mlops status`'s lines for one verdict: "slices: <worst slice>", "robustness: <figure>", then the
    other panels it has. None for a verdict without panels (an older one, or panels off): nothing is said."""
    if not summaries:
        return []
    names = [*STATUS_PANELS, *(n for n in SHOWN_ORDER if n not in STATUS_PANELS and n in summaries)]
    names += sorted(n for n in summaries if n not in names)
    return [f"{name}: {summaries.get(name) or NOT_MEASURED}" for name in names]


# --------------------------------------------------------------------------- numbers as text


def number(value: Any, digits: int = 3) -> str:
    """A metric value: `digits` decimals (two more for a small one); "–" when missing."""
    v = _finite(value)
    if v is None:
        return "–"
    if v != 0 and abs(v) < 10 ** (-digits):
        return f"{v:.{digits + 2}f}"
    return f"{v:.{digits}f}"


def signed(value: Any, digits: int = 3) -> str:
    """A difference with its sign, `digits` decimals (+0.012, −0.069)."""
    v = _finite(value)
    if v is None:
        return "–"
    text = f"{abs(v):.{digits}f}"
    return ("−" if v < 0 else "+") + text if text.strip("0.") else text


def interval(low: Any, high: Any, digits: int = 3) -> str:
    """ "(−0.095 … −0.041)", or "" when the interval is missing."""
    if _finite(low) is None or _finite(high) is None:
        return ""
    return f"({signed(low, digits)} … {signed(high, digits)})"


def share(value: Any) -> str:
    """A share as a percentage (0.012 -> "1.2%")."""
    v = _finite(value)
    return "–" if v is None else f"{v:.1%}"


def signed_points(value: Any) -> str:
    """A difference of two shares in percentage points (0.002 -> "+0.2 pp")."""
    v = _finite(value)
    return "–" if v is None else f"{signed(v * 100, 1)} pp"


def points_interval(low: Any, high: Any) -> str:
    """An interval of a difference of shares in percentage points: "(−0.1 … +0.5 pp)"."""
    lo, hi = _finite(low), _finite(high)
    if lo is None or hi is None:
        return ""
    return f"({signed(lo * 100, 1)} … {signed(hi * 100, 1)} pp)"


def p_value(value: Any) -> str:
    v = _finite(value)
    if v is None:
        return "–"
    return "<0.0001" if v < 0.0001 else f"{v:.4f}" if v < 0.01 else f"{v:.3f}"


def count(value: Any) -> str:
    v = _finite(value)
    return "–" if v is None else f"{int(v):,}"


def events(value: Any) -> str:
    """Rows per class ({"0": 900, "1": 304} -> "0: 900 · 1: 304"); "–" for regression."""
    if not isinstance(value, dict) or not value:
        return "–"
    return " · ".join(f"{label}: {count(n)}" for label, n in value.items())


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
