"""What a slice of the test rows is (``evaluation.slices``): a categorical column's value, a numeric column's quantile
bin, the nulls of either ("(missing)"), or the crossing of two columns' slices.

Bins are cut at the quantiles of the rows they are defined on (the gate's test rows), duplicate edges merged, the
edges rounded to the fewest decimals that keep them apart (at least 3 significant digits), and rows assigned by the
rounded edges, so a label such as "monthly_charges in [45.2, 70.1)" says exactly which rows it holds.
`Slice.mask` applies the same definitions to other rows (e.g. fresh rows that measure the truth in a benchmark).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import EvaluationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.config import PipelineConfig

MISSING = "(missing)"


@dataclass(frozen=True)
class Part:
    """One column's piece of a slice: a category, a numeric bin (edges rounded as labelled) or the nulls."""

    column: str
    value: str  # as shown: "south", "[45.2, 70.1)", "(missing)"
    numeric: bool
    key: Any = None  # the category; or the bin's index
    inner: tuple[float, ...] = ()  # a bin's inner edges: bin i holds inner[i-1] <= x < inner[i]

    @property
    def text(self) -> str:
        return (
            f"{self.column} in {self.value}"
            if self.numeric and self.value != MISSING
            else f"{self.column}={self.value}"
        )

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """The rows of `frame` in this piece (a row below the first or above the last bin joins the outer bin)."""
        import numpy as np
        import pandas as pd

        if self.column not in frame.columns:
            raise EvaluationError(f"slice column {self.column!r} is not in the test rows")
        raw = frame[self.column]
        if self.numeric:
            x = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
            if self.value == MISSING:
                return np.isnan(x)
            return (np.searchsorted(np.asarray(self.inner), x, side="right") == self.key) & ~np.isnan(x)
        if self.value == MISSING:
            return raw.isna().to_numpy()
        return (raw == self.key).to_numpy(dtype=bool) & raw.notna().to_numpy()


@dataclass(frozen=True)
class Slice:
    """A named group of test rows: one column's piece, or the crossing of two."""

    parts: tuple[Part, ...]

    @property
    def label(self) -> str:
        return " & ".join(p.text for p in self.parts)

    @property
    def columns(self) -> list[str]:
        return [p.column for p in self.parts]

    @property
    def values(self) -> list[str]:
        return [p.value for p in self.parts]

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        import numpy as np

        out = np.ones(len(frame), dtype=bool)
        for part in self.parts:
            out &= part.mask(frame)
        return out


def define_slices(frame: pd.DataFrame, config: PipelineConfig) -> list[Slice]:
    """The slices of `frame` (the test rows) that ``evaluation.slices`` asks for, each holding at least one row.

    Numeric bins are cut at `frame`'s quantiles; `Slice.mask` applies the same definitions to other rows."""
    sc = config.evaluation.slices
    types = {f.name: f.type for f in config.features}
    cache: dict[str, list[Part]] = {}

    def parts(column: str) -> list[Part]:
        if column not in cache:
            if column not in frame.columns:
                raise EvaluationError(
                    f"evaluation.slices: column {column!r} is not in the test rows (columns: {', '.join(frame.columns)})"
                )
            numeric = types.get(column) == "numeric"
            cache[column] = numeric_parts(frame[column], column, sc.bins) if numeric else category_parts(frame[column])
        return cache[column]

    wanted = [Slice((p,)) for c in sc.columns for p in parts(c)]
    wanted += [Slice((a, b)) for left, right in sc.crossings for a, b in product(parts(left), parts(right))]
    return [s for s in wanted if s.mask(frame).any()]


def category_parts(values: pd.Series) -> list[Part]:
    """One piece per value present (sorted as text), then the nulls."""
    present = values.dropna().unique().tolist()
    out = [Part(str(values.name), str(v), False, v) for v in sorted(present, key=str)]
    return out + ([Part(str(values.name), MISSING, False)] if values.isna().any() else [])


def numeric_parts(values: pd.Series, column: str, bins: int) -> list[Part]:
    """`bins` quantile bins of the values (duplicate edges merged; edges rounded to the fewest decimals that keep
    them apart, and bins assigned by the rounded edges, so each label is exact), then the nulls."""
    import numpy as np
    import pandas as pd

    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    seen = x[~np.isnan(x)]
    out = []
    if len(seen):
        edges = np.unique(np.quantile(seen, np.linspace(0.0, 1.0, bins + 1)))
        inner = edges[1:-1]
        scale = float(np.max(np.abs(inner))) if len(inner) else 0.0
        decimals = max(0, 2 - math.floor(math.log10(scale))) if scale > 0 else 0
        while decimals < 12 and len(np.unique(np.round(inner, decimals))) < len(inner):
            decimals += 1
        inner = np.unique(np.round(inner, decimals))
        step = 10.0**-decimals
        low, high = math.floor(seen.min() / step) * step, math.ceil(seen.max() / step) * step
        bounds = [low, *inner.tolist(), high]
        for i in range(len(bounds) - 1):
            closing = "]" if i == len(bounds) - 2 else ")"
            label = f"[{_number(bounds[i], decimals)}, {_number(bounds[i + 1], decimals)}{closing}"
            out.append(Part(column, label, True, i, tuple(inner.tolist())))
    return out + ([Part(column, MISSING, True)] if np.isnan(x).any() else [])


def _number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text
