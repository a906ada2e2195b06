"""What a validation panel reads (`PanelInputs`) and returns (`PanelResult`); core.evaluation.panels runs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.evaluation.bootstrap import class_strata, multinomial_resamples
from airflow_mlops.core.evaluation.models import score

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.evaluation.models import Loaded


@dataclass
class PanelInputs:
    """What every panel reads: the clean test rows, both models and their scores on them."""

    config: PipelineConfig
    frame: pd.DataFrame = field(repr=False)  # the clean test rows (features, target, ids, date)
    y: np.ndarray = field(repr=False)
    labels: list[Any] | None  # class labels in the score columns' order (classification)
    positive: Any  # binary: the positive class (core.labels)
    challenger: Loaded
    champion: Loaded | None  # None: the first model (panels report, compare nothing)
    challenger_scores: np.ndarray = field(repr=False)  # predict_proba in `labels` order, or predictions
    champion_scores: np.ndarray | None = field(repr=False)

    def resample(self, statistic: Callable[[np.ndarray], Any]) -> np.ndarray:
        """`statistic(w)` on each of the gate's resamples (w: how often each test row was drawn), shape (n, ...)."""
        import numpy as np

        ev = self.config.evaluation
        return multinomial_resamples(
            np.random.default_rng(self.config.seed),
            len(self.y),
            ev.bootstrap_samples,
            statistic,
            strata=class_strata(self.y, self.config.task, self.labels),
        )

    def rescore(self, which: str, rows: pd.DataFrame) -> np.ndarray:
        """The scores of the challenger or the champion (`which`) on `rows` (e.g. perturbed), as the gate scores."""
        loaded = self.challenger if which == "challenger" else self.champion
        if loaded is None:
            raise ValueError("there is no champion to score")
        scores, _, _ = score(loaded, rows, self.config, role=which)
        return scores


@dataclass
class PanelResult:
    """One panel's findings."""

    name: str  # slices | fairness | robustness | importance
    checks: list[tuple[bool, str]] = field(default_factory=list)  # (passed, in words): a failed one rejects
    notes: list[str] = field(default_factory=list)  # warnings and insufficient evidence: shown, never blocking
    table: list[dict[str, Any]] = field(default_factory=list)  # one row per slice / group / feature (JSON-safe)
    summary: str = ""  # one line: the worst slice, the flip rate, the ranking's nDCG
    metrics: dict[str, float] = field(default_factory=dict)  # logged to the evaluation run as <name>.<key>
    detail: dict[str, Any] = field(default_factory=dict)  # anything else the JSON artifact keeps

    @property
    def blocked(self) -> bool:
        return any(not ok for ok, _ in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "blocked": self.blocked,
            "checks": [{"passed": ok, "text": text} for ok, text in self.checks],
            "notes": list(self.notes),
            "table": list(self.table),
            "metrics": dict(self.metrics),
            **({"detail": self.detail} if self.detail else {}),
        }
