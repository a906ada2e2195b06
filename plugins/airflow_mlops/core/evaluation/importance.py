"""Permutation importance of both models on the gate's test rows, and how far the ranking moved (issue 24, item 4).

scikit-learn's `permutation_importance` of the challenger and the champion on the same seeded sample of the clean
test rows, scored by the pipeline's primary metric: a feature's importance is the metric's loss when its values
are shuffled (positive: the model relies on it), with its standard deviation over the repeats. The two rankings
are compared by nDCG (the challenger's order, the champion's importances as relevance) and Spearman's rho.
It never blocks: a ranking that moved (`evaluation.explain.min_importance_ndcg`) or a challenger leaning on one
feature far more than the champion did (`max_share_ratio`) is a note, the way a person should look before trusting it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import EvaluationError
from airflow_mlops.core.training import LOWER_IS_BETTER, compute_metrics

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.evaluation.models import Loaded
    from airflow_mlops.core.evaluation.panel_types import PanelInputs, PanelResult

NAME = "importance"
#: The challenger "leans" on its top feature when that feature holds at least this share of its positive
#: importance AND at least `max_share_ratio` times the champion's share for it. 0.5: one feature carries as much
#: as all the others together, which a leaked label proxy or a column that changed meaning upstream produces
#: (their shares are near 1), while an ordinary retrain moves the top share of a handful of features by tenths.
LEANING_MIN_SHARE = 0.5
#: How many of the features that moved most the warning names.
MOVED_NAMED = 3
#: Metrics computed from class probabilities; the others from predicted classes (or regression predictions).
PROBABILITY_METRICS = frozenset({"roc_auc", "log_loss"})
#: Worker processes and native threads (OpenMP, BLAS) of `permutation_importance`: one of each. On 2 shared cores
#: (benchmarks/importance_cost.py, 10,000 rows x 50 features) a second process was no faster for the forests and 2x
#: slower for the linear model, and gradient boosting's OpenMP threads spin when the cores are busy (1.9x the wall
#: time, 3.5x under heavy load); one core per panel leaves the other to the worker's other tasks.
N_JOBS = 1
THREADS = 1


@dataclass
class Importance:
    """One model's permutation importance: its input columns, the mean loss when each is shuffled, and its std."""

    features: list[str]
    mean: np.ndarray
    std: np.ndarray
    baseline: float  # the primary metric on the unshuffled sample

    def get(self, feature: str) -> tuple[float, float] | None:
        if feature not in self.features:
            return None
        i = self.features.index(feature)
        return float(self.mean[i]), float(self.std[i])

    def ranks(self) -> dict[str, int]:
        """1 = the feature the model relies on most; ties keep the column order."""
        import numpy as np

        order = np.argsort(-self.mean, kind="stable")
        return {self.features[i]: rank for rank, i in enumerate(order, start=1)}


def run(inputs: PanelInputs) -> PanelResult | None:
    """Both models' permutation importance and the comparison of their rankings; None when explain.importance is off."""
    from airflow_mlops.core.evaluation.panel_types import PanelResult

    config = inputs.config
    ex = config.evaluation.explain
    if not ex.importance:
        return None
    started = time.perf_counter()
    rows, y = sample(inputs.frame, inputs.y, ex.sample_rows, seed=config.seed, classify=config.is_classification)
    challenger = measure(inputs.challenger, rows, y, config, inputs.positive, role="challenger")
    champion = None
    if inputs.champion is not None:
        champion = measure(inputs.champion, rows, y, config, inputs.positive, role="champion")
    comparison = compare(challenger, champion, ex.max_share_ratio)
    seconds = time.perf_counter() - started

    primary = config.metrics.primary
    notes = []
    if champion is not None:
        ndcg = comparison["ndcg"]
        if ndcg is not None and ndcg < ex.min_importance_ndcg:
            notes.append(ranking_note(comparison, ex.min_importance_ndcg))
        if comparison["leaning"] is not None:
            notes.append(leaning_note(comparison["leaning"], ex.max_share_ratio, primary))
    detail = {
        "metric": primary,
        "rows": len(y),
        "repeats": ex.repeats,
        "ndcg": comparison["ndcg"],
        "spearman": comparison["spearman"],
        "moved": [m["feature"] for m in comparison["moved"]],
        "moves": comparison["moved"],
        "leaning": comparison["leaning"],
        "baseline": {"challenger": challenger.baseline, "champion": None if champion is None else champion.baseline},
        "seconds": round(seconds, 3),
    }
    metrics = {k: v for k in ("ndcg", "spearman", "top_share") if (v := comparison[k]) is not None}
    metrics["seconds"] = seconds
    return PanelResult(
        NAME,
        notes=notes,
        table=table(challenger, champion),
        summary=summary(comparison, champion is not None, notes),
        metrics=metrics,
        detail=detail,
    )


def sample(frame: pd.DataFrame, y: np.ndarray, n: int, *, seed: int, classify: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """A seeded sample of `n` test rows (all when fewer), each class in its proportion (at least one row of each)."""
    import numpy as np

    y = np.asarray(y)
    if len(y) <= n:
        return frame.reset_index(drop=True), y
    rng = np.random.default_rng(seed)
    if not classify:
        keep = rng.choice(len(y), n, replace=False)
    else:
        classes, codes = np.unique(y.astype(str), return_inverse=True)
        picks = []
        for code in range(len(classes)):
            members = np.flatnonzero(codes == code)
            k = min(len(members), max(1, round(n * len(members) / len(y))))
            picks.append(rng.choice(members, k, replace=False))
        keep = np.concatenate(picks)
    keep = np.sort(keep)
    return frame.iloc[keep].reset_index(drop=True), y[keep]


def model_columns(loaded: Loaded, config: PipelineConfig) -> list[str]:
    """The columns the model takes: its signature's inputs, else the config's features (as the gate scores it)."""
    inputs = getattr(loaded.signature, "inputs", None)
    if inputs is not None and inputs.has_input_names():
        return list(inputs.input_names())
    return list(config.feature_names)


def measure(
    loaded: Loaded,
    rows: pd.DataFrame,
    y: np.ndarray,
    config: PipelineConfig,
    positive: Any,
    *,
    role: str,
    n_jobs: int = N_JOBS,
    threads: int | None = THREADS,
) -> Importance:
    """scikit-learn's permutation importance of one model on `rows`, scored by the primary metric.

    `n_jobs`: worker processes; `threads`: native threads per process (None: the libraries' own default)."""
    from sklearn.inspection import permutation_importance
    from threadpoolctl import threadpool_limits

    columns = model_columns(loaded, config)
    missing = [c for c in columns if c not in rows.columns]
    if missing:
        raise EvaluationError(f"{role} {loaded.uri} needs column(s) {', '.join(map(repr, missing))} the test rows lack")
    ex = config.evaluation.explain
    scorer = metric_scorer(config, positive)
    x = rows[columns]
    with threadpool_limits(limits=threads):
        result = permutation_importance(
            loaded.model, x, y, scoring=scorer, n_repeats=ex.repeats, random_state=config.seed, n_jobs=n_jobs
        )
        baseline = scorer(loaded.model, x, y)
    return Importance(
        columns,
        result.importances_mean,
        result.importances_std,
        -baseline if config.metrics.primary in LOWER_IS_BETTER else baseline,
    )


def metric_scorer(config: PipelineConfig, positive: Any) -> Callable[[Any, pd.DataFrame, Any], float]:
    """A scikit-learn scorer of the primary metric, higher = better (a loss is negated), as the gate computes it.

    It asks the model only for what the metric needs (probabilities for ROC AUC and log loss, classes otherwise):
    half the predictions `models.score` makes, and permutation importance is all predictions.
    """
    import numpy as np

    primary = config.metrics.primary
    sign = -1.0 if primary in LOWER_IS_BETTER else 1.0
    task = config.task

    def scorer(model: Any, x: pd.DataFrame, y: Any) -> float:
        labels = list(model.classes_) if config.is_classification else None
        proba = None
        if labels is not None and primary in PROBABILITY_METRICS:
            proba = probabilities(model, x, binary=task == "binary_classification")
            pred = np.asarray(labels, dtype=object)[np.argmax(proba, axis=1)] if proba.ndim == 2 else None
        else:
            pred = np.asarray(model.predict(x))
        value = compute_metrics(task, y, pred, proba, [primary], labels=labels, positive=positive)[primary]
        return sign * value

    return scorer


def probabilities(model: Any, x: pd.DataFrame, *, binary: bool) -> np.ndarray:
    """predict_proba; for a binary model without it, the logistic of its decision function (as the gate scores)."""
    import numpy as np

    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(x), dtype=float)
    if binary and hasattr(model, "decision_function"):
        return 1.0 / (1.0 + np.exp(-np.asarray(model.decision_function(x), dtype=float)))
    raise EvaluationError("a model without predict_proba cannot be scored by ROC AUC or log loss")


def shares(imp: Importance) -> dict[str, float]:
    """Each feature's share of the model's positive importance (negative importance counts as none)."""
    import numpy as np

    positive = np.clip(imp.mean, 0.0, None)
    total = float(positive.sum())
    return {f: (float(v) / total if total > 0 else 0.0) for f, v in zip(imp.features, positive, strict=True)}


def compare(challenger: Importance, champion: Importance | None, max_share_ratio: float) -> dict[str, Any]:
    """nDCG and Spearman of the two rankings, the features that moved most, and whether the challenger leans on its
    top feature (its share >= LEANING_MIN_SHARE and >= `max_share_ratio` x the champion's share for it).

    Features one model does not take count as importance 0 for it. The features that moved most: the change of
    rank weighted by the feature's larger share, so noise features trading places at the bottom do not crowd out
    a top feature that fell.
    """
    import numpy as np

    ch_share = shares(challenger)
    top = challenger.features[int(np.argmax(challenger.mean))] if challenger.features else None
    top_share = ch_share.get(top) if top is not None and sum(ch_share.values()) > 0 else None
    out: dict[str, Any] = {"ndcg": None, "spearman": None, "moved": [], "leaning": None, "top": top}
    out["top_share"] = top_share
    if champion is None:
        return out
    names = [*challenger.features, *(f for f in champion.features if f not in challenger.features)]
    c = np.array([(challenger.get(f) or (0.0, 0.0))[0] for f in names])
    p = np.array([(champion.get(f) or (0.0, 0.0))[0] for f in names])
    out["ndcg"] = ndcg(c, p)
    out["spearman"] = spearman(c, p)
    cp_share = shares(champion)
    ch_rank, cp_rank = challenger.ranks(), champion.ranks()
    moves: list[tuple[float, dict[str, Any]]] = []
    for f in names:
        before, after = cp_rank.get(f), ch_rank.get(f)
        weight = max(ch_share.get(f, 0.0), cp_share.get(f, 0.0))
        shift = abs((before or len(names) + 1) - (after or len(names) + 1))
        if shift and weight > 0:
            moves.append((shift * weight, {"feature": f, "champion_rank": before, "challenger_rank": after}))
    moves.sort(key=lambda m: -m[0])
    out["moved"] = [move for _, move in moves[:MOVED_NAMED]]
    if top is not None and top_share is not None:
        was = cp_share.get(top, 0.0)
        if top_share >= LEANING_MIN_SHARE and top_share >= max_share_ratio * was:
            out["leaning"] = {"feature": top, "challenger_share": top_share, "champion_share": was}
    return out


def ndcg(challenger: np.ndarray, champion: np.ndarray) -> float | None:
    """nDCG of the challenger's ranking with the champion's importances (clipped at 0) as relevance; None when
    there is nothing to rank (one feature) or the champion relies on no feature."""
    import numpy as np
    from sklearn.metrics import ndcg_score

    relevance = np.clip(champion, 0.0, None)
    if len(relevance) < 2 or not relevance.sum() > 0:
        return None
    return float(ndcg_score(relevance[None, :], challenger[None, :]))


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rho of the two importance vectors; None when either is constant (or one feature)."""
    import numpy as np
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def ranking_note(comparison: dict[str, Any], limit: float) -> str:
    moved = ", ".join(
        f"{m['feature']} {m['champion_rank'] or 'not taken'} -> {m['challenger_rank'] or 'not taken'}"
        for m in comparison["moved"]
    )
    rho = comparison["spearman"]
    return (
        f"importance: the challenger ranks the features differently from the champion (nDCG {comparison['ndcg']:.2f}"
        f" < evaluation.explain.min_importance_ndcg {limit:g}"
        + (f", Spearman {rho:.2f}" if rho is not None else "")
        + f"); moved most (champion rank -> challenger rank): {moved or 'none named'}. A warning, not a block: check "
        "that these features mean what they meant when the champion was trained"
    )


def leaning_note(leaning: dict[str, Any], ratio: float, primary: str) -> str:
    f, ch, cp = leaning["feature"], leaning["challenger_share"], leaning["champion_share"]
    return (
        f"importance: the challenger leans on {f!r}: {ch:.0%} of its permutation importance ({primary}) against "
        f"{cp:.0%} for the champion (>= evaluation.explain.max_share_ratio {ratio:g}x, and >= {LEANING_MIN_SHARE:.0%}"
        f"), a symptom of target leakage or a broken upstream column: check how {f!r} is produced before trusting it"
    )


def table(challenger: Importance, champion: Importance | None) -> list[dict[str, Any]]:
    """One row per feature, by the challenger's importance (features only the champion takes last)."""
    ch_rank = challenger.ranks()
    cp_rank = champion.ranks() if champion is not None else {}
    names = sorted(challenger.features, key=ch_rank.__getitem__)
    if champion is not None:
        names += sorted((f for f in champion.features if f not in ch_rank), key=cp_rank.__getitem__)
    rows = []
    for f in names:
        ch = challenger.get(f)
        cp = champion.get(f) if champion is not None else None
        rows.append(
            {
                "feature": f,
                "challenger": None if ch is None else ch[0],
                "challenger_std": None if ch is None else ch[1],
                "champion": None if cp is None else cp[0],
                "champion_std": None if cp is None else cp[1],
                "challenger_rank": ch_rank.get(f),
                "champion_rank": cp_rank.get(f),
            }
        )
    return rows


def summary(comparison: dict[str, Any], has_champion: bool, notes: list[str]) -> str:
    top = comparison["top"]
    share = comparison["top_share"]
    lead = f"top: {top}" + (f" ({share:.0%})" if share is not None else "")
    if not has_champion:
        return f"importance {lead}; no champion to compare"
    ndcg_, rho = comparison["ndcg"], comparison["spearman"]
    parts = [
        "importance ranking nDCG " + ("n/a" if ndcg_ is None else f"{ndcg_:.2f}"),
        "Spearman " + ("n/a" if rho is None else f"{rho:.2f}") + " vs the champion",
    ]
    text = ", ".join(parts) + f"; {lead}"
    if comparison["leaning"] is not None:
        text += f"; leans on {comparison['leaning']['feature']}"
    elif notes:
        text += "; ranking moved"
    return text


def plot(result: PanelResult, folder: Path) -> list[Path]:
    """importance.png: both models' permutation importance per feature (paired bars, +-1 std), the challenger's
    order top down; readable up to ~50 features."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = result.table
    if not rows:
        return []
    n = len(rows)
    has_champion = any(r["champion"] is not None for r in rows)
    fig = Figure(figsize=(8.0, max(3.0, 1.6 + 0.3 * n)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = list(range(n))
    height = 0.4 if has_champion else 0.7
    offset = height / 2 if has_champion else 0.0

    def bars(key: str, shift: float, colour: str, label: str) -> None:
        ax.barh(
            [p - shift for p in positions],
            [r[key] or 0.0 for r in rows],
            height=height,
            xerr=[r[f"{key}_std"] or 0.0 for r in rows],
            color=colour,
            ecolor="black",
            capsize=2,
            label=label,
        )

    bars("challenger", offset, "#1f618d", "challenger")
    if has_champion:
        bars("champion", -offset, "#bbbbbb", "champion")
    detail = result.detail
    ax.set_yticks(positions)
    ax.set_yticklabels([r["feature"] for r in rows], fontsize=9 if n <= 25 else 7)
    ax.set_ylim(n - 0.5, -0.5)  # the challenger's most important feature on top
    ax.axvline(0.0, color="grey", linestyle=":")
    ax.set_xlabel(f"{detail.get('metric', 'metric')} lost when the feature is shuffled (mean +- std)")
    title = f"permutation importance, {detail.get('rows', '?')} test rows x {detail.get('repeats', '?')} repeats"
    if detail.get("ndcg") is not None:
        title += f"\nnDCG {detail['ndcg']:.2f} vs the champion"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize="small")
    path = Path(folder) / "importance.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return [path]
