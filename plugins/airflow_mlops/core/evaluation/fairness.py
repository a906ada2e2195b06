"""Opt-in fairness gaps (``evaluation.fairness``): the challenger's gaps between groups against the champion's.

Fairlearn's definitions, from Fairlearn, per group column: ``tpr_gap`` / ``fpr_gap`` =
``MetricFrame(metrics=true_positive_rate / false_positive_rate).difference(method="between_groups")`` (highest
group's rate - lowest's), ``selection_rate_ratio`` = ``MetricFrame(metrics=selection_rate).ratio(method=
"between_groups")`` (lowest / highest), of each model's most probable class, positive as the gate's.

A group with fewer than ``min_group_rows`` test rows is insufficient evidence, left out of the gaps (a null is its
own group, "(missing)"); so, for one rate, is a group without a row it is a rate of (no positives: no true positive
rate, where scikit-learn says 0). The worsening (challenger gap - champion gap; champion ratio - challenger ratio)
has an interval over the gate's own paired resamples, from weighted per-group confusion counts that equal
MetricFrame with ``sample_weight`` (tests/unit/test_fairness.py proves it): MetricFrame a thousand times is far too
slow. A worsening whose lower bound exceeds ``tolerance`` rejects; so does a gap over (a ratio under) its ``limits``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import EvaluationError
from airflow_mlops.core.evaluation.bootstrap import MAX_UNUSABLE
from airflow_mlops.core.labels import positive_index

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    import numpy as np

    from airflow_mlops.core.evaluation.panel_types import PanelInputs, PanelResult

MISSING = "(missing)"
RATIO = "selection_rate_ratio"
#: metric -> (the per-group rate in words, its column in `group_rates`, the rows a group needs for that rate)
RATES = {
    "tpr_gap": ("true positive rate", 0, "positive"),
    "fpr_gap": ("false positive rate", 1, "negative"),
    RATIO: ("selection rate", 2, ""),
}
MAX_PLOTTED_GROUPS = 30  # the chart shows at most this many groups of a column (the largest)
MAX_LISTED = 10  # the insufficient-evidence note names at most this many groups of a column (the table lists all)


# --------------------------------------------------------------------------- the rates, weighted


def predicted_positive(scores: np.ndarray, pos: int) -> np.ndarray:
    """Whether each row's most probable class is the positive one (`pos`: its score column; 1-D: its score)."""
    import numpy as np

    proba = np.asarray(scores, dtype=float)
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba] if pos == 1 else [proba, 1.0 - proba])
    return proba.argmax(axis=1) == pos


def group_rates(counts: np.ndarray) -> np.ndarray:
    """(groups, 3) true positive, false positive and selection rates from counts[group, actual, predicted] (1 =
    positive); NaN where a group has no row the rate is of."""
    import numpy as np

    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = counts[:, 1, 1] / counts[:, 1, :].sum(axis=1)
        fpr = counts[:, 0, 1] / counts[:, 0, :].sum(axis=1)
        selection = counts[:, :, 1].sum(axis=1) / counts.sum(axis=(1, 2))
    return np.column_stack([tpr, fpr, selection])


def rates_kernel(
    group: np.ndarray, n_groups: int, actual: np.ndarray, predicted: Sequence[np.ndarray]
) -> Callable[[np.ndarray], list[np.ndarray]]:
    """f(w) -> each model's `group_rates` with row weights w (a resample's counts), in one weighted count:
    `group` is each row's group (0..n_groups-1), `actual` / `predicted[i]` whether a row is / is predicted positive."""
    import numpy as np

    k = len(predicted)
    code = group.astype(np.int64) * 2 ** (k + 1) + actual.astype(np.int64) * 2**k
    for i, pred in enumerate(predicted):
        code += pred.astype(np.int64) * 2 ** (k - 1 - i)

    def rates(w: np.ndarray) -> list[np.ndarray]:
        counts = np.bincount(code, weights=w, minlength=n_groups * 2 ** (k + 1)).reshape(n_groups, 2, *[2] * k)
        others = [tuple(2 + j for j in range(k) if j != i) for i in range(k)]  # sum out the other models
        return [group_rates(counts.sum(axis=axes) if axes else counts) for axes in others]

    return rates


def between_groups(metric: str, rates: np.ndarray) -> float:
    """Fairlearn's between_groups aggregate of the groups' rates: max - min (a gap), min / max (the ratio); NaN when
    a rate is undefined."""
    import numpy as np

    if len(rates) < 2 or not np.isfinite(rates).all():
        return math.nan
    high, low = float(rates.max()), float(rates.min())
    if metric == RATIO:
        return low / high if high > 0 else math.nan
    return high - low


def fairlearn_gaps(
    metrics: Sequence[str], actual: np.ndarray, predicted: np.ndarray, groups: np.ndarray
) -> dict[str, float]:
    """Fairlearn's own numbers: MetricFrame over these rows (1 = positive), its between-groups difference or ratio."""
    from functools import partial

    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

    functions = {"tpr_gap": true_positive_rate, "fpr_gap": false_positive_rate, RATIO: selection_rate}
    frame = MetricFrame(
        metrics={m: partial(functions[m], pos_label=1) for m in metrics},
        y_true=actual.astype(int),
        y_pred=predicted.astype(int),
        sensitive_features=groups,
    )
    difference, ratio = frame.difference(method="between_groups"), frame.ratio(method="between_groups")
    return {m: float(ratio[m] if m == RATIO else difference[m]) for m in metrics}


# --------------------------------------------------------------------------- the panel


def run(inputs: PanelInputs) -> PanelResult | None:
    """The fairness panel; None when ``evaluation.fairness.groups`` is empty."""
    import numpy as np

    from airflow_mlops.core.evaluation.panel_types import PanelResult

    config = inputs.config
    fairness = config.evaluation.fairness
    if not fairness.groups:
        return None
    if inputs.labels is None or len(inputs.labels) != 2:
        raise EvaluationError(f"evaluation.fairness needs a binary classifier; the classes are {inputs.labels}")
    pos = positive_index(inputs.labels, inputs.positive)
    actual = np.asarray(inputs.y) == inputs.labels[pos]
    models = [predicted_positive(inputs.challenger_scores, pos)]
    if inputs.champion_scores is not None:
        models.append(predicted_positive(inputs.champion_scores, pos))
    table: list[dict[str, Any]] = []
    notes: list[str] = []
    kernels: list[Callable[[np.ndarray], list[float]]] = []
    judged: list[dict[str, Any]] = []  # the rows whose worsening is resampled, in the kernels' order
    for column in fairness.groups:
        kernel, rows = _column(inputs, column, actual, models, table, notes)
        if kernel is not None:
            kernels.append(kernel)
            judged.extend(rows)
    if judged:
        samples = inputs.resample(lambda w: [v for kernel in kernels for v in kernel(w)])
        _intervals(judged, np.asarray(samples).reshape(len(samples), -1), config.evaluation.confidence, notes)
    checks = _checks(table, inputs)
    return PanelResult(
        "fairness",
        checks=checks,
        notes=notes,
        table=table,
        summary=_summary(table, fairness.min_group_rows),
        metrics=_metrics(table),
        detail={
            "tolerance": fairness.tolerance,
            "limits": dict(fairness.limits),
            "min_group_rows": fairness.min_group_rows,
            "confidence": config.evaluation.confidence,
            "resamples": config.evaluation.bootstrap_samples if len(models) == 2 else None,
            "positive": inputs.positive,
            "predictions": "each model's most probable class",
            "definitions": "fairlearn.metrics.MetricFrame: difference / ratio (method='between_groups')",
        },
    )


def _column(
    inputs: PanelInputs,
    column: str,
    actual: np.ndarray,
    models: list[np.ndarray],
    table: list[dict[str, Any]],
    notes: list[str],
) -> tuple[Callable[[np.ndarray], list[float]] | None, list[dict[str, Any]]]:
    """One group column's table rows (appended to `table`); the kernel of the worsenings with a champion (None:
    none) and the rows it computes, in its order."""
    import numpy as np

    fairness = inputs.config.evaluation.fairness
    if column not in inputs.frame.columns:
        raise EvaluationError(f"evaluation.fairness.groups: column {column!r} is not in the test rows")
    values = inputs.frame[column]
    keys = np.where(values.isna().to_numpy(), MISSING, values.astype(str).to_numpy()).astype(object)
    names, index = np.unique(keys, return_inverse=True)
    kernel = rates_kernel(index, len(names), actual, models)
    rates = kernel(np.ones(len(actual)))
    rows = np.bincount(index, minlength=len(names))
    positives = np.bincount(index, weights=actual.astype(float), minlength=len(names)).astype(int)
    small = rows < fairness.min_group_rows
    if small.any():
        few = np.flatnonzero(small)
        listed = ", ".join(f"{names[g]} ({rows[g]:,} rows)" for g in few[:MAX_LISTED])
        listed += f" and {len(few) - MAX_LISTED:,} more" if len(few) > MAX_LISTED else ""
        notes.append(
            f"fairness {column}: group(s) {listed} hold fewer than evaluation.fairness.min_group_rows "
            f"({fairness.min_group_rows}) test rows: insufficient evidence, left out of the gaps"
        )
    label = inputs.positive  # the plain value (1, not np.int64(1))
    judged: dict[tuple[int, ...], list[dict[str, Any]]] = {}  # the groups in a gap -> its rows (one MetricFrame)
    for metric in fairness.metrics:
        words, col, needs = RATES[metric]
        have = {"positive": positives, "negative": rows - positives}.get(needs, rows)
        empty = ~small & (have == 0)
        for g in np.flatnonzero(empty):
            which = f"positive ({label!r})" if needs == "positive" else f"negative (not {label!r})"
            notes.append(
                f"fairness {column}: group {names[g]} has no {which} test rows: its {words} is undefined, left out "
                f"of {metric} (insufficient evidence)"
            )
        included = np.flatnonzero(~small & ~empty)
        row: dict[str, Any] = {
            "group_column": column,
            "metric": metric,
            "challenger": None,
            "champion": None,
            "worsening": None,
            "low": None,
            "high": None,
            "limit": fairness.limits.get(metric),
            "status": "insufficient evidence",
            "reason": "",
            "groups": {
                str(names[g]): {
                    "rows": int(rows[g]),
                    "positives": int(positives[g]),
                    "challenger": _finite(rates[0][g, col]),
                    "champion": _finite(rates[1][g, col]) if len(rates) > 1 else None,
                    "judged": bool(g in included),
                }
                for g in np.argsort(-rows, kind="stable")
            },
        }
        table.append(row)
        if len(included) < 2:
            also = f" and {needs} rows" if needs else ""
            row["reason"] = (
                f"{len(included)} group(s) with {fairness.min_group_rows}+ test rows{also}: a gap needs two "
                f"(lengthen split.test_days or lower evaluation.fairness.min_group_rows)"
            )
            notes.append(f"fairness {column}: {metric} not judged, {row['reason']}")
            continue
        judged.setdefault(tuple(included.tolist()), []).append(row)
    kept: list[tuple[str, np.ndarray]] = []
    compared: list[dict[str, Any]] = []
    for members, same in judged.items():
        mask = np.isin(index, members)
        metrics = [row["metric"] for row in same]
        gaps = [fairlearn_gaps(metrics, actual[mask], pred[mask], keys[mask]) for pred in models]
        for row in same:
            metric = row["metric"]
            row["challenger"], row["status"] = _finite(gaps[0][metric]), "reported"
            if len(models) == 2:
                ch, cp = gaps[0][metric], gaps[1][metric]
                row["champion"] = _finite(cp)
                row["worsening"] = _finite(cp - ch if metric == RATIO else ch - cp)
                row["status"] = "pending"
                kept.append((metric, np.asarray(members)))
                compared.append(row)
    if not kept:
        return None, []

    def worsenings(w: np.ndarray) -> list[float]:
        challenger, champion = kernel(w)
        out = []
        for metric, included in kept:
            col = RATES[metric][1]
            ch, cp = between_groups(metric, challenger[included, col]), between_groups(metric, champion[included, col])
            out.append(cp - ch if metric == RATIO else ch - cp)
        return out

    return worsenings, compared


def _intervals(rows: list[dict[str, Any]], samples: np.ndarray, confidence: float, notes: list[str]) -> None:
    """Each judged row's interval of the worsening (percentiles of the resamples); too many undefined: insufficient."""
    import numpy as np

    alpha = (1.0 - confidence) / 2.0
    for i, row in enumerate(rows):
        column = samples[:, i]
        valid = column[np.isfinite(column)]
        unusable = len(column) - len(valid)
        if unusable > MAX_UNUSABLE * len(column) or not len(valid):
            row["status"] = "insufficient evidence"
            row["reason"] = (
                f"{unusable:,} of {len(column):,} resamples left a group without rows for its rate (more than "
                f"{MAX_UNUSABLE:.0%}): the interval is unreliable, the worsening is not judged"
            )
            notes.append(f"fairness {row['group_column']}: {row['metric']}: {row['reason']}")
            continue
        low, high = np.quantile(valid, [alpha, 1.0 - alpha])
        row["low"], row["high"] = float(low), float(high)


def _checks(table: list[dict[str, Any]], inputs: PanelInputs) -> list[tuple[bool, str]]:
    """Failing checks for each worsening beyond tolerance or gap over its limit; else one passing check per column."""
    fairness = inputs.config.evaluation.fairness
    confidence = inputs.config.evaluation.confidence
    checks: list[tuple[bool, str]] = []
    for column in fairness.groups:
        rows = [r for r in table if r["group_column"] == column and r["challenger"] is not None]
        failed, parts = [], []
        for row in rows:
            metric, ch, cp, limit = row["metric"], row["challenger"], row["champion"], row["limit"]
            spread = _spread(row)
            over = limit is not None and (ch < limit if metric == RATIO else ch > limit)
            worse = row["status"] == "pending" and row["low"] > fairness.tolerance
            ci = (
                f"{confidence:.0%} CI of the worsening {row['low']:.4f}..{row['high']:.4f}"
                if row["low"] is not None
                else ""
            )
            if worse:
                failed.append(
                    f"fairness {column}: {metric} worsens by {row['worsening']:.4f} against the champion ("
                    f"{cp:.4f} -> challenger {ch:.4f}; {ci}, its lower bound > evaluation.fairness.tolerance "
                    f"{fairness.tolerance:g}); {spread}"
                )
            if over:
                sign = "<" if metric == RATIO else ">"
                failed.append(
                    f"fairness {column}: the challenger's {metric} {ch:.4f} {sign} evaluation.fairness.limits."
                    f"{metric} {limit:g}; {spread}"
                )
            row["status"] = "over limit" if over else "worsens" if worse else row["status"]
            if row["status"] == "pending":
                row["status"] = "holds"
            if not row["reason"]:
                row["reason"] = _reason(row, fairness.tolerance, ci)
            parts.append(f"{metric} {ch:.4f}" + (f" ({row['reason']})" if row["reason"] else ""))
        checks.extend((False, text) for text in failed)
        if rows and not failed:
            judged = len({g for r in rows for g, v in r["groups"].items() if v["judged"]})
            checks.append((True, f"fairness {column} ({judged} groups): " + "; ".join(parts)))
    return checks


def _reason(row: dict[str, Any], tolerance: float, ci: str) -> str:
    """The row's numbers in words, for a passing or failing check."""
    words = []
    if row["champion"] is not None:
        words.append(f"champion {row['champion']:.4f}, worsening {row['worsening']:+.4f}")
        if ci:
            words.append(f"{ci}, {'beyond' if row['status'] == 'worsens' else 'not beyond'} tolerance {tolerance:g}")
    else:
        words.append("no champion to compare")
    if row["limit"] is not None:
        words.append(f"{'over' if row['status'] == 'over limit' else 'within'} limit {row['limit']:g}")
    return ", ".join(words)


def _spread(row: dict[str, Any]) -> str:
    """The challenger's highest and lowest judged groups, e.g. "its true positive rate: south 0.91 .. west 0.62"."""
    judged = [(v["challenger"], g) for g, v in row["groups"].items() if v["judged"] and v["challenger"] is not None]
    if not judged:
        return ""
    (low, low_name), (high, high_name) = min(judged), max(judged)
    words = RATES[row["metric"]][0]
    return f"the challenger's {words} runs from {low_name} {low:.3f} to {high_name} {high:.3f}"


def _summary(table: list[dict[str, Any]], min_rows: int) -> str:
    """One line: the worst judged gap, e.g. "largest gap region tpr_gap 0.080 (champion 0.050), holds"."""
    judged = [r for r in table if r["challenger"] is not None]
    small = len({(r["group_column"], g) for r in table for g, v in r["groups"].items() if v["rows"] < min_rows})
    if not judged:
        return f"fairness not judged: no group column has two groups of {min_rows}+ test rows"

    def badness(r: dict[str, Any]) -> tuple[bool, float, float]:
        failed = r["status"] in ("worsens", "over limit")
        gap = 1.0 - r["challenger"] if r["metric"] == RATIO else r["challenger"]
        return failed, r["worsening"] if r["worsening"] is not None else -math.inf, gap

    worst = max(judged, key=badness)
    which = "lowest ratio" if worst["metric"] == RATIO else "largest gap"
    champion = f" (champion {worst['champion']:.3f})" if worst["champion"] is not None else ""
    text = f"{which} {worst['group_column']} {worst['metric']} {worst['challenger']:.3f}{champion}, {worst['status']}"
    if worst["status"] in ("worsens", "over limit"):
        text += ", blocks"
    return text + (f"; {small} group(s) too small" if small else "")


def _metrics(table: list[dict[str, Any]]) -> dict[str, float]:
    out = {}
    for row in table:
        for key in ("challenger", "champion", "worsening", "low", "high"):
            if row[key] is not None:
                out[f"{row['group_column']}.{row['metric']}.{key}"] = float(row[key])
    return out


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- the chart


def plot(result: PanelResult, folder: Path) -> list[Path]:
    """fairness.png: per group column (rows) and metric (columns), each group's rate for both models, and the gaps."""
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = list(dict.fromkeys(r["group_column"] for r in result.table))
    metrics = list(dict.fromkeys(r["metric"] for r in result.table))
    if not columns:
        return []
    fig = Figure(figsize=(4.2 * len(metrics) + 0.6, 3.4 * len(columns) + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(columns), len(metrics), squeeze=False)
    for row in result.table:
        ax = axes[columns.index(row["group_column"])][metrics.index(row["metric"])]
        groups = list(row["groups"].items())[:MAX_PLOTTED_GROUPS]
        x = range(len(groups))
        for offset, who, colour in ((-0.2, "challenger", "#c0392b"), (0.2, "champion", "#2c7fb8")):
            values = [v[who] if v[who] is not None else 0.0 for _, v in groups]
            if who == "champion" and row["champion"] is None:
                continue
            bars = ax.bar([i + offset for i in x], values, width=0.4, color=colour, label=who)
            for bar, (_, v) in zip(bars, groups, strict=True):
                if not v["judged"]:
                    bar.set_alpha(0.3)
                    bar.set_hatch("//")
        ax.set_xticks(list(x), [f"{g}\n{v['rows']:,}" for g, v in groups], fontsize="x-small")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(RATES[row["metric"]][0], fontsize="small")
        title = f"{row['group_column']}: {row['metric']}"
        if row["challenger"] is not None:
            title += f" {row['challenger']:.3f}"
            title += f" (champion {row['champion']:.3f})" if row["champion"] is not None else ""
        ax.set_title(f"{title}\n{row['status']}", fontsize="small")
        ax.legend(loc="upper right", fontsize="x-small")
    fig.suptitle("fairness: each group's rate (hatched: too few rows, left out of the gap)", fontsize="small")
    path = Path(folder) / "fairness.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return [path]
