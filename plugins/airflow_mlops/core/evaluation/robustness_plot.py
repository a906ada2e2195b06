"""The robustness panel's chart, robustness.png: small moves, missing values, monotonic features, reliability.

Drawn from the panel's table and detail alone, on a bare matplotlib Figure with the Agg canvas (no pyplot).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from airflow_mlops.core.evaluation.panel_types import PanelResult

FILE = "robustness.png"
COLOURS = {"challenger": "#1f618d", "champion": "#999999"}
_WIDTH = 0.38


def plot(result: PanelResult, folder: Path | str) -> list[Path]:
    """robustness.png in `folder`: four views of the panel, both models side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    rows = {row["check"]: row for row in result.table}
    _bars(axes[0][0], [rows[k] for k in ("flip_rate", "score_change") if k in rows], "small moves of numeric inputs")
    missing = [row for check, row in rows.items() if check.startswith("missing:")]
    _bars(axes[0][1], missing, "primary metric drop, values missing", strip="missing:")
    monotonic = [row for check, row in rows.items() if check.startswith("monotonic:")]
    _bars(axes[1][0], monotonic, "rows breaking a declared monotonic feature", strip="monotonic:")
    _reliability(axes[1][1], result.detail.get("calibration"))
    fig.suptitle(result.summary[:120], fontsize="medium")
    path = Path(folder) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return [path]


def _bars(ax: Axes, rows: list[dict[str, Any]], title: str, *, strip: str = "") -> None:
    ax.set_title(title, fontsize="small")
    if not rows:
        ax.text(0.5, 0.5, "not measured" if not strip.startswith("monotonic") else "none declared", ha="center")
        ax.set_axis_off()
        return
    names = [row["check"].removeprefix(strip) for row in rows]
    positions = list(range(len(rows)))
    for offset, which in ((-_WIDTH / 2, "challenger"), (_WIDTH / 2, "champion")):
        values = [row[which] if row[which] is not None else 0.0 for row in rows]
        if any(row[which] is not None for row in rows):
            ax.barh([p + offset for p in positions], values, _WIDTH, label=which, color=COLOURS[which])
    limits = {row["limit"] for row in rows if row["limit"] is not None and not row["check"].startswith("flip")}
    for limit in limits:
        ax.axvline(limit, color="#c0392b", linestyle="--", label=f"limit {limit:g}")
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_yticks(positions, names, fontsize="small")
    ax.invert_yaxis()
    ax.legend(loc="best", fontsize="x-small")


def _reliability(ax: Axes, calibration: dict[str, Any] | None) -> None:
    ax.set_title("reliability (equal-mass bins)", fontsize="small")
    if not calibration:
        ax.text(0.5, 0.5, "no calibration (regression, or calibration: false)", ha="center")
        ax.set_axis_off()
        return
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for which, curve in calibration.get("reliability", {}).items():
        ax.plot(curve["predicted"], curve["observed"], "o-", color=COLOURS.get(which, "black"), label=which)
    ax.set_xlabel(f"mean {calibration.get('score', 'score')}", fontsize="small")
    ax.set_ylabel("observed rate", fontsize="small")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize="x-small")
