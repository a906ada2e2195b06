"""The dicts passed between tasks through XCom (and Asset event extras), typed: what each producer returns and each
consumer may read. TypedDicts are plain dicts at runtime: XCom serializes them as it always did."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class SnapshotSummary(TypedDict):
    """core.data.take_snapshot / SnapshotOperator: the immutable Parquet snapshot of a window."""

    uri: str
    digest: str  # sha256:<hex> of the content: the data version
    rows: int
    columns: list[str]
    source: str
    files: int
    window_start: str | None  # ISO dates
    window_end: str | None
    sql: NotRequired[dict[str, Any]]  # a SQL source: conn_id, query, params (the window), fetch (copy | cursor)


class TrainingResult(TypedDict):
    """core.training.train_candidate / TrainCandidateOperator: one fitted candidate and its MLflow run."""

    candidate: str
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    primary_metric: str
    primary_value: float
    estimator: str


class VerdictPayload(TypedDict):
    """EvaluateOperator: the gate's decision on the challenger, read by the branch, deploy and rejection tasks."""

    decision: str
    promote: bool
    reasons: list[str]
    model_name: str
    challenger_version: str
    champion_version: str | None
    evaluation_run_id: str
    test_rows: dict[str, Any] | None
    needs_approval: bool
    approval_reasons: NotRequired[list[str]]
    approval: NotRequired[dict[str, Any]]  # {config_path, evidence}: what the approval task asks a person


class PromotionResult(TypedDict):
    """core.registry promote / rollback / restore: the aliases after the move and `before` it (what restore needs)."""

    name: str
    champion: str | None
    previous_champion: str | None
    moved_at: str | None
    before: dict[str, str | None]
    already_done: NotRequired[bool]  # a retried promotion that had already happened: nothing moved


class RetrainRequest(TypedDict):
    """RequestRetrainOperator: the extra of the retrain-request Asset event (a monitor's check that asked for one)."""

    trigger: str  # drift | performance: recorded as the retrain run's mlops.trigger
    summary: str
    reason: str
    model_name: str
    reference_version: str | None
    as_of: str  # the retrain trains on the data up to this day ...
    source: str  # ... from this source ("": the config's)
    mlflow_run_id: str
    drifted: NotRequired[list[str]]
    drift_share: NotRequired[float]
    day: NotRequired[str]
    metric: NotRequired[str]
    realized: NotRequired[float]
    ci_low: NotRequired[float]
    ci_high: NotRequired[float]
    promised: NotRequired[float]
    threshold: NotRequired[float]


class DriftCheckResult(TypedDict):
    """core.drift DriftCheck.to_dict / DriftSensor: the window's drift check, read by RequestRetrainOperator."""

    drift: bool
    drift_share: float
    drifted: list[str]
    summary: str
    requested: bool  # drift confirmed and no retrain requested during the cool-down
    reason: str
    run_id: str
    model_name: str
    reference_version: str | None
    reference_digest: str | None
    current_digest: str
    as_of: str
    source: str
