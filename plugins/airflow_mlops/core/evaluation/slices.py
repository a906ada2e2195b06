"""Per-slice guard rails (``evaluation.slices``): the challenger must not regress in any slice of the test rows.

Categorical columns slice by value, numeric ones by quantile bins of the test rows, a null is its own slice
"(missing)", and ``crossings`` intersect two columns' slices. A slice with ``min_slice_rows`` rows and
(classification) ``min_slice_events`` rows of each class is judged; a smaller one is listed as insufficient
evidence, never passed. For each judged slice both models' primary and guard-rail metrics are computed and the
paired gains (positive = better) bootstrapped on the gate's own resamples, every slice in one pass (the slices
themselves: ``slicing``; the metrics of all of them per resample: ``group_metrics``).

The decision, on the primary metric only: H0 "the slice's gain >= -slice_tolerance" against a regression beyond
it, with a one-sided p-value from the normal approximation Phi((gain + tolerance) / se), se the standard deviation
of the slice's bootstrap gains (a gain that never varies, e.g. a model against itself, has p 1 when it holds and
0 when it does not). The p-values are corrected across the judged slices by Holm (family-wise error) or
Benjamini-Hochberg (``bh``, false discovery rate); a slice whose adjusted p is below ``alpha`` regresses and
rejects the challenger, named with its numbers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import EvaluationError
from airflow_mlops.core.evaluation.bootstrap import MAX_UNUSABLE
from airflow_mlops.core.evaluation.group_metrics import Groups, class_index
from airflow_mlops.core.evaluation.slicing import define_slices
from airflow_mlops.core.training import LOWER_IS_BETTER

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    import numpy as np

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.evaluation.panel_types import PanelInputs, PanelResult

CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
MAX_LISTED = 10  # the insufficient-evidence note names at most this many slices (the table lists all)
MAX_PLOTTED = 40  # the forest plot shows the worst this many judged slices


# --------------------------------------------------------------------------- multiple comparisons


def adjust(p: Sequence[float], method: str) -> list[float]:
    """Adjusted p-values: Holm's step-down (``holm``, family-wise error) or Benjamini-Hochberg's step-up (``bh``)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [1.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p[i]))
            out[i] = running
    elif method == "bh":
        running = 1.0
        for rank in range(m - 1, -1, -1):
            i = order[rank]
            running = min(running, m * p[i] / (rank + 1))
            out[i] = min(1.0, running)
    else:
        raise EvaluationError(f"evaluation.slices.correction: unknown method {method!r} (holm or bh)")
    return out


def regression_p(gain: float, se: float, tolerance: float) -> float:
    """One-sided p-value of H0 "gain >= -tolerance" (normal approximation with the bootstrap standard error)."""
    if not se > 0 or not math.isfinite(se):
        return 1.0 if gain >= -tolerance else 0.0
    return 0.5 * math.erfc(-(gain + tolerance) / se / math.sqrt(2.0))  # Phi((gain + tolerance) / se)


# --------------------------------------------------------------------------- the panel


def run(inputs: PanelInputs) -> PanelResult | None:
    """The slice panel (None when ``evaluation.slices`` names no columns and no crossings)."""
    import numpy as np

    from airflow_mlops.core.evaluation.panel_types import PanelResult

    config = inputs.config
    sc = config.evaluation.slices
    if not sc.columns and not sc.crossings:
        return None
    primary = config.metrics.primary
    metrics = list(dict.fromkeys([primary, *config.evaluation.guard_rails]))
    classes = list(inputs.labels) if inputs.labels is not None else None
    codes = _codes(inputs.y, classes)
    slices = define_slices(inputs.frame, config)
    rows_of = [np.flatnonzero(s.mask(inputs.frame)) for s in slices]
    everything = Groups.of(rows_of)
    ones = np.ones(len(everything.rows))
    own = {m: _kernel(m, inputs, inputs.challenger_scores, everything)(ones) for m in metrics}
    table: list[dict[str, Any]] = []
    judged: list[int] = []
    for i, (piece, rows) in enumerate(zip(slices, rows_of, strict=True)):
        counts = None if codes is None else np.bincount(codes[rows], minlength=len(classes or []))
        events = (
            None if counts is None else {str(_plain(c)): int(n) for c, n in zip(classes or [], counts, strict=True)}
        )
        row: dict[str, Any] = {
            "slice": piece.label,
            "columns": piece.columns,
            "values": piece.values,
            "rows": len(rows),
            "events": events,
            "status": "",
            "reason": "",
            "metric": primary,
            "challenger": _float(own[primary][i]),
            **dict.fromkeys(("champion", "gain", "low", "high", "p", "p_adjusted")),
            "guard_rails": {},
        }
        why = _too_small(len(rows), counts, classes, sc.min_slice_rows, sc.min_slice_events)
        if why is None and row["challenger"] is None:
            why = f"{primary} cannot be computed on its rows"
        if why is not None:
            row.update(status="insufficient evidence", reason=why)
        elif inputs.champion_scores is None:
            row.update(status="reported", reason="no champion to compare with")
            row["guard_rails"] = {m: {"challenger": _float(own[m][i])} for m in metrics[1:]}
        else:
            judged.append(i)
        table.append(row)
    if judged:
        _judge(inputs, metrics, [rows_of[i] for i in judged], [table[i] for i in judged])
    return _result(config, table, PanelResult)


def _kernel(metric: str, inputs: PanelInputs, scores: Any, groups: Groups) -> Callable[[np.ndarray], np.ndarray]:
    return groups.kernel(metric, inputs.config.task, inputs.y, scores, inputs.labels, inputs.positive)


def _judge(inputs: PanelInputs, metrics: list[str], groups: list[np.ndarray], rows: list[dict[str, Any]]) -> None:
    """Both models' metrics, the paired gain intervals (one pass over the gate's resamples) and the decision."""
    import numpy as np

    config = inputs.config
    sc, ev = config.evaluation.slices, config.evaluation
    judged = Groups.of(groups)
    kernels = [
        (
            -1.0 if m in LOWER_IS_BETTER else 1.0,
            _kernel(m, inputs, inputs.challenger_scores, judged),
            _kernel(m, inputs, inputs.champion_scores, judged),
        )
        for m in metrics
    ]

    def gains(w: np.ndarray) -> np.ndarray:
        wr = judged.weights(w)
        return np.concatenate([sign * (ch(wr) - cp(wr)) for sign, ch, cp in kernels])

    samples = inputs.resample(gains).reshape(ev.bootstrap_samples, len(metrics), len(groups))
    ones = np.ones(len(judged.rows))
    observed = [(ch(ones), cp(ones)) for _, ch, cp in kernels]
    tail = (1.0 - ev.confidence) / 2.0
    family: list[dict[str, Any]] = []
    for j, row in enumerate(rows):
        for k, m in enumerate(metrics):
            column = samples[:, k, j]
            valid = column[np.isfinite(column)]
            low, high = np.quantile(valid, [tail, 1.0 - tail]) if len(valid) else (math.nan, math.nan)
            ch, cp = observed[k][0][j], observed[k][1][j]
            numbers = {
                "challenger": _float(ch),
                "champion": _float(cp),
                "gain": _float(kernels[k][0] * (ch - cp)),
                "low": _float(low),
                "high": _float(high),
            }
            if k:
                row["guard_rails"][m] = numbers
                continue
            row.update(numbers)
            unusable = len(column) - len(valid)
            if unusable > MAX_UNUSABLE * len(column) or row["gain"] is None:
                row.update(
                    status="insufficient evidence",
                    reason=f"{unusable:,} of {len(column):,} resamples could not compute {m} on its rows "
                    f"(more than {MAX_UNUSABLE:.0%})",
                )
                continue
            se = float(np.std(valid, ddof=1)) if len(valid) > 1 else 0.0
            row["p"] = regression_p(row["gain"], se, sc.slice_tolerance)
            family.append(row)
    for row, p_adj in zip(family, adjust([r["p"] for r in family], sc.correction), strict=True):
        row["p_adjusted"] = p_adj
        row["status"] = "regresses" if p_adj < sc.alpha else "holds"
        row["reason"] = _verdict_words(row, config)


def _result(config: PipelineConfig, table: list[dict[str, Any]], result: type[PanelResult]) -> PanelResult:
    sc = config.evaluation.slices
    primary = config.metrics.primary
    judged = sorted((r for r in table if r["status"] in ("regresses", "holds")), key=lambda r: (r["gain"], r["slice"]))
    small = [r for r in table if r["status"] == "insufficient evidence"]
    reported = [r for r in table if r["status"] == "reported"]
    regressing = [r for r in judged if r["status"] == "regresses"]
    checks: list[tuple[bool, str]] = []
    if regressing:
        checks.append((False, "; ".join(r["reason"] for r in regressing)))
    elif judged:
        worst = judged[0]
        checks.append(
            (
                True,
                f"no slice regresses beyond evaluation.slices.slice_tolerance {sc.slice_tolerance:g} ({len(judged)} "
                f"judged, {_correction(sc.correction)}-adjusted p < {sc.alpha:g} to block); worst {worst['slice']}: "
                f"{primary} gain {worst['gain']:+.3f} ({_interval(worst, config)}), adjusted p {_p(worst['p_adjusted'])}",
            )
        )
    notes = []
    if small:
        listed = "; ".join(f"{r['slice']} ({r['reason']})" for r in small[:MAX_LISTED])
        more = f"; and {len(small) - MAX_LISTED} more (the slice table lists them)" if len(small) > MAX_LISTED else ""
        notes.append(
            f"{len(small)} slice(s) too small to judge, listed as insufficient evidence (not passed): {listed}{more}"
        )
    table = judged + reported + small
    if judged:
        worst = judged[0]
        state = "blocks" if regressing else "holds"
        summary = f"worst slice {worst['slice']}: {primary} {worst['gain']:+.3f} ({worst['low']:+.3f}..{worst['high']:+.3f}), {state}"
        summary += f"; {len(judged)} judged" + (f", {len(small)} too small" if small else "")
    elif reported:
        lowest = min(reported, key=lambda r: r["challenger"] if primary not in LOWER_IS_BETTER else -r["challenger"])
        summary = f"{len(reported)} slices reported (no champion); weakest {lowest['slice']}: {primary} {lowest['challenger']:.3f}"
        summary += f", {len(small)} too small" if small else ""
    else:
        summary = f"no slice judged: {len(small)} too small"
    metrics = {"judged": float(len(judged)), "insufficient": float(len(small)), "blocked": float(bool(regressing))}
    if judged:
        metrics["worst_gain"] = float(judged[0]["gain"])
    if reported:
        metrics["reported"] = float(len(reported))
    detail = {
        "judged": len(judged),
        "insufficient": len(small),
        "correction": sc.correction,
        "alpha": sc.alpha,
        "tolerance": sc.slice_tolerance,
        "confidence": config.evaluation.confidence,
        "resamples": config.evaluation.bootstrap_samples,
        "p_value": "one-sided, normal approximation with the bootstrap standard error of the gain",
    }
    return result(
        "slices", checks=checks, notes=notes, table=table, summary=_clip(summary), metrics=metrics, detail=detail
    )


def _verdict_words(row: dict[str, Any], config: PipelineConfig) -> str:
    sc = config.evaluation.slices
    m = row["metric"]
    adjusted = f"{_correction(sc.correction)}-adjusted p {_p(row['p_adjusted'])}"
    numbers = (
        f"{m} {row['champion']:.3f} -> {row['challenger']:.3f} (gain {row['gain']:+.3f}, {_interval(row, config)}, "
        f"{row['rows']:,} rows)"
    )
    if row["status"] == "regresses":
        return (
            f"slice {row['slice']} regresses: {numbers} beyond evaluation.slices.slice_tolerance {sc.slice_tolerance:g} "
            f"({adjusted} < {sc.alpha:g})"
        )
    return f"holds: {numbers}; no regression beyond {sc.slice_tolerance:g} shown ({adjusted} >= {sc.alpha:g})"


def _too_small(
    rows: int, counts: np.ndarray | None, classes: list[Any] | None, min_rows: int, min_events: int
) -> str | None:
    if rows < min_rows:
        return f"{rows:,} rows < evaluation.slices.min_slice_rows ({min_rows:,})"
    if counts is not None and classes is not None:
        short = [f"{int(n):,} of class {_plain(c)!r}" for c, n in zip(classes, counts, strict=True) if n < min_events]
        if short:
            return f"{', '.join(short)} < evaluation.slices.min_slice_events ({min_events:,}) of each class"
    return None


def _codes(y: np.ndarray, classes: list[Any] | None) -> np.ndarray | None:
    return None if classes is None else class_index(y, classes)


def _float(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _p(p: float) -> str:
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def _correction(method: str) -> str:
    return CORRECTION_NAMES.get(method, method)


def _interval(row: dict[str, Any], config: PipelineConfig) -> str:
    return f"{config.evaluation.confidence:.0%} interval {row['low']:+.3f}..{row['high']:+.3f}"


def _clip(text: str, limit: int = 250) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- the chart


def plot(result: PanelResult, folder: Path) -> list[Path]:
    """A forest plot of each judged slice's primary gain and interval, worst first, with the -tolerance line."""
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in result.table if r["status"] in ("regresses", "holds")]
    if not rows:
        return []
    judged, rows = len(rows), sorted(rows, key=lambda r: r["gain"])[:MAX_PLOTTED]
    tolerance = float(result.detail.get("tolerance", 0.0))
    fig = Figure(figsize=(8.0, max(2.5, 0.32 * len(rows) + 1.6)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for y, r in enumerate(rows):
        colour = "#c0392b" if r["status"] == "regresses" else "#2c7fb8"
        ax.plot([r["low"], r["high"]], [y, y], color=colour, linewidth=2)
        ax.plot([r["gain"]], [y], marker="o", color=colour)
    ax.axvline(0.0, color="grey", linestyle=":")
    ax.axvline(-tolerance, color="#c0392b", linestyle="--")
    ax.set_yticks(range(len(rows)), [f"{r['slice']} ({r['rows']:,})" for r in rows], fontsize="small")
    ax.invert_yaxis()  # worst at the top
    metric = rows[0]["metric"]
    shown = f"the worst {len(rows)} of {judged} judged" if judged > len(rows) else f"{judged} judged"
    ax.set_xlabel(f"{metric} gain, challenger vs champion (positive = better)")
    ax.set_title(
        f"slices: {shown}, red: regresses\ndashed: -slice_tolerance ({-tolerance:g}), dotted: no change",
        fontsize="medium",
    )
    path = Path(folder) / "slices.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return [path]
