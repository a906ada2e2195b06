"""One canonical identity per row: the 8-byte hash the rows record, the split and the gate share.

A row must hash the same in every snapshot that holds it, whatever dtypes the reader guessed that
day. Each cell is reduced to one canonical value before hashing:

- numbers: integers and floats of one value are equal (1 == 1.0 == "1"), -0.0 is 0.0, and a
  non-integer float is taken at float32 precision (a float32 column and its float64 copy agree);
- booleans and their text forms: True == "true" == "True" == 1; False likewise == 0;
- timestamps: datetime values and ISO text ("2026-01-05", "2026-01-05 00:00:00") as one ISO
  timestamp (time zones converted to UTC);
- anything else as its text; every missing value (None, NaN, NaT, pd.NA, "") as one marker.

So a mixed-type column stringified at snapshot time, an integer column read as float on a day
with a blank, or a boolean column kept as objects still matches. ``SCHEME`` names this scheme in
every record; records of scheme 1 (before it) are re-hashed with ``legacy_row_hashes``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SCHEME = 2
_MISSING_HASH = 0x9E3779B97F4A7C15  # the hash of every missing cell
_MULTIPLIER = 0x100000001B3  # FNV-style mixing of a row's cell hashes, column by column
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_BOOL_TEXT = {"true": 1.0, "false": 0.0}


def row_hashes(frame: pd.DataFrame, columns: list[str] | None = None, *, seed: int = 0) -> np.ndarray:
    """The canonical hash (uint64) of each row over `columns` (default: all, sorted by name).

    `seed` gives another, independent family of hashes (the split's buckets use the config's seed).
    """
    import numpy as np

    columns = sorted(map(str, frame.columns)) if columns is None else list(columns)
    combined = np.full(
        len(frame), np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ np.uint64(0xCBF29CE484222325), dtype=np.uint64
    )
    with np.errstate(over="ignore"):
        for name in columns:
            combined = (combined * np.uint64(_MULTIPLIER)) ^ _cell_hashes(frame[name])
    return _finalise(combined)


def _cell_hashes(col: pd.Series) -> np.ndarray:
    """The canonical hash of every cell of one column."""
    import numpy as np
    import pandas as pd

    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    if pd.api.types.is_datetime64_any_dtype(col):
        return _text_hashes(_iso_times(col), col.isna().to_numpy())
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        values = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy(na_value=np.nan)
        return _number_hashes(values)
    return _mixed_hashes(col)


def _mixed_hashes(col: pd.Series) -> np.ndarray:
    """Object or text cells: each one a number, a boolean, a timestamp or a text, by its value (each distinct
    value canonicalised once)."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(col.astype(object), use_na_sentinel=True)
    hashes = np.append(
        _distinct_hashes(pd.Series(np.asarray(uniques, dtype=object), dtype=object), col.dtype),
        np.uint64(_MISSING_HASH),
    )
    return hashes[codes]  # code -1 (missing): the marker appended last


def _distinct_hashes(values: pd.Series, dtype: Any) -> np.ndarray:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_string_dtype(dtype) and getattr(dtype, "kind", "O") != "O" or values.map(type).eq(str).all():
        is_text = ~values.isna().to_numpy(dtype=bool)  # text only: vectorised string operations
        stripped = values.str.strip()
        flags = stripped.str.lower().map(_BOOL_TEXT)
        is_stamp = stripped.str.match(_ISO_TIME).fillna(False).to_numpy(dtype=bool)
    else:
        is_text = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        stripped = values.map(lambda v: v.strip() if isinstance(v, str) else v)
        flags = stripped.map(
            lambda v: (
                float(v)
                if isinstance(v, (bool, np.bool_))
                else _BOOL_TEXT.get(v.lower())
                if isinstance(v, str)
                else None
            )
        )
        is_stamp = values.map(lambda v: isinstance(v, (pd.Timestamp, np.datetime64, dt.date))).to_numpy(dtype=bool) | (
            is_text & stripped.map(lambda v: isinstance(v, str) and bool(_ISO_TIME.match(v))).to_numpy(dtype=bool)
        )
    missing = values.isna().to_numpy(dtype=bool) | (is_text & (stripped == "").to_numpy(dtype=bool))
    numbers = pd.to_numeric(stripped.where(flags.isna(), flags), errors="coerce").astype("float64").to_numpy()
    is_number = ~missing & np.isfinite(numbers)
    texts = stripped.astype(str).to_numpy(dtype=object)
    stamp_like = ~missing & ~is_number & is_stamp
    if stamp_like.any():
        parsed = pd.to_datetime(pd.Series(texts[stamp_like]), errors="coerce", format="ISO8601", utc=True)
        iso = _iso_times(parsed)
        ok = ~parsed.isna().to_numpy()
        texts[np.flatnonzero(stamp_like)[ok]] = iso[ok]
    hashes = np.where(is_number, _number_hashes(numbers), _text_hashes(texts, missing | is_number))
    hashes[missing] = np.uint64(_MISSING_HASH)
    return hashes


def _number_hashes(values: np.ndarray) -> np.ndarray:
    """Hashes of canonical numbers: -0.0 as 0.0, non-integers at float32 precision; NaN as missing."""
    import numpy as np
    import pandas as pd

    values = np.asarray(values, dtype="float64") + 0.0  # -0.0 + 0.0 == +0.0
    integral = np.isfinite(values) & (np.floor(values) == values)
    with np.errstate(over="ignore", invalid="ignore"):
        narrowed = values.astype(np.float32).astype(np.float64)
    canonical = np.where(integral, values, narrowed) + 0.0
    hashes = pd.util.hash_array(canonical.view(np.uint64), categorize=False)
    hashes = np.asarray(hashes, dtype=np.uint64) ^ np.uint64(0x5555555555555555)
    hashes[~np.isfinite(values)] = np.uint64(_MISSING_HASH)
    return hashes


def _text_hashes(texts: Any, missing: np.ndarray) -> np.ndarray:
    import numpy as np
    import pandas as pd

    texts = np.asarray(texts, dtype=object).copy()
    texts[missing] = ""
    hashes = np.asarray(pd.util.hash_array(texts, categorize=False), dtype=np.uint64)
    hashes[missing] = np.uint64(_MISSING_HASH)
    return hashes


def _iso_times(values: pd.Series) -> np.ndarray:
    """ISO text of each timestamp, naive in UTC ('2026-01-05T00:00:00')."""
    import numpy as np
    import pandas as pd

    stamps = pd.to_datetime(values, errors="coerce", utc=True).dt.tz_localize(None)
    return np.asarray(stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").to_numpy(dtype=object, na_value=""), dtype=object)


def _finalise(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit (the buckets use the low bits)."""
    import numpy as np

    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _is_missing(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(value is None or value != value)  # NaN, NaT and pd.NA are not equal to themselves
    except (TypeError, ValueError):  # pd.NA's comparison is ambiguous
        return True


# --------------------------------------------------------------------------- scheme 1 (records made before SCHEME 2)


def legacy_row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The hashes of scheme 1: numbers (and booleans) as float64, anything else as text, missing as one marker."""
    import pandas as pd

    canonical = {}
    for name in columns:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            canonical[name] = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        else:
            canonical[name] = col.map(lambda v: "\x00<NA>" if _legacy_missing(v) else str(v)).astype(object).to_numpy()
    table = pd.DataFrame(canonical, columns=columns)
    return pd.util.hash_pandas_object(table, index=False).to_numpy()


def _legacy_missing(value: Any) -> bool:
    try:
        return bool(value is None or value != value)
    except (TypeError, ValueError):
        return True
