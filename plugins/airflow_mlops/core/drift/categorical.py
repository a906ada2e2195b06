"""Categorical features: chi-square and the Jensen-Shannon distance on category counts."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from airflow_mlops.core.drift.report import CATEGORICAL, FeatureDrift, check_finite

if TYPE_CHECKING:
    from airflow_mlops.core.config import MonitoringConfig

MAX_CATEGORIES = 10_000  # more distinct values than this: not a categorical feature (an identifier?)
UNSEEN = "(unseen)"  # current categories the reference never had
OTHER = "(other)"  # categories merged for display only
MAX_SHOWN_CATEGORIES = 20  # categories kept in a FeatureDrift's displayed distribution


class CategoricalAccumulator:
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
        check_finite(self.name, chi2=stat, p=p, js=js)
        labels, shown_r, shown_c = _shown_categories([*cats, UNSEEN], pr, pc)
        return FeatureDrift(
            name=self.name,
            kind=CATEGORICAL,
            statistic=stat,
            statistic_name="chi2",
            p_value=p,
            p_adjusted=p,
            effect=js,
            effect_name="js",
            threshold=monitoring.js_threshold,
            drifted=False,
            count_reference=int(ref.sum()),
            count_current=int(cur.sum()),
            null_share_reference=self.nulls[0] / max(1, self.nulls[0] + int(ref.sum())),
            null_share_current=self.nulls[1] / max(1, self.nulls[1] + int(cur.sum())),
            bins=labels,
            reference_share=shown_r,
            current_share=shown_c,
            dof=dof,
            unseen_share=float(pc[-1]),
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
