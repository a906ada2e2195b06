"""PNG evidence (ROC curves, residuals, the bootstrap distribution, realized performance) and strict JSON.

Plots draw on a bare matplotlib ``Figure`` with the Agg canvas (no pyplot, no global state, safe
in worker threads); matplotlib is imported inside each function so importing this module is cheap.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np
    from matplotlib.figure import Figure

#: Scatter plots draw at most this many points (a seeded sample): enough to see the shape.
MAX_SCATTER_POINTS = 5000


def _figure(width: float = 6.4, height: float = 4.8) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def roc_plot(
    y_true: Any,
    scores: Mapping[str, np.ndarray],
    labels: Sequence[Any],
    path: str | Path,
    *,
    title: str = "ROC",
    positive: Any = None,
) -> Path:
    """ROC curves of several models on the same test rows (one-vs-rest, micro-averaged for multiclass).

    `scores` maps a model's name to its predict_proba array (n, n_classes) in `labels` order, or
    to 1-D positive-class scores for a binary task; `positive`: the binary positive class (default
    the last of `labels`).
    """
    import numpy as np
    from sklearn.metrics import auc, roc_curve

    from airflow_mlops.core.labels import positive_index

    y = np.asarray(y_true)
    labels = list(labels)
    pos = positive_index(labels, positive) if len(labels) <= 2 and labels else -1
    fig = _figure()
    ax = fig.add_subplot()
    for name, raw in scores.items():
        s = np.asarray(raw, dtype=float)
        if s.ndim == 1 or len(labels) <= 2:
            truth = (y == labels[pos]).astype(int)
            score = s if s.ndim == 1 else s[:, pos]
        else:  # micro-average: every (row, class) pair is one binary decision
            truth = (y[:, None] == np.asarray(labels, dtype=object)[None, :]).astype(int).ravel()
            score = s.ravel()
        fpr, tpr, _ = roc_curve(truth, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.4f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    if len(labels) <= 2 and labels:
        positive_label = labels[pos].item() if hasattr(labels[pos], "item") else labels[pos]  # np.int64(1) -> 1
        title = f"{title} (positive class {positive_label!r})"
    ax.set_title(title if len(labels) <= 2 else f"{title} (micro-averaged one-vs-rest)")
    ax.legend(loc="lower right")
    return _save(fig, path)


def residual_plot(y_true: Any, predictions: Mapping[str, np.ndarray], path: str | Path, *, seed: int = 0) -> Path:
    """Residuals (actual - predicted) against predictions, and their distribution, for each model."""
    import numpy as np

    y = np.asarray(y_true, dtype=float)
    keep = np.arange(len(y))
    if len(y) > MAX_SCATTER_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), MAX_SCATTER_POINTS, replace=False))
    fig = _figure(10, 4.5)
    scatter, hist = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, raw in predictions.items():
        pred = np.asarray(raw, dtype=float)
        residual = y - pred
        rmse = float(np.sqrt(np.mean(residual**2)))
        scatter.scatter(pred[keep], residual[keep], s=6, alpha=0.4, label=f"{name} (RMSE {rmse:.4g})")
        hist.hist(residual, bins=50, alpha=0.5, label=name)
    scatter.axhline(0.0, color="grey", linestyle=":")
    scatter.set_xlabel("predicted")
    scatter.set_ylabel("actual - predicted")
    scatter.set_title("residuals")
    scatter.legend()
    hist.set_xlabel("actual - predicted")
    hist.set_ylabel("rows")
    hist.set_title("residual distribution")
    hist.legend()
    return _save(fig, path)


def bootstrap_plot(
    samples: Any,
    path: str | Path,
    *,
    metric: str,
    diff: float,
    low: float,
    high: float,
    confidence: float,
    margin: float,
) -> Path:
    """Histogram of the bootstrap gains (positive = challenger better) with the interval, zero and margin."""
    import numpy as np

    values = np.asarray(samples, dtype=float)
    fig = _figure()
    ax = fig.add_subplot()
    ax.hist(values, bins=50, color="#7aa6c2", edgecolor="white")
    ax.axvspan(low, high, color="#7aa6c2", alpha=0.2, label=f"{confidence:.0%} CI {low:.4f}..{high:.4f}")
    ax.axvline(diff, color="black", label=f"observed gain {diff:.4f}")
    ax.axvline(0.0, color="grey", linestyle=":", label="no change")
    if margin:
        ax.axvline(margin, color="#c0392b", linestyle="--", label=f"margin {margin:g}")
    ax.set_xlabel(f"{metric} gain, challenger vs champion (positive = better)")
    ax.set_ylabel("resamples")
    ax.set_title(f"paired bootstrap, {len(values)} resamples")
    ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path)


def performance_plot(days: Sequence[Mapping[str, Any]], path: str | Path, *, metric: str, tolerance: float) -> Path:
    """The realized primary metric per labelled day with its interval, the promised figure and the decay line.

    `days`: rows of the per-day table (``day``, ``realized``, ``low``, ``high``, ``promised``, ``threshold``,
    ``decay``), oldest first. Decayed days are drawn in red, days not judged in grey.
    """
    import datetime as dt

    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    points = [r for r in days if r.get("realized") is not None]
    x = [dt.date.fromisoformat(str(r["day"])) for r in points]
    for row, day in zip(points, x, strict=True):
        colour = {"yes": "#c0392b", "no": "#1f618d"}.get(str(row.get("decay")), "#999999")
        value = float(row["realized"])
        low = float(row["low"]) if row.get("low") is not None else value
        high = float(row["high"]) if row.get("high") is not None else value
        ax.errorbar(
            [day],  # type: ignore[arg-type]
            [value],
            yerr=[[value - low], [high - value]],
            fmt="o",
            color=colour,
            capsize=3,
        )
    promised = [(dt.date.fromisoformat(str(r["day"])), r) for r in days if r.get("promised") is not None]
    if promised:
        ax.step(
            [d for d, _ in promised],  # type: ignore[arg-type]
            [float(r["promised"]) for _, r in promised],
            where="mid",
            color="#1e8449",
            label="promised (test set at promotion)",
        )
    lines = [(d, float(r["threshold"])) for d, r in promised if r.get("threshold") is not None]
    if lines:
        ax.step(
            [d for d, _ in lines],  # type: ignore[arg-type]
            [t for _, t in lines],
            where="mid",
            color="#c0392b",
            linestyle="--",
            label=f"decay line (promised \u2213 tolerance {tolerance:g})",
        )
    ax.plot([], [], "o", color="#1f618d", label="realized, no decay")
    ax.plot([], [], "o", color="#c0392b", label="realized, decay")
    ax.plot([], [], "o", color="#999999", label="realized, not judged")
    from matplotlib import dates as mdates

    span = len({r["day"] for r in days})
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, span // 10)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.set_xlabel("day of the predictions (labels arrive later)")
    ax.set_ylabel(metric)
    ax.set_title(f"realized {metric} per labelled day (bootstrap intervals)")
    ax.legend(loc="best", fontsize="small")
    fig.autofmt_xdate()
    return _save(fig, path)


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, dates -> ISO text, recursively (strict JSON for evidence files)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value
