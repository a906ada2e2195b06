"""The robustness panel: both models on the same seeded sample of the gate's test rows (paired).

- Small moves: every numeric feature moves up or down (a seeded sign per cell) by `perturbation` x its median
  absolute deviation on the test rows (IQR, then std, when the MAD is 0), rounded as the column shows values
  (core.evaluation.perturb). Classification: the share of rows whose predicted class flips (guard rail
  `max_flip_rate_increase` on the upper bound of the paired bootstrap interval of the challenger's increase);
  every task: the mean absolute score change (positive-class probability, half the L1 change of the class
  probabilities for multiclass, the prediction for regression).
- Missing values: `missing_share` of one feature's values made missing at a time; the primary metric's drop
  for both models (reported; a model that cannot score them is a note naming the feature and the error).
- Monotonic: for a feature declared ``monotonic: increasing|decreasing``, the share of rows (up to
  MONOTONIC_ROWS) whose individual conditional expectation over the feature's 5%..95% quantile grid moves
  the wrong way by more than `monotonic_tolerance` (guard rail `max_monotonic_violations`, first models too).
- Calibration (classification): Brier score and ECE with the gate's paired resamples (core.evaluation.calibration).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import training
from airflow_mlops.core.errors import TrainingError
from airflow_mlops.core.evaluation import perturb
from airflow_mlops.core.evaluation.bootstrap import multinomial_resamples
from airflow_mlops.core.evaluation.calibration import calibration
from airflow_mlops.core.evaluation.models import align_classes
from airflow_mlops.core.evaluation.monotonic import MONOTONIC_ROWS, monotonic_checks
from airflow_mlops.core.evaluation.robustness_plot import plot
from airflow_mlops.core.labels import positive_index
from airflow_mlops.core.training import LOWER_IS_BETTER

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.evaluation.panel_types import PanelInputs, PanelResult

__all__ = ["MONOTONIC_ROWS", "plot", "run"]

#: Independent random streams under config.seed: the sample, the signs, the bootstrap, the missing cells.
_SAMPLE, _SIGNS, _BOOTSTRAP, _MISSING = 1, 2, 3, 4
_EPS = 1e-12
_ERROR_CHARS = 200


def run(inputs: PanelInputs) -> PanelResult | None:
    """The robustness panel's checks, table and notes (None when evaluation.robustness.enabled is false).

    Its many small predictions run on one thread: on a busy 2-core worker, HistGradientBoosting's OpenMP threads
    waited on each other per tree and made the panel 3-5x slower (7-18 s against 3 s for 2,000 rows).
    """
    from threadpoolctl import threadpool_limits

    if not inputs.config.evaluation.robustness.enabled:
        return None
    with threadpool_limits(1):
        return _run(inputs)


def _run(inputs: PanelInputs) -> PanelResult:
    import numpy as np

    from airflow_mlops.core.evaluation.panel_types import PanelResult

    config = inputs.config
    rb = config.evaluation.robustness
    result = PanelResult("robustness")
    n = len(inputs.frame)
    take = min(n, rb.sample_rows)
    chosen = np.random.default_rng([config.seed, _SAMPLE]).choice(n, size=take, replace=False) if take < n else None
    idx = np.arange(n) if chosen is None else np.sort(chosen)
    sample = inputs.frame.iloc[idx].reset_index(drop=True)
    base = {"challenger": inputs.challenger_scores[idx]}
    if inputs.champion is not None and inputs.champion_scores is not None:
        base["champion"] = inputs.champion_scores[idx]
    result.detail = {
        "rows": take,
        "test_rows": n,
        "bootstrap": config.evaluation.bootstrap_samples,
        "confidence": config.evaluation.confidence,
    }
    _small_moves(inputs, sample, base, result)
    _missing_values(inputs, sample, inputs.y[idx], base, result)
    monotonic_checks(
        inputs,
        sample.iloc[:MONOTONIC_ROWS],
        lambda which, rows: _score_of(inputs, _scores(inputs, which, rows)),
        result,
    )
    if config.is_classification and rb.calibration:
        cal = calibration(inputs)
        result.table.extend(cal.rows)
        result.checks.extend(cal.checks)
        result.metrics.update(cal.metrics)
        result.detail["calibration"] = cal.detail
    result.summary = _summary(result)
    return result


# --------------------------------------------------------------------------- scores


def _scores(inputs: PanelInputs, which: str, rows: pd.DataFrame) -> np.ndarray:
    """`which` model's scores on `rows`, the champion's class columns in the challenger's order (as the gate's)."""
    scores = inputs.rescore(which, rows)
    loaded = inputs.champion if which == "champion" else None
    have = getattr(getattr(loaded, "model", None), "classes_", None)
    if have is not None and inputs.labels is not None:
        diff: list[str] = []
        aligned = align_classes(scores, list(have), list(inputs.labels), diff)
        if aligned is None:
            raise ValueError(f"the champion's classes cannot be matched to the challenger's: {'; '.join(diff)}")
        scores = aligned
    return scores


def _score_of(inputs: PanelInputs, scores: np.ndarray) -> np.ndarray:
    """The score a row's direction is read from: the positive-class probability (binary), the prediction
    (regression); multiclass keeps every class's probability."""
    if inputs.config.task == "binary_classification":
        assert inputs.labels is not None
        return scores[:, positive_index(inputs.labels, inputs.positive)]
    return scores


def _change(inputs: PanelInputs, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per row: |score change| (regression, binary), half the L1 change of the class probabilities (multiclass)."""
    import numpy as np

    if inputs.config.task == "multiclass_classification":
        return 0.5 * np.abs(after - before).sum(axis=1)
    return np.abs(_score_of(inputs, after) - _score_of(inputs, before))


def _primary(inputs: PanelInputs, y: np.ndarray, scores: np.ndarray) -> float:
    """The primary metric of `scores` against `y` (as training.compute_metrics computes it)."""
    import numpy as np

    config = inputs.config
    metric = config.metrics.primary
    if not config.is_classification:
        return training.compute_metrics(config.task, y, scores, None, [metric])[metric]
    assert inputs.labels is not None
    predicted = np.asarray(inputs.labels)[scores.argmax(axis=1)]
    return training.compute_metrics(
        config.task, y, predicted, scores, [metric], labels=inputs.labels, positive=inputs.positive
    )[metric]


def _paired_interval(inputs: PanelInputs, differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of the mean of each column of `differences` (rows x k), rows resampled (seeded)."""
    import numpy as np

    config = inputs.config
    rows = len(differences)
    samples = multinomial_resamples(
        np.random.default_rng([config.seed, _BOOTSTRAP]),
        rows,
        config.evaluation.bootstrap_samples,
        lambda w: w @ differences / rows,
    )
    alpha = (1.0 - config.evaluation.confidence) / 2.0
    low, high = np.quantile(samples.reshape(len(samples), -1), [alpha, 1.0 - alpha], axis=0)
    return low, high


# --------------------------------------------------------------------------- small moves


def _small_moves(inputs: PanelInputs, sample: pd.DataFrame, base: dict[str, np.ndarray], result: PanelResult) -> None:
    """Flip rate and score change when every numeric feature moves slightly (one perturbed copy, both models)."""
    import numpy as np

    config = inputs.config
    rb = config.evaluation.robustness
    scales, unmoved = [], []
    for feature in config.numeric_features:
        values = perturb.numeric_values(inputs.frame[feature])
        if values is None:
            unmoved.append(f"{feature} (its column is not numeric: {inputs.frame[feature].dtype})")
            continue
        s = perturb.scale_of(feature, values, rb.perturbation)
        scales.append(s)
        if s.by == "none":
            unmoved.append(f"{feature} (the same value in every test row: no spread to move it by)")
        elif not s.moves:
            unmoved.append(
                f"{feature} (a move of {rb.perturbation:g} x its {s.by.upper()} {s.scale:g} rounds away at the "
                f"{s.decimals} decimal(s) its values show)"
            )
    result.detail["perturbation"] = rb.perturbation
    result.detail["features"] = {
        s.feature: {"by": s.by, "scale": s.scale, "decimals": s.decimals, "step": s.step} for s in scales
    }
    fallback = [f"{s.feature} ({s.by.upper()}: its MAD is 0)" for s in scales if s.moves and s.by != "mad"]
    if fallback:
        result.notes.append(f"robustness: moved by another spread than the MAD: {', '.join(fallback)}")
    if unmoved:
        result.notes.append(
            f"robustness: left unmoved in the small-moves check: {'; '.join(unmoved)}; raise "
            f"evaluation.robustness.perturbation to move a feature whose steps are coarse"
        )
    if not any(s.moves for s in scales):
        result.notes.append("robustness: no numeric feature can move: flip rate and score change not measured")
        return
    moved = perturb.perturbed(sample, scales, np.random.default_rng([config.seed, _SIGNS]))
    label = f"numeric inputs move {rb.perturbation:g} x MAD"
    flips: dict[str, np.ndarray] = {}
    changes: dict[str, np.ndarray] = {}
    for which, before in base.items():
        after = _scores(inputs, which, moved)
        changes[which] = _change(inputs, before, after)
        if config.is_classification:
            flips[which] = (before.argmax(axis=1) != after.argmax(axis=1)).astype(float)
    paired = "champion" in base
    if paired:
        columns = [flips, changes] if config.is_classification else [changes]
        low, high = _paired_interval(inputs, np.column_stack([d["challenger"] - d["champion"] for d in columns]))
    figures = [("flip_rate", f"class flips when {label}", flips)] if config.is_classification else []
    figures.append(("score_change", f"mean absolute score change when {label}", changes))
    for i, (key, words, per_row) in enumerate(figures):
        mine = float(per_row["challenger"].mean())
        theirs = float(per_row["champion"].mean()) if paired else None
        row = _row(key, words, mine, theirs)
        result.metrics[f"{key}.challenger"] = mine
        if paired and theirs is not None:
            row.update(low=float(low[i]), high=float(high[i]))
            result.metrics.update({f"{key}.champion": theirs, f"{key}.increase_high": float(high[i])})
        if key == "flip_rate" and paired and theirs is not None:
            limit = rb.max_flip_rate_increase
            passed = bool(high[i] <= limit + _EPS)
            row.update(limit=limit, passed=passed)
            result.checks.append((passed, _flip_text(mine, theirs, float(low[i]), float(high[i]), inputs, passed)))
        result.table.append(row)


def _flip_text(mine: float, theirs: float, low: float, high: float, inputs: PanelInputs, passed: bool) -> str:
    config = inputs.config
    rb = config.evaluation.robustness
    what = (
        f"robustness: class flips when numeric inputs move {rb.perturbation:g} x MAD: challenger {mine:.2%}, champion "
        f"{theirs:.2%} of {min(len(inputs.frame), rb.sample_rows):,} rows"
    )
    ci = f"{config.evaluation.confidence:.0%} CI of the increase {low:+.2%}..{high:+.2%}"
    if passed:
        return f"{what}; the increase is at most {high:+.2%} ({ci}) <= robustness.max_flip_rate_increase {rb.max_flip_rate_increase:g}"
    return (
        f"{what}; the increase may be as large as {high:+.2%} ({ci}) > robustness.max_flip_rate_increase "
        f"{rb.max_flip_rate_increase:g}: the challenger's predictions jump when its inputs barely move"
    )


# --------------------------------------------------------------------------- missing values


def _missing_values(
    inputs: PanelInputs, sample: pd.DataFrame, y: np.ndarray, base: dict[str, np.ndarray], result: PanelResult
) -> None:
    """Per feature, the primary metric's drop (positive: worse) when `missing_share` of its values go missing."""
    import numpy as np

    config = inputs.config
    rb = config.evaluation.robustness
    metric = config.metrics.primary
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    try:
        before = {which: _primary(inputs, y, scores) for which, scores in base.items()}
    except TrainingError as exc:
        result.notes.append(
            f"robustness: missing values not measured: {metric} cannot be computed on the sample ({exc})"
        )
        return
    result.detail["missing_share"] = rb.missing_share
    features = config.feature_names
    blanked = [
        perturb.with_missing(sample, feature, rb.missing_share, np.random.default_rng([config.seed, _MISSING, j]))
        for j, feature in enumerate(features)
    ]
    drops: dict[str, list[float | None]] = {}
    for which, scores_before in base.items():
        drops[which] = []
        for feature, (rows, chosen), scores in zip(
            features, blanked, _each_scored(inputs, which, blanked), strict=True
        ):
            if isinstance(scores, Exception):  # a model that cannot take missing values: said, never a crash
                drops[which].append(None)
                text = str(scores).replace("\n", " ")[:_ERROR_CHARS]
                result.notes.append(
                    f"robustness: the {which} cannot score rows with {feature!r} missing ({len(rows):,} of "
                    f"{len(sample):,} values blanked): {type(scores).__name__}: {text}; impute missing values in its "
                    f"pipeline (the project's pipelines impute: numeric by median, categorical by most frequent)"
                )
                continue
            after = scores_before.copy()
            after[chosen] = scores
            drops[which].append(sign * (before[which] - _primary(inputs, y, after)))
    for j, feature in enumerate(features):
        label = f"{metric} drop when {rb.missing_share:.0%} of {feature} is missing"
        mine, theirs = drops["challenger"][j], drops["champion"][j] if "champion" in drops else None
        result.table.append(_row(f"missing:{feature}", label, mine, theirs))
        for which in drops:
            if (drop := drops[which][j]) is not None:
                result.metrics[f"missing.{feature}.{which}"] = drop


def _each_scored(
    inputs: PanelInputs, which: str, blanked: list[tuple[pd.DataFrame, np.ndarray]]
) -> list[np.ndarray | Exception]:
    """`which` model's scores on each frame: one call on them stacked, else one each (naming the ones it refuses)."""
    import numpy as np
    import pandas as pd

    with contextlib.suppress(Exception):  # else some feature's missing values: find which, one frame at a time
        stacked = _scores(inputs, which, pd.concat([rows for rows, _ in blanked], ignore_index=True))
        return list(np.split(stacked, np.cumsum([len(rows) for rows, _ in blanked])[:-1]))
    out: list[np.ndarray | Exception] = []
    for rows, _ in blanked:
        try:
            out.append(_scores(inputs, which, rows))
        except Exception as exc:
            out.append(exc)
    return out


# --------------------------------------------------------------------------- table, summary


def _row(
    check: str,
    label: str,
    challenger: float | None,
    champion: float | None,
    *,
    limit: float | None = None,
    passed: bool | None = None,
) -> dict[str, Any]:
    difference = None if challenger is None or champion is None else challenger - champion
    return {
        "check": check,
        "label": label,
        "challenger": challenger,
        "champion": champion,
        "difference": difference,
        "low": None,
        "high": None,
        "limit": limit,
        "passed": passed,
    }


def _summary(result: PanelResult) -> str:
    """One line: the flip rate (or score change), the worst monotonic share, the Brier score; what blocks."""
    rows = {row["check"]: row for row in result.table}

    def both(row: dict[str, Any], fmt: str) -> str:
        theirs = "" if row["champion"] is None else f" (champion {format(row['champion'], fmt)})"
        return f"{format(row['challenger'], fmt)}{theirs}"

    parts = []
    if "flip_rate" in rows:
        parts.append(f"flip rate {both(rows['flip_rate'], '.1%')}")
    elif "score_change" in rows:
        parts.append(f"score change {both(rows['score_change'], '.3g')}")
    monotonic = [row for check, row in rows.items() if check.startswith("monotonic:")]
    if monotonic:
        parts.append(f"monotonic violations {max(row['challenger'] for row in monotonic):.1%}")
    if "brier" in rows:
        parts.append(f"Brier {both(rows['brier'], '.3f')}")
    failed = [row["check"] for row in result.table if row["passed"] is False]
    line = ", ".join(parts) or "measured"
    return f"{line}; blocks: {', '.join(failed)}" if failed else line
