"""Calibration of both models on the gate's test rows: Brier score and expected calibration error (ECE).

Binary: the Brier score of the positive-class probability, and ECE over 10 equal-mass bins of that
probability (rows ranked by it and cut into tenths). Multiclass: the multi-class Brier score (the sum over
classes of the squared error, per row) and the top-label ECE (bins of the highest probability, against
whether that class was right). Each model's bins are fixed on the test rows themselves; a resample of the
gate (`PanelInputs.resample`) reweights the rows, so the two models' differences come from the same draws.
The challenger fails when the interval of its worsening lies wholly above zero (significantly worse).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.labels import positive_index

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from airflow_mlops.core.evaluation.panel_types import PanelInputs

#: ECE's bins: equal-mass (the same number of rows in each, by rank of the score).
ECE_BINS = 10
_EPS = 1e-12


@dataclass
class Calibration:
    """Both models' calibration figures: table rows, the gate's checks, metrics, the reliability curves."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: list[tuple[bool, str]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Kernels:
    """One model's per-row Brier terms and its ECE bins, as functions of the row weights."""

    brier_terms: np.ndarray
    bins: np.ndarray  # each row's bin (0..ECE_BINS-1)
    gaps: np.ndarray  # observed - predicted, per row (positive: the model under-predicts)
    predicted: np.ndarray  # the score binned (positive-class probability or top-label confidence)
    observed: np.ndarray  # 1.0 when the positive class / the top-label class was right

    def brier(self, w: np.ndarray) -> float:
        import numpy as np

        return float(np.dot(w, self.brier_terms) / w.sum())

    def ece(self, w: np.ndarray) -> float:
        import numpy as np

        per_bin = np.bincount(self.bins, weights=w * self.gaps, minlength=ECE_BINS)
        return float(np.abs(per_bin).sum() / w.sum())

    def reliability(self) -> dict[str, list[float]]:
        """Mean score and observed rate per bin (the reliability diagram)."""
        import numpy as np

        count = np.bincount(self.bins, minlength=ECE_BINS).astype(float)
        held = count > 0
        predicted = np.bincount(self.bins, weights=self.predicted, minlength=ECE_BINS)[held] / count[held]
        observed = np.bincount(self.bins, weights=self.observed, minlength=ECE_BINS)[held] / count[held]
        return {"predicted": [float(v) for v in predicted], "observed": [float(v) for v in observed]}


def kernels(scores: np.ndarray, y: np.ndarray, labels: list[Any], positive: Any) -> _Kernels:
    """The per-row terms of one model's Brier score and ECE (`scores`: predict_proba in `labels` order)."""
    import numpy as np

    proba = np.asarray(scores, dtype=float)
    position = {label: i for i, label in enumerate(labels)}
    y_idx = np.fromiter((position[v] for v in np.asarray(y).tolist()), dtype=np.intp, count=len(y))
    if len(labels) == 2:
        pos = positive_index(labels, positive)
        predicted = proba[:, pos]
        observed = (y_idx == pos).astype(float)
        terms = (predicted - observed) ** 2
    else:
        onehot = np.zeros_like(proba)
        onehot[np.arange(len(y_idx)), y_idx] = 1.0
        terms = ((proba - onehot) ** 2).sum(axis=1)
        predicted = proba.max(axis=1)
        observed = (proba.argmax(axis=1) == y_idx).astype(float)
    rank = np.empty(len(predicted), dtype=np.intp)
    rank[np.argsort(predicted, kind="stable")] = np.arange(len(predicted))
    bins = np.minimum(rank * ECE_BINS // max(len(predicted), 1), ECE_BINS - 1)
    return _Kernels(terms, bins, observed - predicted, predicted, observed)


def calibration(inputs: PanelInputs) -> Calibration:
    """Brier score and ECE of the challenger (and the champion, with paired intervals and the gate's check)."""
    import numpy as np

    config = inputs.config
    assert inputs.labels is not None
    labels = list(inputs.labels)
    ch = kernels(inputs.challenger_scores, inputs.y, labels, inputs.positive)
    cp = None if inputs.champion_scores is None else kernels(inputs.champion_scores, inputs.y, labels, inputs.positive)
    ones = np.ones(len(inputs.y))
    binary = len(labels) == 2
    out = Calibration(
        detail={
            "bins": ECE_BINS,
            "binning": "equal-mass: rows ranked by the score, cut into tenths",
            "score": "positive-class probability" if binary else "top-label confidence",
            "brier": "binary Brier score" if binary else "multi-class Brier score (sum over classes)",
            "rows": len(inputs.y),
            "reliability": {"challenger": ch.reliability(), **({"champion": cp.reliability()} if cp else {})},
        }
    )
    figures: list[tuple[str, str, Callable[[_Kernels, np.ndarray], float]]] = [
        ("brier", "Brier score (lower is better)", _Kernels.brier),
        ("ece", f"expected calibration error, {ECE_BINS} equal-mass bins (lower is better)", _Kernels.ece),
    ]
    worsening = None
    if cp is not None:
        cp_ = cp

        def statistic(w: np.ndarray) -> np.ndarray:
            return np.array([f(ch, w) - f(cp_, w) for _, _, f in figures])

        worsening = inputs.resample(statistic)
    alpha = (1.0 - config.evaluation.confidence) / 2.0
    for i, (key, label, f) in enumerate(figures):
        mine = f(ch, ones)
        out.metrics[f"{key}.challenger"] = mine
        row: dict[str, Any] = {"check": key, "label": label, "challenger": mine, "champion": None}
        row.update({"difference": None, "low": None, "high": None, "limit": None, "passed": None})
        if cp is not None and worsening is not None:
            theirs = f(cp, ones)
            column = worsening[:, i]
            column = column[np.isfinite(column)]
            low, high = (float(v) for v in np.quantile(column, [alpha, 1.0 - alpha]))
            passed = not low > _EPS
            row.update(champion=theirs, difference=mine - theirs, low=low, high=high, limit=0.0, passed=passed)
            out.metrics.update({f"{key}.champion": theirs, f"{key}.worsening_low": low})
            out.checks.append((passed, _check_text(key, mine, theirs, low, high, config.evaluation.confidence, passed)))
        out.rows.append(row)
    return out


def _check_text(key: str, mine: float, theirs: float, low: float, high: float, confidence: float, passed: bool) -> str:
    name = "Brier score" if key == "brier" else "expected calibration error"
    point = f"robustness: {name} {mine:.4f} (champion {theirs:.4f}, change {mine - theirs:+.4f}"
    ci = f"{confidence:.0%} CI {low:+.4f}..{high:+.4f})"
    if passed:
        return f"{point}, {ci}: not significantly worse calibrated than the champion"
    return (
        f"{point}, {ci}: the challenger is significantly worse calibrated than the champion (the whole interval "
        f"of its worsening lies above zero); recalibrate it (e.g. sklearn.calibration.CalibratedClassifierCV) or "
        f"keep the champion"
    )
