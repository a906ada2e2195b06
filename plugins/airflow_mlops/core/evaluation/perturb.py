"""How the robustness panel changes the test rows: small moves of numeric inputs, missing values, and a grid
over one feature (individual conditional expectation). Rows come back in the column's own kind: a column
of whole numbers stays whole, one showing two decimals keeps two, an integer column keeps its dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Decimals looked for in a numeric column; a column showing more is rounded to this many.
MAX_DECIMALS = 6
#: The individual conditional expectation grid: these quantiles of the feature on the test rows.
GRID_QUANTILES = (0.05, 0.95)
GRID_POINTS = 10


@dataclass(frozen=True)
class Scale:
    """How far one numeric feature moves: `scale` (its MAD, else IQR, else std) x the configured fraction."""

    feature: str
    by: str  # mad | iqr | std | none
    scale: float  # the spread measure's value on the test rows
    decimals: int  # what the column shows (0: whole numbers)
    step: float  # the move after rounding to `decimals` (0: the move rounds away, the feature is left alone)
    low: float  # the test rows' range: moved values are kept inside it
    high: float

    @property
    def moves(self) -> bool:
        return self.step > 0


def decimals(values: np.ndarray) -> int:
    """The decimals a column shows: the fewest that hold every value (capped at MAX_DECIMALS)."""
    import numpy as np

    x = values[np.isfinite(values)]
    if not len(x):
        return 0
    size = max(1.0, float(np.abs(x).max()))
    for d in range(MAX_DECIMALS + 1):
        if np.all(np.abs(np.round(x, d) - x) <= 1e-9 * size):
            return d
    return MAX_DECIMALS


def numeric_values(column: pd.Series) -> np.ndarray | None:
    """A numeric (not boolean) column as floats (missing: NaN); None when it holds anything else."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return None
    return column.to_numpy(dtype=float, na_value=np.nan)


def scale_of(feature: str, values: np.ndarray, fraction: float) -> Scale:
    """The move of `feature` (`fraction` x its median absolute deviation on `values`; IQR, then std, when the
    MAD is 0), rounded as the column shows its values."""
    import numpy as np

    x = values[np.isfinite(values)]
    places = decimals(values)
    if len(x) < 2:
        return Scale(feature, "none", 0.0, places, 0.0, 0.0, 0.0)
    low, high = float(x.min()), float(x.max())
    median = float(np.median(x))
    measures = (
        ("mad", float(np.median(np.abs(x - median)))),
        ("iqr", float(np.subtract(*np.quantile(x, [0.75, 0.25])))),
        ("std", float(x.std())),
    )
    by, spread = next(((name, value) for name, value in measures if value > 0), ("none", 0.0))
    step = float(np.round(fraction * spread, places))
    return Scale(feature, by, spread, places, step, low, high)


def perturbed(rows: pd.DataFrame, scales: list[Scale], rng: np.random.Generator) -> pd.DataFrame:
    """`rows` with each moving feature moved up or down (a random sign per cell) by its step, rounded as its
    column shows values and kept within the test rows' range; missing cells stay missing."""
    import numpy as np

    out = rows.copy()
    moving = [s for s in scales if s.moves]
    signs = rng.choice(np.array([-1.0, 1.0]), size=(len(rows), len(moving)))
    for j, s in enumerate(moving):
        x = rows[s.feature].to_numpy(dtype=float, na_value=np.nan)
        moved = np.clip(np.round(x + signs[:, j] * s.step, s.decimals), s.low, s.high)
        out[s.feature] = _as_column(rows[s.feature], moved)
    return out


def with_missing(
    rows: pd.DataFrame, feature: str, share: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """The `share` of `rows` (a seeded choice, at least one) chosen to lose `feature`, with it made missing (pandas'
    missing marker of the column, NaN, as a snapshot read back holds it), and their positions in `rows`. The other
    rows are unchanged, so their scores are too: only these need scoring."""
    import numpy as np

    count = max(1, round(share * len(rows)))
    chosen = np.sort(rng.choice(len(rows), size=count, replace=False))
    out = rows.iloc[chosen].copy()
    out[feature] = out[feature].mask(np.ones(count, dtype=bool))
    return out, chosen


def grid(values: np.ndarray) -> np.ndarray:
    """GRID_POINTS quantiles (5%..95%) of a feature on the test rows, rounded as its column shows values."""
    import numpy as np

    x = values[np.isfinite(values)]
    if not len(x):
        return np.empty(0)
    points = np.quantile(x, np.linspace(*GRID_QUANTILES, GRID_POINTS))
    return np.unique(np.round(points, decimals(values)))


def on_grid(rows: pd.DataFrame, feature: str, points: np.ndarray) -> pd.DataFrame:
    """`rows` repeated once per grid point, `feature` set to that point (block g holds point g)."""
    import numpy as np
    import pandas as pd

    stacked = pd.concat([rows] * len(points), ignore_index=True)
    values = np.repeat(points, len(rows))
    stacked[feature] = _as_column(rows[feature], values, length=len(stacked))
    return stacked


def _as_column(like: pd.Series, values: np.ndarray, *, length: int | None = None) -> pd.Series:
    """`values` as a column of `like`'s kind: an integer column keeps its dtype (numpy's only when none is missing)."""
    import numpy as np
    import pandas as pd

    index = like.index if length is None else pd.RangeIndex(length)
    column = pd.Series(values, index=index, name=like.name)
    whole = not np.isnan(values).any() or pd.api.types.is_extension_array_dtype(like.dtype)  # Int64 holds <NA>
    return column.astype(like.dtype) if pd.api.types.is_integer_dtype(like.dtype) and whole else column
