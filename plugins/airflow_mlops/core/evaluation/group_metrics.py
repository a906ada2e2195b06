"""The gate's metrics on many groups of test rows at once (e.g. every slice), as functions of a resample's weights.

`Groups.of(index arrays)` lays the groups' rows end to end; `groups.kernel(metric, ...)` returns f(wr) -> the metric
of every group, where wr = `groups.weights(w)` and w is a resample's row weights (how often each test row was drawn;
all ones: the rows themselves). Each value is `bootstrap.metric_kernel`'s on that group's own rows, which is to say
training.compute_metrics on the resampled rows. A resample gathers the weights once for every kernel and costs a
few vector operations over the groups' rows together, not a Python call per group: ROC AUC as the weighted
Mann-Whitney statistic against each group's negatives sorted once (one cumulative sum for all groups), label metrics
from weighted confusion matrices (one bincount), log loss and regression errors as weighted means; r2 group by group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import EvaluationError
from airflow_mlops.core.evaluation.bootstrap import confusion_metric, metric_kernel
from airflow_mlops.core.labels import positive_index

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np


@dataclass(frozen=True)
class Groups:
    """Groups of row indices laid end to end: `rows` holds group 0's rows, then group 1's, ...; `gid` their group."""

    rows: np.ndarray = field(repr=False)
    gid: np.ndarray = field(repr=False)
    bounds: np.ndarray  # group g's entries are rows[bounds[g]:bounds[g + 1]]

    @classmethod
    def of(cls, groups: Sequence[np.ndarray]) -> Groups:
        import numpy as np

        sizes = np.array([len(g) for g in groups], dtype=np.intp)
        rows = np.concatenate([np.asarray(g, dtype=np.intp) for g in groups]) if len(groups) else np.empty(0, np.intp)
        return cls(rows, np.repeat(np.arange(len(groups)), sizes), np.concatenate([[0], np.cumsum(sizes)]))

    @property
    def count(self) -> int:
        return len(self.bounds) - 1

    def weights(self, w: np.ndarray) -> np.ndarray:
        """The row weights w gathered in the groups' order: what every kernel of these groups takes."""
        return w[self.rows]

    def kernel(
        self, metric: str, task: str, y: Any, pred: Any, labels: Sequence[Any] | None, positive: Any = None
    ) -> Callable[[np.ndarray], np.ndarray]:
        """f(wr) -> `metric` of each group (NaN where undefined), wr = `weights(w)`; `pred` as for metric_kernel."""
        import numpy as np

        y = np.asarray(y)
        if task == "regression":
            return self._regression(metric, y, np.asarray(pred, dtype=float))
        classes = list(labels) if labels is not None else sorted(set(y.tolist()))
        k = len(classes)
        try:
            pos = positive_index(classes, positive) if k == 2 else -1
        except ValueError as exc:
            raise EvaluationError(f"metric {metric!r}: {exc}") from None
        proba = np.asarray(pred, dtype=float)
        if proba.ndim == 1 and k == 2:
            proba = np.column_stack([1.0 - proba, proba] if pos == 1 else [proba, 1.0 - proba])
        if proba.shape != (len(y), k):
            raise EvaluationError(f"metric {metric!r}: predictions have shape {proba.shape}, expected ({len(y)}, {k})")
        y_idx = class_index(y, classes)
        rows = self.rows
        if metric == "roc_auc":
            if k == 2:
                return self._auc((y_idx == pos)[rows], proba[rows, pos])
            per_class = [self._auc((y_idx == c)[rows], proba[rows, c]) for c in range(k)]
            return lambda wr: np.mean([f(wr) for f in per_class], axis=0)
        if metric == "log_loss":
            eps = np.finfo(proba.dtype).eps
            return self._mean(-np.log(np.clip(proba[np.arange(len(y)), y_idx], eps, 1.0 - eps))[rows])
        if metric in ("accuracy", "f1", "precision", "recall"):
            # the entries sorted by (group, confusion cell): each cell's weight is one segment's sum
            cell = self.gid * k * k + (y_idx * k + proba.argmax(axis=1))[rows]
            order = np.argsort(cell, kind="stable")
            counts_of = _segment_sums(np.searchsorted(cell[order], np.arange(self.count * k * k + 1)))

            def labelled(wr: np.ndarray) -> np.ndarray:
                return confusion_metric(metric, counts_of(wr[order]).reshape(self.count, k * k), k, pos)

            return labelled
        raise EvaluationError(f"unknown classification metric {metric!r}")

    def _regression(self, metric: str, y: np.ndarray, pred: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        import numpy as np

        if pred.shape != y.shape:
            raise EvaluationError(f"metric {metric!r}: predictions have shape {pred.shape}, expected {y.shape}")
        error = (y.astype(float) - pred)[self.rows]
        if metric == "rmse":
            mean = self._mean(error**2)
            return lambda wr: np.sqrt(mean(wr))
        if metric == "mae":
            return self._mean(np.abs(error))
        if metric == "r2":  # group by group, with the gate's own kernel
            b = self.bounds
            each = [metric_kernel(metric, "regression", y[g], pred[g], None) for g in np.split(self.rows, b[1:-1])]
            return lambda wr: np.array([f(wr[b[g] : b[g + 1]]) for g, f in enumerate(each)], dtype=float)
        raise EvaluationError(f"unknown regression metric {metric!r}")

    def _mean(self, values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        import numpy as np

        sums = _segment_sums(self.bounds)

        def mean(wr: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                return sums(wr * values) / sums(wr)

        return mean

    def _auc(self, positive: np.ndarray, score: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Each group's weighted Mann-Whitney AUC (as bootstrap.auc_kernel: ties count half, exact for counts)."""
        import numpy as np

        j, gid = self.count, self.gid
        neg = np.flatnonzero(~positive)
        neg = neg[np.lexsort((score[neg], gid[neg]))]  # by group, then by score within it
        pos = np.flatnonzero(positive)
        neg_gid, pos_gid = gid[neg], gid[pos]
        start = np.searchsorted(neg_gid, np.arange(j), side="left")
        end = np.searchsorted(neg_gid, np.arange(j), side="right")
        # each positive's place among its own group's negatives, as an offset into `neg`
        below, upto = np.empty(len(pos), dtype=np.intp), np.empty(len(pos), dtype=np.intp)
        for g in range(j):
            mine = pos_gid == g
            run = score[neg[start[g] : end[g]]]
            below[mine] = start[g] + np.searchsorted(run, score[pos[mine]], side="left")
            upto[mine] = start[g] + np.searchsorted(run, score[pos[mine]], side="right")
        base = start[pos_gid]
        ties = bool(np.any(below != upto))
        cum = np.zeros(len(neg) + 1)

        per_group = _segment_sums(np.searchsorted(pos_gid, np.arange(j + 1)))  # pos is in group order

        def auc(wr: np.ndarray) -> np.ndarray:
            np.cumsum(wr[neg], out=cum[1:])  # cum[i]: the weight of neg[:i]
            w_pos = wr[pos]
            total_pos, total_neg = per_group(w_pos), cum[end] - cum[start]
            twice = cum[below] + cum[upto] - 2.0 * cum[base] if ties else 2.0 * (cum[below] - cum[base])
            with np.errstate(divide="ignore", invalid="ignore"):
                value = per_group(w_pos * twice) / (2.0 * total_pos * total_neg)
            value[(total_pos == 0) | (total_neg == 0)] = math.nan
            return value

        return auc


def class_index(y: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    """The position of each row's class in `classes` (vectorised: a hash lookup per row, as the gate's own)."""
    import numpy as np
    import pandas as pd

    index = pd.Index(list(classes)).get_indexer(pd.Index(np.asarray(y)))
    if (index < 0).any():
        unknown = sorted({v.item() if hasattr(v, "item") else v for v in np.asarray(y)[index < 0]}, key=str)
        raise EvaluationError(f"the test rows hold class(es) {unknown}, unknown to the model ({list(classes)})")
    return index.astype(np.intp)


def _segment_sums(bounds: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """f(x) -> the sums of x[bounds[g]:bounds[g + 1]] for each g (0 for an empty segment); np.add.reduceat, which
    is many times faster than a weighted bincount here."""
    import numpy as np

    bounds = np.asarray(bounds, dtype=np.intp)
    filled = bounds[:-1] < bounds[1:]
    starts = bounds[:-1][filled]
    out = np.zeros(len(bounds) - 1)

    def sums(x: np.ndarray) -> np.ndarray:
        result = out.copy()
        if len(starts):
            result[filled] = np.add.reduceat(x, starts)
        return result

    return sums
