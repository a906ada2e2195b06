"""Per-feature drift between a reference window and a current window, and the drift verdict.

Numeric features: the two-sample Kolmogorov-Smirnov statistic and the population stability
index (PSI). Categorical features: the chi-square test of the reference-vs-current contingency
table and the Jensen-Shannon distance (base 2, in [0, 1]); current values the reference never
saw are counted in one ``(unseen)`` bucket, not dropped. P-values are corrected across features
with Benjamini-Hochberg; a feature drifts only when it is significant after correction **and**
its effect size passes its threshold (at a million rows a test flags shifts nobody cares about).
The dataset drifts when the (weighted) share of drifted features reaches ``drift_share``.

How it scales: both windows are read in chunks (Parquet row groups, CSV chunks; a DataFrame is
one chunk), so memory stays bounded however large the input. A first pass over the reference
keeps, per numeric feature, a bottom-k sample of at most ``RESERVOIR_SIZE`` values (each row's
key is a hash of its row number, so the sample does not depend on the chunk size; a DataFrame's
sample is the whole column, i.e. exact quantiles) and counts the categories. The sample sets the
bin edges: 10 quantile bins for PSI and ``FINE_BINS`` quantile bins for KS, plus a bin below the
reference minimum and one above its maximum. A second pass counts both windows into those bins
(sort the chunk, ``searchsorted`` the edges into it). The KS statistic is the largest gap between
the two binned empirical CDFs: exact at every bin edge (all edges are reference values, so
discrete features are exact), and never more than one fine bin's mass below the exact statistic.
Its p-value is asymptotic with the effective n = n*m/(n+m): ``kstwo.sf(D, round(en))`` as
``scipy.stats.ks_2samp(method="asymp")`` computes it up to en = 10,000, the limiting Kolmogorov
distribution ``kolmogorov(sqrt(en) * D)`` above (see ``ks_p_value``).
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from airflow_mlops.core.errors import MlopsError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from matplotlib.figure import Figure

    from airflow_mlops.core.config import MonitoringConfig, PipelineConfig

NUMERIC, CATEGORICAL = "numeric", "categorical"
PSI_BINS = 10  # quantile bins of the reference for the population stability index
FINE_BINS = 4096  # quantile bins of the reference for the KS statistic (resolution of the binned CDF)
RESERVOIR_SIZE = 200_000  # reference values per numeric feature that set the bin edges of a chunked input
KS_EXACT_N = 10_000  # effective n up to which the KS p-value is scipy's kstwo.sf (slow beyond)
EPSILON = 1e-4  # share given to an empty PSI bin (log of zero otherwise)
MAX_CATEGORIES = 10_000  # more distinct values than this: not a categorical feature (an identifier?)
UNSEEN = "(unseen)"  # current categories the reference never had
OTHER = "(other)"  # categories merged for display only
MAX_SHOWN_CATEGORIES = 20  # categories kept in a FeatureDrift's displayed distribution
TOP_PLOTS = 4  # features charted in the HTML report
SAMPLE_ROWS = 10_000  # rows read to infer column types when no config names them
DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?")


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
        return sorted(self.features, key=lambda f: (not f.drifted, -_finite(f.severity), f.p_adjusted, f.name))

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
        label or f.name, f.kind, f.statistic_name, f"{f.statistic:.4g}", f"{f.p_value:.3g}", f"{f.p_adjusted:.3g}",
        f"{f.effect_name}={f.effect:.4f}", f"{f.threshold:g}", "DRIFT" if f.drifted else "-",
    )


def _finite(x: float) -> float:
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


# --------------------------------------------------------------------------- the entry point


def compute_drift(
    reference: pd.DataFrame | str | Path,
    current: pd.DataFrame | str | Path,
    config: PipelineConfig | MonitoringConfig,
    *,
    features: list[str] | None = None,
    reference_scores: Any = None,
    current_scores: Any = None,
    chunk_rows: int = 250_000,
) -> DriftReport:
    """Drift of every feature from ``reference`` to ``current`` and the dataset verdict.

    ``reference`` / ``current``: a DataFrame, or a CSV/Parquet file, or a folder of them (read in
    chunks of ``chunk_rows``). ``config``: a ``PipelineConfig`` (its features, their types, its
    target and ``monitoring`` thresholds) or a bare ``MonitoringConfig`` (then every column is a
    feature, numeric dtypes numeric, anything else categorical, and both windows must have the
    same columns). ``features`` restricts the comparison to these columns. ``reference_scores`` /
    ``current_scores``: the champion's scores on both windows, for prediction drift. Raises
    ``DriftInputError`` when the windows cannot be compared: never a verdict on bad input.
    """
    from airflow_mlops.core.config import PipelineConfig

    if chunk_rows < 1:
        raise DriftInputError(f"chunk_rows must be >= 1, got {chunk_rows}")
    monitoring = config.monitoring if isinstance(config, PipelineConfig) else config
    ref, cur = _Source(reference, "reference"), _Source(current, "current")
    specs, skipped, target = _feature_specs(ref, cur, config, features)

    accs: dict[str, _Numeric | _Categorical] = {}
    for name, kind in [*specs.items(), *([target] if target else [])]:
        accs[name] = _Numeric(name, ref.reservoir_size()) if kind == NUMERIC else _Categorical(name)
    inferred = not isinstance(config, PipelineConfig) and features is None
    text_columns = [n for n, a in accs.items() if isinstance(a, _Categorical)]

    # Pass 1: the reference's sample (bin edges), categories and row count.
    rows_ref = 0
    for chunk in ref.chunks(list(accs), chunk_rows, text_columns):
        keys = _row_keys(np.arange(rows_ref, rows_ref + len(chunk), dtype=np.uint64))
        for name, acc in accs.items():
            acc.observe_reference(chunk[name], keys)
        rows_ref += len(chunk)
    if rows_ref == 0:
        raise DriftInputError(f"{ref.label}: the reference window is empty (0 rows); nothing to compare against")
    for name, acc in list(accs.items()):
        if isinstance(acc, _Categorical) and acc.too_many is not None:
            if not inferred:
                raise DriftInputError(
                    f"{ref.label}: column {name!r} has more than {MAX_CATEGORIES} distinct values in the reference: "
                    f"it is not a categorical feature (an identifier or free text?); leave it out of the features"
                )
            skipped[name] = f"more than {MAX_CATEGORIES} distinct values (an identifier?)"
            del accs[name]
        elif inferred and isinstance(acc, _Categorical) and acc.looks_like_identifier():
            skipped[name] = f"{len(acc.ref_counts)} distinct values in {acc.nonnull_ref} rows (an identifier?)"
            del accs[name]
    if target and target[0] in accs and accs[target[0]].nonnull_ref == 0:
        skipped[target[0]] = "target: no labels in the reference window"
        del accs[target[0]]
    _check_not_all_null(ref.label, "reference", [n for n, a in accs.items() if a.nonnull_ref == 0])
    for acc in accs.values():
        acc.freeze()

    # Pass 2: count both windows into the reference's bins.
    numeric_ref = [n for n, a in accs.items() if isinstance(a, _Numeric)]
    if numeric_ref:
        for chunk in ref.chunks(numeric_ref, chunk_rows, []):
            for name in numeric_ref:
                accs[name].count(0, chunk[name])
    rows_cur = 0
    for chunk in cur.chunks(list(accs), chunk_rows, [n for n in text_columns if n in accs]):
        for name, acc in accs.items():
            acc.count(1, chunk[name])
        rows_cur += len(chunk)
    if rows_cur == 0:
        raise DriftInputError(f"{cur.label}: the current window is empty (0 rows); wait for data before checking drift")
    if target and target[0] in accs and accs[target[0]].nonnull_cur == 0:  # labels arrive later
        skipped[target[0]] = "target: no labels in the current window yet"
        del accs[target[0]]
    _check_not_all_null(cur.label, "current", [n for n, a in accs.items() if a.nonnull_cur == 0])

    weights = monitoring.weights or {}
    results = []
    for name in specs:
        if name in accs:
            fd = accs[name].result(monitoring)
            fd.weight = float(weights.get(name, 1.0))
            results.append(fd)
    if not results:
        raise DriftInputError(
            f"no features left to compare ({'; '.join(f'{k}: {v}' for k, v in skipped.items()) or 'none given'})"
        )
    adjusted = benjamini_hochberg([f.p_value for f in results])
    for f, q in zip(results, adjusted, strict=True):
        f.p_adjusted = float(q)
        f.drifted = _drifted(f, monitoring.alpha)

    target_fd = None
    if target and target[0] in accs:
        target_fd = accs[target[0]].result(monitoring)
        target_fd.drifted = _drifted(target_fd, monitoring.alpha)
    prediction = _prediction_drift(reference_scores, current_scores, monitoring)

    total = sum(f.weight for f in results)
    if not total > 0:
        raise DriftInputError(f"monitoring.weights: the features' weights sum to {total:g}; weights must be positive")
    share = sum(f.weight for f in results if f.drifted) / total
    drifted = [f.name for f in sorted(results, key=lambda f: -_finite(f.severity)) if f.drifted]
    return DriftReport(
        features=results,
        drift=bool(share >= monitoring.drift_share),
        drift_share=float(share),
        drifted=drifted,
        prediction=prediction,
        target=target_fd,
        rows_reference=rows_ref,
        rows_current=rows_cur,
        alpha=monitoring.alpha,
        share_threshold=monitoring.drift_share,
        skipped=skipped,
    )


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), in the input order."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(adjusted, 0.0, 1.0)
    return out


def _drifted(f: FeatureDrift, alpha: float) -> bool:
    return bool(f.p_adjusted <= alpha and f.effect >= f.threshold)


def _check_not_all_null(label: str, side: str, names: list[str]) -> None:
    if names:
        raise DriftInputError(
            f"{label}: column(s) {', '.join(map(repr, names))} have no values in the {side} window (all null): "
            f"a data problem, not a drift verdict; fix the upstream export or leave the column out of the features"
        )


def _prediction_drift(reference_scores: Any, current_scores: Any, monitoring: MonitoringConfig) -> FeatureDrift | None:
    """PSI + KS on the champion's scores of both windows (1-D scores, or the positive column of 2-column probas)."""
    if reference_scores is None and current_scores is None:
        return None
    if reference_scores is None or current_scores is None:
        raise DriftInputError("prediction drift needs the champion's scores on both windows (reference and current)")
    acc = _Numeric("prediction", 0)
    sides = []
    for side, raw in (("reference", reference_scores), ("current", current_scores)):
        s = np.asarray(raw, dtype=float)
        if s.ndim == 2 and s.shape[1] <= 2:
            s = s[:, -1]
        if s.ndim != 1:
            raise DriftInputError(
                f"{side} scores have shape {s.shape}: give 1-D scores (or the 2-column probabilities of a binary model)"
            )
        if len(s) == 0:
            raise DriftInputError(f"the {side} scores are empty: score a non-empty window")
        sides.append(pd.Series(s))
    acc.k = len(sides[0])
    acc.observe_reference(sides[0], _row_keys(np.arange(len(sides[0]), dtype=np.uint64)))
    _check_not_all_null("scores", "reference", ["prediction"] if acc.nonnull_ref == 0 else [])
    acc.freeze()
    acc.count(0, sides[0])
    acc.count(1, sides[1])
    _check_not_all_null("scores", "current", ["prediction"] if acc.nonnull_cur == 0 else [])
    fd = acc.result(monitoring)
    fd.drifted = _drifted(fd, monitoring.alpha)
    return fd


# --------------------------------------------------------------------------- what to compare


def _feature_specs(
    ref: _Source, cur: _Source, config: PipelineConfig | MonitoringConfig, features: list[str] | None
) -> tuple[dict[str, str], dict[str, str], tuple[str, str] | None]:
    """{feature: kind}, {skipped column: why}, and (target, kind) when both windows have the target."""
    from airflow_mlops.core.config import PipelineConfig

    ref_cols, cur_cols = ref.columns, cur.columns
    known: dict[str, str] = {}
    target = None
    if isinstance(config, PipelineConfig):
        known = {f.name: f.type for f in config.features}
        names = list(features) if features is not None else config.feature_names
        if config.target in ref_cols and config.target in cur_cols and config.target not in names:
            target = (config.target, CATEGORICAL if config.is_classification else NUMERIC)
    elif features is not None:
        names = list(features)
    else:
        only_ref = [c for c in ref_cols if c not in cur_cols]
        only_cur = [c for c in cur_cols if c not in ref_cols]
        if only_ref or only_cur:
            raise DriftInputError(
                f"the windows have different columns: only in the reference ({ref.label}): "
                f"{', '.join(map(repr, only_ref)) or '-'}; only in the current ({cur.label}): "
                f"{', '.join(map(repr, only_cur)) or '-'}. Compare windows of the same dataset, or name the features"
            )
        names = list(ref_cols)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DriftInputError(f"feature(s) listed twice: {', '.join(map(repr, dupes))}")
    missing_ref = [n for n in names if n not in ref_cols]
    missing_cur = [n for n in names if n not in cur_cols]
    if missing_ref or missing_cur:
        parts = []
        if missing_ref:
            parts.append(f"missing in the reference ({ref.label}): {', '.join(map(repr, missing_ref))}")
        if missing_cur:
            parts.append(f"missing in the current window ({cur.label}): {', '.join(map(repr, missing_cur))}")
        raise DriftInputError(
            f"the windows do not have the same feature columns: {'; '.join(parts)}. Both windows need every feature"
        )
    if not names:
        raise DriftInputError(f"{ref.label}: no columns to compare")

    specs: dict[str, str] = {}
    skipped: dict[str, str] = {}
    unknown = [n for n in names if n not in known]
    sample = ref.sample(unknown) if unknown else None
    for name in names:
        if name in known:
            specs[name] = known[name]
            continue
        assert sample is not None
        kind, why = _infer_kind(sample[name])
        if kind is None:
            skipped[name] = why
        else:
            specs[name] = kind
    return specs, skipped, target


def _infer_kind(series: pd.Series) -> tuple[str | None, str]:
    """numeric for numeric dtypes, categorical otherwise; None (with the reason) for date/time columns."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return CATEGORICAL, ""
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC, ""
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return None, "a date/time column (time moves on: not a feature to compare)"
    values = series.dropna()
    if len(values) and values.astype(str).str.match(DATE_LIKE).all():
        return None, "looks like a date column (time moves on: not a feature to compare)"
    return CATEGORICAL, ""


# --------------------------------------------------------------------------- reading the windows


class _Source:
    """A DataFrame, or a CSV/Parquet file or folder of them, read in chunks."""

    def __init__(self, data: pd.DataFrame | str | Path, side: str) -> None:
        self.side = side
        self.frame: pd.DataFrame | None = None
        self.files: list[Path] = []
        if isinstance(data, pd.DataFrame):
            self.label = f"{side} DataFrame"
            self.columns = [str(c) for c in data.columns]
            if len(set(self.columns)) != len(self.columns):
                raise DriftInputError(f"{self.label}: duplicated column names")
            self.frame = data.set_axis(self.columns, axis=1) if list(data.columns) != self.columns else data
            return
        path = Path(data)
        self.label = str(path)
        if path.is_dir():
            self.files = sorted(
                p for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in (".csv", ".parquet")
            )
            if not self.files:
                raise DriftInputError(f"{path}: the {side} folder has no .csv or .parquet files")
        elif path.is_file():
            self.files = [path]
        else:
            raise DriftInputError(f"{path}: the {side} window is not a file or folder (not found)")
        self.columns = self._header(self.files[0])
        for f in self.files[1:]:
            cols = self._header(f)
            if set(cols) != set(self.columns):
                raise DriftInputError(
                    f"{f}: columns differ from {self.files[0].name} (missing: "
                    f"{', '.join(sorted(set(self.columns) - set(cols))) or '-'}; extra: "
                    f"{', '.join(sorted(set(cols) - set(self.columns))) or '-'}); the files of a window share columns"
                )

    def reservoir_size(self) -> int:
        """A DataFrame's sample is the whole column (exact quantiles); a file's is bounded."""
        return max(RESERVOIR_SIZE, len(self.frame)) if self.frame is not None else RESERVOIR_SIZE

    @staticmethod
    def _is_parquet(path: Path) -> bool:
        return path.suffix.lower() == ".parquet"

    def _header(self, path: Path) -> list[str]:
        try:
            if self._is_parquet(path):
                import pyarrow.parquet as pq

                return list(pq.ParquetFile(path).schema_arrow.names)
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        except pd.errors.EmptyDataError:
            raise DriftInputError(f"{path}: the {self.side} file is empty (no header)") from None
        except Exception as exc:
            raise DriftInputError(f"{path}: cannot read the {self.side} file ({exc})") from None

    def sample(self, columns: list[str]) -> pd.DataFrame:
        """The first rows, to infer column types."""
        if self.frame is not None:
            return self.frame[columns].head(SAMPLE_ROWS)
        for chunk in self.chunks(columns, SAMPLE_ROWS, []):
            return chunk
        return pd.DataFrame({c: [] for c in columns})

    def chunks(self, columns: list[str], chunk_rows: int, text_columns: list[str]) -> Iterator[pd.DataFrame]:
        """The columns, chunk by chunk (categorical columns of a CSV are read as text)."""
        if self.frame is not None:
            yield self.frame[columns]
            return
        for path in self.files:
            try:
                if self._is_parquet(path):
                    import pyarrow.parquet as pq

                    pf = pq.ParquetFile(path)
                    # one row group at a time: a single iter_batches over the file keeps every row group's
                    # pre-buffered column chunks until it ends (memory grows with the file)
                    for group in range(pf.metadata.num_row_groups):
                        for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=[group], columns=columns):
                            yield batch.to_pandas()
                else:
                    dtype = {c: "str" for c in text_columns if c in columns}
                    with pd.read_csv(path, usecols=columns, chunksize=chunk_rows, dtype=dtype) as reader:
                        yield from reader
            except DriftInputError:
                raise
            except pd.errors.EmptyDataError:
                continue
            except (ValueError, OSError, pd.errors.ParserError) as exc:
                raise DriftInputError(f"{path}: cannot read the {self.side} file ({exc})") from None


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """A pseudo-random 64-bit key per row number (splitmix64): the bottom-k sample's ordering."""
    with np.errstate(over="ignore"):
        z = rows.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


# --------------------------------------------------------------------------- numeric features


class _Numeric:
    """KS + PSI on reference-quantile bins, accumulated chunk by chunk."""

    def __init__(self, name: str, k: int) -> None:
        self.name, self.k = name, k
        self.keys = np.empty(0, dtype=np.uint64)
        self.sample = np.empty(0)
        self.full = False
        self.max_key = np.uint64(0)
        self.nonnull_ref = self.nonnull_cur = 0
        self.nulls = [0, 0]
        self.edges = np.empty(0)
        self.psi_edges = np.empty(0)
        self.psi_of_fine = np.empty(0, dtype=np.intp)
        self.counts = [np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)]

    def _values(self, series: pd.Series, side: str) -> np.ndarray:
        if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
            converted = pd.to_numeric(series, errors="coerce")
            bad = converted.isna() & series.notna()
            if bad.any():
                examples = ", ".join(repr(v) for v in series[bad].unique()[:5])
                raise DriftInputError(
                    f"{side} window: numeric column {self.name!r} has {int(bad.sum())} non-numeric value(s) "
                    f"(e.g. {examples}): a data problem; fix the data (or declare the feature categorical)"
                )
            series = converted
        return series.to_numpy(dtype=float, na_value=np.nan)

    def observe_reference(self, series: pd.Series, keys: np.ndarray) -> None:
        values = self._values(series, "reference")
        ok = ~np.isnan(values)
        values, keys = values[ok], keys[ok]
        self.nonnull_ref += len(values)
        if self.full:  # only rows whose key beats the current k-th smallest can enter
            better = keys < self.max_key
            values, keys = values[better], keys[better]
        keys = np.concatenate([self.keys, keys])
        values = np.concatenate([self.sample, values])
        if len(keys) > self.k:
            keep = np.argpartition(keys, self.k - 1)[: self.k]
            keys, values = keys[keep], values[keep]
            self.full = True
            self.max_key = keys.max()
        self.keys, self.sample = keys, values

    def freeze(self) -> None:
        """Bin edges from the reference sample: deciles for PSI, FINE_BINS quantiles for KS."""
        s = np.sort(self.sample)
        n = len(s)

        def quantile(p: np.ndarray) -> np.ndarray:  # inverted CDF: every edge is a reference value
            return s[np.clip(np.ceil(p * n).astype(np.int64) - 1, 0, n - 1)]

        below = np.nextafter(s[0], -np.inf)  # a bin for values under the reference minimum
        self.psi_edges = np.unique(np.concatenate([[below], quantile(np.arange(1, PSI_BINS) / PSI_BINS), [s[-1]]]))
        fine = quantile(np.arange(1, FINE_BINS) / FINE_BINS)
        self.edges = np.unique(np.concatenate([self.psi_edges, fine]))
        # fine bin j holds (edges[j-1], edges[j]]; the last one holds values above the reference maximum
        self.psi_of_fine = np.append(np.searchsorted(self.psi_edges, self.edges, side="left"), len(self.psi_edges))
        self.counts = [np.zeros(len(self.edges) + 1, dtype=np.int64) for _ in range(2)]
        self.keys = np.empty(0, dtype=np.uint64)
        self.sample = np.empty(0)

    def count(self, side: int, series: pd.Series) -> None:
        values = self._values(series, ("reference", "current")[side])
        values = np.sort(values[~np.isnan(values)])
        self.nulls[side] += len(series) - len(values)
        if side == 1:
            self.nonnull_cur += len(values)
        at_or_below = np.searchsorted(values, self.edges, side="right")
        self.counts[side] += np.diff(at_or_below, prepend=0, append=len(values))

    def result(self, monitoring: MonitoringConfig) -> FeatureDrift:
        ref, cur = self.counts
        n_ref, n_cur = int(ref.sum()), int(cur.sum())
        gap = np.abs(np.cumsum(ref) / n_ref - np.cumsum(cur) / n_cur)
        ks = float(gap.max())
        p = ks_p_value(ks, n_ref, n_cur)
        size = len(self.psi_edges) + 1
        pr = np.bincount(self.psi_of_fine, weights=ref, minlength=size) / n_ref
        pc = np.bincount(self.psi_of_fine, weights=cur, minlength=size) / n_cur
        psi = float(population_stability_index(pr, pc))
        _check_finite(self.name, ks=ks, p=p, psi=psi)
        labels = _interval_labels(self.psi_edges)
        return FeatureDrift(
            name=self.name, kind=NUMERIC, statistic=ks, statistic_name="ks", p_value=p, p_adjusted=p,
            effect=psi, effect_name="psi", threshold=monitoring.psi_threshold, drifted=False,
            count_reference=n_ref, count_current=n_cur,
            null_share_reference=self.nulls[0] / max(1, self.nulls[0] + n_ref),
            null_share_current=self.nulls[1] / max(1, self.nulls[1] + n_cur),
            bins=labels, reference_share=pr.tolist(), current_share=pc.tolist(),
            edges=[float(e) for e in self.psi_edges],
        )


def ks_p_value(statistic: float, n_ref: int, n_cur: int) -> float:
    """Two-sided asymptotic p-value of the two-sample KS statistic, with the effective n = n*m/(n+m).

    Up to ``KS_EXACT_N`` it is what ``scipy.stats.ks_2samp(method="asymp")`` computes,
    ``kstwo.sf(D, round(en))``; above, the limiting Kolmogorov distribution
    ``kolmogorov(sqrt(en) * D)``: instant, where ``kstwo.sf`` can take half a second per call at a
    million rows, and for p-values >= 1e-4 within 1.6% (relative) of it at en = 10,000, 0.2% at 500,000.
    """
    from scipy.special import kolmogorov
    from scipy.stats import kstwo

    en = n_ref * n_cur / (n_ref + n_cur)
    p = kstwo.sf(statistic, round(en)) if en <= KS_EXACT_N else kolmogorov(math.sqrt(en) * statistic)
    return float(np.clip(p, 0.0, 1.0))


def population_stability_index(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    """PSI = sum((c - r) * ln(c / r)) over bins; empty bins count as EPSILON."""
    r = np.clip(np.asarray(reference_share, dtype=float), EPSILON, None)
    c = np.clip(np.asarray(current_share, dtype=float), EPSILON, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _interval_labels(edges: np.ndarray) -> list[str]:
    """Labels of the PSI bins: below the reference minimum, (a, b] ..., above the reference maximum."""
    low = float(np.nextafter(edges[0], np.inf))  # the reference minimum
    e = [f"{x:.4g}" for x in edges]
    labels = [f"< {low:.4g}"]
    labels += [f"[{low:.4g}, {e[1]}]" if len(e) > 1 else f"[{low:.4g}, {e[0]}]"]
    labels += [f"({a}, {b}]" for a, b in zip(e[1:-1], e[2:], strict=True)]
    labels.append(f"> {e[-1]}")
    return labels


def _check_finite(name: str, **values: float) -> None:
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise DriftInputError(
            f"column {name!r}: the drift statistic(s) {', '.join(bad)} came out NaN/infinite: a data problem "
            f"(no usable values?), not 'no drift'; check the column in both windows"
        )


# --------------------------------------------------------------------------- categorical features


class _Categorical:
    """Chi-square + Jensen-Shannon distance on category counts (unseen categories in one bucket)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ref_counts: dict[str, int] = {}
        self.cur_counts: dict[str, int] = {}
        self.nonnull_ref = self.nonnull_cur = 0
        self.nulls = [0, 0]
        self.too_many: int | None = None

    @staticmethod
    def _counts(series: pd.Series) -> pd.Series:
        values = series.dropna()
        if pd.api.types.is_float_dtype(values.dtype) and len(values) and bool((values % 1 == 0).all()):
            values = values.astype(np.int64)  # 1.0 and 1 are the same category (a CSV chunk with nulls is float)
        return values.astype(str).value_counts(sort=False)

    @staticmethod
    def _merge(into: dict[str, int], counts: pd.Series) -> None:
        for key, n in zip(counts.index.tolist(), counts.tolist(), strict=True):
            into[key] = into.get(key, 0) + int(n)

    def observe_reference(self, series: pd.Series, keys: np.ndarray) -> None:
        counts = self._counts(series)
        n = int(counts.sum())
        self.nonnull_ref += n
        self.nulls[0] += len(series) - n
        if self.too_many is None:
            self._merge(self.ref_counts, counts)
            if len(self.ref_counts) > MAX_CATEGORIES:
                self.too_many = len(self.ref_counts)
                self.ref_counts = {}

    def looks_like_identifier(self) -> bool:
        return len(self.ref_counts) > max(100, self.nonnull_ref // 2)

    def freeze(self) -> None:
        pass

    def count(self, side: int, series: pd.Series) -> None:
        if side == 0:
            return  # counted in the first pass
        counts = self._counts(series)
        n = int(counts.sum())
        self.nonnull_cur += n
        self.nulls[1] += len(series) - n
        self._merge(self.cur_counts, counts)

    def result(self, monitoring: MonitoringConfig) -> FeatureDrift:
        cats = sorted(self.ref_counts, key=lambda c: (-self.ref_counts[c], c))
        ref = np.array([self.ref_counts[c] for c in cats] + [0], dtype=float)
        cur = np.array([self.cur_counts.get(c, 0) for c in cats] + [0], dtype=float)
        cur[-1] = sum(n for c, n in self.cur_counts.items() if c not in self.ref_counts)
        stat, p, dof = chi_square(ref, cur)
        pr, pc = ref / ref.sum(), cur / cur.sum()
        js = float(jensen_shannon(pr, pc))
        _check_finite(self.name, chi2=stat, p=p, js=js)
        labels, shown_r, shown_c = _shown_categories([*cats, UNSEEN], pr, pc)
        return FeatureDrift(
            name=self.name, kind=CATEGORICAL, statistic=stat, statistic_name="chi2", p_value=p, p_adjusted=p,
            effect=js, effect_name="js", threshold=monitoring.js_threshold, drifted=False,
            count_reference=int(ref.sum()), count_current=int(cur.sum()),
            null_share_reference=self.nulls[0] / max(1, self.nulls[0] + int(ref.sum())),
            null_share_current=self.nulls[1] / max(1, self.nulls[1] + int(cur.sum())),
            bins=labels, reference_share=shown_r, current_share=shown_c, dof=dof, unseen_share=float(pc[-1]),
        )


def chi_square(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float, int]:
    """Pearson's chi-square test of the 2 x K table (no continuity correction); empty categories dropped."""
    from scipy.stats import chi2

    table = np.vstack([reference_counts, current_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    dof = table.shape[1] - 1
    if dof < 1:
        return 0.0, 1.0, 0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return stat, float(chi2.sf(stat, dof)), dof


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance with base-2 logarithms (0 = same distribution, 1 = disjoint)."""
    from scipy.special import rel_entr

    p = np.asarray(p, dtype=float) / np.sum(p)
    q = np.asarray(q, dtype=float) / np.sum(q)
    m = (p + q) / 2
    divergence = (rel_entr(p, m).sum() + rel_entr(q, m).sum()) / 2 / math.log(2)
    return float(math.sqrt(max(divergence, 0.0)))


def _shown_categories(labels: list[str], pr: np.ndarray, pc: np.ndarray) -> tuple[list[str], list[float], list[float]]:
    """The categories to display: the largest by max share, the rest merged into (other); unseen when present."""
    body = list(range(len(labels) - 1))
    body.sort(key=lambda i: -max(pr[i], pc[i]))
    keep, rest = body[:MAX_SHOWN_CATEGORIES], body[MAX_SHOWN_CATEGORIES:]
    names = [labels[i] for i in keep]
    r = [float(pr[i]) for i in keep]
    c = [float(pc[i]) for i in keep]
    if rest:
        names.append(OTHER)
        r.append(float(pr[rest].sum()))
        c.append(float(pc[rest].sum()))
    if pc[-1] > 0:
        names.append(UNSEEN)
        r.append(0.0)
        c.append(float(pc[-1]))
    return names, r, c


# --------------------------------------------------------------------------- the HTML report


def drift_report_html(report: DriftReport, out_dir: str | Path) -> Path:
    """``<out_dir>/drift_report.html``: the verdict, the table and charts of the worst features (PNG files)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    worst = report.worst_first()[:TOP_PLOTS]
    extras = [f for f in (report.prediction, report.target) if f is not None]
    images = []
    for i, f in enumerate([*worst, *extras]):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f.name)[:60]
        images.append((f, distribution_plot(f, out / f"drift_{i:02d}_{safe}.png")))

    def cell(v: Any) -> str:
        return html.escape(str(v))

    rows = []
    for f in report.worst_first():
        rows.append(
            f"<tr class='{'drift' if f.drifted else ''}'><td>{cell(f.name)}</td><td>{f.kind}</td>"
            f"<td>{f.statistic_name} = {f.statistic:.4g}</td><td>{f.p_value:.3g}</td><td>{f.p_adjusted:.3g}</td>"
            f"<td>{f.effect_name} = {f.effect:.4f}</td><td>{f.threshold:g}</td><td>{f.weight:g}</td>"
            f"<td>{f.null_share_reference:.3f} / {f.null_share_current:.3f}</td>"
            f"<td>{'DRIFT' if f.drifted else '-'}</td></tr>"
        )
    for extra, label in ((report.prediction, "prediction"), (report.target, "target")):
        if extra:
            f = extra
            rows.append(
                f"<tr class='extra {'drift' if f.drifted else ''}'><td>[{label}] {cell(f.name)}</td><td>{f.kind}</td>"
                f"<td>{f.statistic_name} = {f.statistic:.4g}</td><td>{f.p_value:.3g}</td><td>-</td>"
                f"<td>{f.effect_name} = {f.effect:.4f}</td><td>{f.threshold:g}</td><td>-</td>"
                f"<td>{f.null_share_reference:.3f} / {f.null_share_current:.3f}</td>"
                f"<td>{'DRIFT' if f.drifted else '-'}</td></tr>"
            )
    skipped = "".join(f"<li>{cell(k)}: {cell(v)}</li>" for k, v in report.skipped.items())
    figures = "".join(
        f"<figure><img src='{cell(p.name)}' alt='{cell(f.name)}'><figcaption>{cell(f.name)}</figcaption></figure>"
        for f, p in images
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift report</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}} tr.drift td{{background:#fde2e2}}
tr.extra td{{font-style:italic}} figure{{display:inline-block;margin:0 1em 1em 0}} img{{max-width:560px}}</style>
</head><body>
<h1>Drift report: {'DRIFT' if report.drift else 'no drift'}</h1>
<p>{cell(report.summary())}</p>
<p>A feature drifts when its Benjamini-Hochberg adjusted p-value is at most {report.alpha:g} and its effect size
(PSI for numeric, Jensen-Shannon distance for categorical features) reaches its threshold; the dataset drifts when
the weighted share of drifted features reaches {report.share_threshold:g}.</p>
<table><tr><th>feature</th><th>kind</th><th>statistic</th><th>p-value</th><th>adjusted</th><th>effect</th>
<th>threshold</th><th>weight</th><th>null share ref / cur</th><th>verdict</th></tr>
{''.join(rows)}</table>
{f'<h2>Skipped columns</h2><ul>{skipped}</ul>' if skipped else ''}
<h2>Distributions (worst features)</h2>
{figures}
</body></html>
"""
    path = out / "drift_report.html"
    path.write_text(page, encoding="utf-8")
    return path


def distribution_plot(feature: FeatureDrift, path: str | Path) -> Path:
    """Reference vs current shares per bin (PSI bins or categories) as grouped bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(feature.bins)
    fig: Figure = Figure(figsize=(max(6.4, 0.45 * n + 2), 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(n)
    ax.bar(x - 0.2, feature.reference_share, width=0.4, label="reference")
    ax.bar(x + 0.2, feature.current_share, width=0.4, label="current")
    ax.set_xticks(x)
    ax.set_xticklabels(feature.bins, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of rows")
    verdict = "DRIFT" if feature.drifted else "stable"
    ax.set_title(
        f"{feature.name}: {feature.effect_name}={feature.effect:.3f}, {feature.statistic_name}="
        f"{feature.statistic:.3g}, p_adj={feature.p_adjusted:.2g} ({verdict})",
        fontsize=9,
    )
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
