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

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from airflow_mlops.core.drift.categorical import MAX_CATEGORIES, CategoricalAccumulator
from airflow_mlops.core.drift.kinds import feature_specs
from airflow_mlops.core.drift.numeric import NumericAccumulator
from airflow_mlops.core.drift.report import (
    NUMERIC,
    DriftInputError,
    DriftReport,
    FeatureDrift,
    finite_for_sorting,
)
from airflow_mlops.core.drift.windows import WindowReader, row_keys

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from airflow_mlops.core.config import MonitoringConfig, PipelineConfig


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
    ref, cur = WindowReader(reference, "reference"), WindowReader(current, "current")
    specs, skipped, target = feature_specs(ref, cur, config, features)

    accs: dict[str, NumericAccumulator | CategoricalAccumulator] = {}
    for name, kind in [*specs.items(), *([target] if target else [])]:
        accs[name] = NumericAccumulator(name, ref.reservoir_size()) if kind == NUMERIC else CategoricalAccumulator(name)
    inferred = not isinstance(config, PipelineConfig) and features is None
    text_columns = [n for n, a in accs.items() if isinstance(a, CategoricalAccumulator)]

    # Pass 1: the reference's sample (bin edges), categories and row count.
    rows_ref = 0
    for chunk in ref.chunks(list(accs), chunk_rows, text_columns):
        keys = row_keys(np.arange(rows_ref, rows_ref + len(chunk), dtype=np.uint64))
        for name, acc in accs.items():
            acc.observe_reference(chunk[name], keys)
        rows_ref += len(chunk)
    if rows_ref == 0:
        raise DriftInputError(f"{ref.label}: the reference window is empty (0 rows); nothing to compare against")
    for name, acc in list(accs.items()):
        if isinstance(acc, CategoricalAccumulator) and acc.too_many is not None:
            if not inferred:
                raise DriftInputError(
                    f"{ref.label}: column {name!r} has more than {MAX_CATEGORIES} distinct values in the reference: "
                    f"it is not a categorical feature (an identifier or free text?); leave it out of the features"
                )
            skipped[name] = f"more than {MAX_CATEGORIES} distinct values (an identifier?)"
            del accs[name]
        elif inferred and isinstance(acc, CategoricalAccumulator) and acc.looks_like_identifier():
            skipped[name] = f"{len(acc.ref_counts)} distinct values in {acc.nonnull_ref} rows (an identifier?)"
            del accs[name]
    if target and target[0] in accs and accs[target[0]].nonnull_ref == 0:
        skipped[target[0]] = "target: no labels in the reference window"
        del accs[target[0]]
    _check_not_all_null(ref.label, "reference", [n for n, a in accs.items() if a.nonnull_ref == 0])
    for acc in accs.values():
        acc.freeze()

    # Pass 2: count both windows into the reference's bins.
    numeric_ref = [n for n, a in accs.items() if isinstance(a, NumericAccumulator)]
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
    drifted = [f.name for f in sorted(results, key=lambda f: -finite_for_sorting(f.severity)) if f.drifted]
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
    acc = NumericAccumulator("prediction", 0)
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
    acc.observe_reference(sides[0], row_keys(np.arange(len(sides[0]), dtype=np.uint64)))
    _check_not_all_null("scores", "reference", ["prediction"] if acc.nonnull_ref == 0 else [])
    acc.freeze()
    acc.count(0, sides[0])
    acc.count(1, sides[1])
    _check_not_all_null("scores", "current", ["prediction"] if acc.nonnull_cur == 0 else [])
    fd = acc.result(monitoring)
    fd.drifted = _drifted(fd, monitoring.alpha)
    return fd
