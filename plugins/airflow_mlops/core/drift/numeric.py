"""Numeric features: KS and PSI on the reference's quantile bins, counted chunk by chunk (see ``compute``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from airflow_mlops.core.drift.report import NUMERIC, DriftInputError, FeatureDrift, check_finite

if TYPE_CHECKING:
    from airflow_mlops.core.config import MonitoringConfig

PSI_BINS = 10  # quantile bins of the reference for the population stability index
FINE_BINS = 4096  # quantile bins of the reference for the KS statistic (resolution of the binned CDF)
KS_EXACT_N = 10_000  # effective n up to which the KS p-value is scipy's kstwo.sf (slow beyond)
EPSILON = 1e-4  # share given to an empty PSI bin (log of zero otherwise)


class NumericAccumulator:
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
        check_finite(self.name, ks=ks, p=p, psi=psi)
        labels = _interval_labels(self.psi_edges)
        return FeatureDrift(
            name=self.name,
            kind=NUMERIC,
            statistic=ks,
            statistic_name="ks",
            p_value=p,
            p_adjusted=p,
            effect=psi,
            effect_name="psi",
            threshold=monitoring.psi_threshold,
            drifted=False,
            count_reference=n_ref,
            count_current=n_cur,
            null_share_reference=self.nulls[0] / max(1, self.nulls[0] + n_ref),
            null_share_current=self.nulls[1] / max(1, self.nulls[1] + n_cur),
            bins=labels,
            reference_share=pr.tolist(),
            current_share=pc.tolist(),
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
