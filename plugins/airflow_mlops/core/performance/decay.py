"""The promise and the decay rule.

The promise is the champion's own test-set figure, recorded when it was judged: the evaluation step
tags the version with ``evaluation.run_id`` (core.evaluation.evidence) and that run holds the
challenger's test metrics as ``challenger.<metric>``; the version that is champion now was the
challenger of that evaluation. Nothing new is recorded at promotion: the figure is read back.

A day decays when the realized primary metric's interval lies wholly on the wrong side of the promise
minus the tolerance: for higher-is-better metrics its upper bound is below ``promised - tolerance``; for
lower-is-better ones (log_loss, rmse, mae) its lower bound is above ``promised + tolerance``. A day with
fewer joined rows than ``min_rows``, no interval or no promise is reported, never judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.training import LOWER_IS_BETTER

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from airflow_mlops.core.performance.metrics import RealizedMetrics

#: The version tag the evaluation step writes, and the prefix of the challenger's metrics in that run.
EVALUATION_RUN_TAG = "evaluation.run_id"
CHALLENGER_PREFIX = "challenger."


@dataclass(frozen=True)
class Promise:
    """What a model version promised: its test-set metrics at its evaluation (the run that judged it)."""

    version: str
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str = ""
    test_rows: int | None = None
    decision: str | None = None

    def value(self, metric: str) -> float | None:
        return self.metrics.get(metric)

    def describe(self, metric: str) -> str:
        value = self.value(metric)
        rows = f" on {self.test_rows:,} test rows" if self.test_rows else ""
        shown = "none" if value is None else f"{value:.4f}"
        return f"v{self.version} promised {metric} {shown}{rows} (evaluation run {self.run_id}, {self.decision})"


def promise(client: MlflowClient, model_name: str, version: str) -> Promise | None:
    """The version's test-set figures from its evaluation run; None when it was never evaluated (or the run is gone)."""
    from mlflow.exceptions import MlflowException

    mv = client.get_model_version(model_name, str(version))
    run_id = (mv.tags or {}).get(EVALUATION_RUN_TAG)
    if not run_id:
        return None
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    metrics = {
        k[len(CHALLENGER_PREFIX) :]: float(v) for k, v in run.data.metrics.items() if k.startswith(CHALLENGER_PREFIX)
    }
    rows = run.data.metrics.get("test_rows")
    return Promise(
        version=str(version),
        metrics=metrics,
        run_id=run_id,
        test_rows=int(rows) if rows is not None else None,
        decision=(mv.tags or {}).get("decision"),
    )


@dataclass(frozen=True)
class Judgement:
    """One day's decay verdict for one version."""

    judged: bool
    decay: bool
    reason: str
    promised: float | None = None
    threshold: float | None = None

    @property
    def verdict(self) -> str:
        return "not_judged" if not self.judged else "decay" if self.decay else "no_decay"

    def to_dict(self) -> dict[str, Any]:
        return {
            "judged": self.judged,
            "decay": self.decay,
            "verdict": self.verdict,
            "reason": self.reason,
            "promised": self.promised,
            "threshold": self.threshold,
        }


def decay_threshold(promised: float, tolerance: float, metric: str) -> float:
    """The line a day's interval must stay on the right side of: promised -/+ tolerance."""
    return promised + tolerance if metric in LOWER_IS_BETTER else promised - tolerance


def judge(
    realized: RealizedMetrics | None, promised: float | None, *, tolerance: float, min_rows: int, version: str = ""
) -> Judgement:
    """Decay, no decay, or not judged (and why) for one day's realized metrics of one version."""
    who = f"v{version}" if version else "the model"
    if realized is None or realized.rows == 0:
        return Judgement(False, False, f"{who} scored none of the day's labelled rows: nothing to judge", promised)
    metric = realized.metric
    if realized.rows < min_rows:
        return Judgement(
            False,
            False,
            f"{realized.rows:,} labelled row(s) of {who}, fewer than "
            f"monitoring.performance.min_rows ({min_rows:,}): reported, not judged",
            promised,
        )
    if promised is None:
        return Judgement(
            False,
            False,
            f"{who} has no promised {metric} (no evaluation run with its test-set figure): reported, not judged",
            None,
        )
    threshold = decay_threshold(promised, tolerance, metric)
    if realized.low is None or realized.high is None:
        return Judgement(
            False,
            False,
            f"no interval for the realized {metric} ({'; '.join(realized.notes) or 'n/a'}): reported, not judged",
            promised,
            threshold,
        )
    shown = f"realized {metric} {realized.value:.4f} [{realized.low:.4f}, {realized.high:.4f}]"
    if metric in LOWER_IS_BETTER:
        decay = realized.low > threshold
        side = "above" if decay else "not wholly above"
    else:
        decay = realized.high < threshold
        side = "below" if decay else "not wholly below"
    return Judgement(
        True,
        decay,
        f"{shown} on {realized.rows:,} rows: interval {side} promised {promised:.4f} "
        f"{'+' if metric in LOWER_IS_BETTER else '-'} tolerance {tolerance:g} = "
        f"{threshold:.4f}: {'DECAY' if decay else 'no decay'}",
        promised,
        threshold,
    )
