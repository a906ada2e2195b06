"""What a drift check found: each feature's drift (``FeatureDrift``) and the dataset verdict (``DriftReport``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from airflow_mlops.core.errors import MlopsError

if TYPE_CHECKING:
    from collections.abc import Sequence

NUMERIC, CATEGORICAL = "numeric", "categorical"


class DriftInputError(MlopsError):
    """The windows cannot be compared (different columns, an empty window, an all-null feature...)."""


# --------------------------------------------------------------------------- results


@dataclass
class FeatureDrift:
    """One feature's drift: test statistic and p-value, effect size, verdict, binned distributions."""

    name: str
    kind: str  # numeric | categorical
    statistic: float  # KS statistic (numeric) or chi-square (categorical)
    statistic_name: str  # "ks" | "chi2"
    p_value: float
    p_adjusted: float  # Benjamini-Hochberg across the features of one report
    effect: float  # PSI (numeric) or Jensen-Shannon distance, base 2 (categorical)
    effect_name: str  # "psi" | "js"
    threshold: float  # the effect size needed to drift
    drifted: bool
    count_reference: int  # non-null values compared
    count_current: int
    null_share_reference: float
    null_share_current: float
    bins: list[str]  # displayed bins: PSI bins (numeric) or categories (categorical)
    reference_share: list[float]
    current_share: list[float]
    edges: list[float] | None = None  # PSI bin edges (numeric)
    dof: int | None = None  # chi-square degrees of freedom (categorical)
    unseen_share: float = 0.0  # share of current values in categories the reference never had
    weight: float = 1.0

    @property
    def severity(self) -> float:
        """Effect size over its threshold: > 1 passes the effect bar."""
        return self.effect / self.threshold if self.threshold > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in asdict(self).items()}


@dataclass
class DriftReport:
    """Every feature's drift, the prediction and target drift, and the dataset verdict."""

    features: list[FeatureDrift]
    drift: bool
    drift_share: float  # weighted share of drifted features
    drifted: list[str]
    prediction: FeatureDrift | None
    target: FeatureDrift | None
    rows_reference: int
    rows_current: int
    alpha: float = 0.01
    share_threshold: float = 0.3  # the drift_share the verdict needs
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it was not compared

    def worst_first(self) -> list[FeatureDrift]:
        return sorted(
            self.features, key=lambda f: (not f.drifted, -finite_for_sorting(f.severity), f.p_adjusted, f.name)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (plain floats, lists and strings)."""
        return {
            "drift": self.drift,
            "drift_share": _jsonable(self.drift_share),
            "share_threshold": self.share_threshold,
            "alpha": self.alpha,
            "drifted": list(self.drifted),
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
            "features": [f.to_dict() for f in self.worst_first()],
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "target": self.target.to_dict() if self.target else None,
            "skipped": dict(self.skipped),
            "summary": self.summary(),
        }

    def table(self) -> str:
        """A plain-text table, worst feature first; prediction and target drift below it."""
        head = ("FEATURE", "KIND", "TEST", "STATISTIC", "P-VALUE", "P-ADJ", "EFFECT", "THRESHOLD", "DRIFT")
        rows = [_row(f) for f in self.worst_first()]
        extra = [
            _row(f, f"[target] {f.name}" if label == "target" else "[prediction]")
            for f, label in ((self.prediction, "prediction"), (self.target, "target"))
            if f
        ]
        widths = [max(len(r[i]) for r in [head, *rows, *extra]) for i in range(len(head))]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

        out = [line(head), *map(line, rows)]
        if extra:
            out += ["", *map(line, extra)]
        for name, why in self.skipped.items():
            out.append(f"skipped {name}: {why}")
        return "\n".join(out)

    def summary(self) -> str:
        """One line: the verdict and why."""
        n = len(self.features)
        verdict = "DRIFT" if self.drift else "no drift"
        names = f": {', '.join(self.drifted)}" if self.drifted else ""
        cmp = ">=" if self.drift else "<"
        extra = "".join(
            f"; {label} drift{' (drifted)' if f.drifted else ' (stable)'}"
            for f, label in ((self.prediction, "prediction"), (self.target, "target"))
            if f
        )
        return (
            f"{verdict}: {len(self.drifted)} of {n} feature(s) drifted{names} (weighted share "
            f"{self.drift_share:.2f} {cmp} {self.share_threshold:.2f}){extra}; "
            f"{self.rows_reference:,} reference vs {self.rows_current:,} current rows"
        )


def _row(f: FeatureDrift, label: str | None = None) -> tuple[str, ...]:
    return (
        label or f.name,
        f.kind,
        f.statistic_name,
        f"{f.statistic:.4g}",
        f"{f.p_value:.3g}",
        f"{f.p_adjusted:.3g}",
        f"{f.effect_name}={f.effect:.4f}",
        f"{f.threshold:g}",
        "DRIFT" if f.drifted else "-",
    )


def finite_for_sorting(x: float) -> float:
    return x if math.isfinite(x) else 1e300


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def check_finite(name: str, **values: float) -> None:
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise DriftInputError(
            f"column {name!r}: the drift statistic(s) {', '.join(bad)} came out NaN/infinite: a data problem "
            f"(no usable values?), not 'no drift'; check the column in both windows"
        )
