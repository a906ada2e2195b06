"""The pipeline config's sections: immutable msgspec Structs, one per YAML section, and their allowed values.

Each key's type and default is written here once: config.reader reads a section by its fields.
Copy one with ``section._replace(key=value)``. Every DAG parse imports this module, and defining its 17
sections costs ~0.5 ms as Structs against ~4 ms as NamedTuples and ~13 ms as frozen dataclasses
(docs/benchmarks.md, DAG parse cost); msgspec is a dependency of Airflow itself. Their mappings are typed
``Mapping`` (read-only): nothing may change one in place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping  # noqa: TC003 - config.reader resolves the fields' types at run time
from pathlib import Path
from typing import Any, Self

import msgspec

from airflow_mlops.core.errors import ConfigError

TASKS = ("binary_classification", "multiclass_classification", "regression")
FEATURE_TYPES = ("numeric", "categorical")
SOURCE_FORMATS = ("csv", "parquet")
SOURCE_KINDS = ("file", "sql")
#: A pipeline name becomes DAG ids (<name>_retrain) and Asset URIs (mlops://<name>/champion).
PIPELINE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
CLASSIFICATION_METRICS = ("roc_auc", "accuracy", "f1", "log_loss", "precision", "recall")
REGRESSION_METRICS = ("rmse", "mae", "r2")
ALLOWED_ESTIMATOR_PREFIX = "sklearn."


class _Section(msgspec.Struct, frozen=True):
    """An immutable part of a pipeline config."""

    def _replace(self, **changes: Any) -> Self:
        """A copy with `changes` (as NamedTuple._replace)."""
        return msgspec.structs.replace(self, **changes)


MONOTONIC_DIRECTIONS = ("increasing", "decreasing")


class Feature(_Section, frozen=True):
    """One model input: a column and how it is encoded."""

    name: str
    type: str  # numeric | categorical
    # numeric only: the score should only rise (increasing) or fall (decreasing) as this feature rises
    # (evaluation.robustness counts the rows whose individual conditional expectation breaks it)
    monotonic: str | None = None


class SourceConfig(_Section, frozen=True):
    """Where the rows come from and what reading them needs."""

    kind: str = "file"  # file: `path` (CSV/Parquet); sql: `conn_id` and `query` or `table`
    # A file, or a folder of daily files; relative paths are relative to the project root. Required for kind
    # file ("" when not given: config.parse refuses it there); a SQL source has none.
    path: str = ""
    format: str = "csv"
    date_column: str | None = None
    window_days: int | None = None
    max_file_mb: float = 512.0
    # Folders a source may live in (relative to the project root); the folders in
    # $AIRFLOW_MLOPS_DATA_ROOTS are allowed too. A path anywhere else, or in the state folder
    # ($AIRFLOW_MLOPS_HOME), is refused.
    allowed_roots: tuple[str, ...] = ("data",)
    # What real exports need: extra strings read as missing (e.g. " "), per-column types that beat
    # pandas' guess, and columns kept to join on (customer ids) but never used as features.
    na_values: tuple[str, ...] = ()
    dtypes: Mapping[str, str] = {}  # column -> one of COLUMN_DTYPES
    id_columns: tuple[str, ...] = ()
    # kind sql: an Airflow connection id (a common-sql database) and either a query, the window bound as the DB-API
    # parameters %(start)s, %(end)s and %(after_end)s (never formatted into the text), or a table, whose query is
    # generated from the config's columns; fetched `chunk_rows` rows at a time (core.data.sql).
    conn_id: str | None = None
    query: str | None = None
    table: str | None = None  # a table name, optionally schema-qualified (schema.table)
    chunk_rows: int = 100_000


#: Column types a source may force (`source.dtypes`): numbers, whole numbers, text, true/false.
COLUMN_DTYPES = ("float", "int", "string", "bool")


class ScheduleConfig(_Section, frozen=True):
    """When the pipeline's DAGs run (cron in `timezone`; None: only when an Asset event asks)."""

    retrain: str | None = "0 2 * * *"
    drift_monitor: str | None = "0 6 * * *"
    scoring: str | None = "0 5 * * *"
    performance_monitor: str | None = "0 7 * * *"
    timezone: str = "UTC"


class SecurityConfig(_Section, frozen=True):
    """What the pipeline may trust."""

    allow_pickle_models: bool = False  # load pickle/cloudpickle model files (they can run code while loading)


SPLIT_STRATEGIES = ("time", "random")


class SplitConfig(_Section, frozen=True):
    """Which rows of a snapshot train, which rank the candidates (validation), which judge (test).

    ``time`` (the default with a date column): the newest days are the test rows, the days before
    them validation, the rest training; ``*_days`` count days, else ``*_size`` is the share of days.
    ``random``: every row's role is a seeded hash of its ``key`` columns (default: source.id_columns,
    else the row's content) into buckets, ``*_size`` the share of rows: a row keeps its role as the
    data grows, and rows sharing a key share a role (core.rows).
    """

    strategy: str | None = None  # time | random; None: time when source.date_column is set, else random
    test_days: int | None = None
    validation_days: int | None = None
    test_size: float = 0.2
    validation_size: float = 0.2
    stratify: bool = True  # kept for older configs: the keyed random split holds the fractions without it
    key: tuple[
        str, ...
    ] = ()  # random split: the columns naming a row (one customer: one role); () = id_columns or content


class Candidate(_Section, frozen=True):
    """One model to train: a scikit-learn estimator and its parameters."""

    name: str
    estimator: str  # dotted path, e.g. sklearn.linear_model.LogisticRegression
    params: Mapping[str, Any] = {}


class MetricsConfig(_Section, frozen=True):
    """The metric that decides, and the others that are reported and guarded."""

    primary: str
    others: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return (self.primary, *[m for m in self.others if m != self.primary])


APPROVAL_MODES = ("never", "borderline", "always")


class ApprovalConfig(_Section, frozen=True):
    """When a promotion waits for a person (`evaluation.approval`), and for how long.

    ``never``: the gate alone decides. ``borderline``: a person decides when the gain's interval
    ends within `band` of zero (either side) or a guard rail used the last 20% of its tolerance
    (core.evaluation.borderline). ``always``: every promotion waits. No answer within
    `timeout_hours` is a REJECT.
    """

    mode: str = "never"  # never | borderline | always
    band: float = 0.005  # in units of the primary metric: how close to zero the interval's lower bound is borderline
    timeout_hours: float = 24.0  # the run waits this long for an answer, then rejects


REQUIRE_MODES = ("point", "lower_bound")
SLICE_CORRECTIONS = ("holm", "bh")
FAIRNESS_METRICS = ("tpr_gap", "fpr_gap", "selection_rate_ratio")


class SlicesConfig(_Section, frozen=True):
    """Per-slice guard rails (core.evaluation.slices): the challenger must not regress in any slice of the test rows.

    Categorical columns slice by value, numeric ones by `bins` quantile bins; `crossings` pairs two columns. A slice
    with at least `min_slice_rows` rows (and `min_slice_events` of each class) is judged: it blocks when the
    primary metric's gain is below -`slice_tolerance` with a one-sided p-value under `alpha` after `correction`
    (holm: the family-wise error; bh: the false discovery rate) across every slice judged. Off when no columns.
    """

    columns: tuple[str, ...] = ()
    crossings: tuple[tuple[str, str], ...] = ()
    bins: int = 4
    min_slice_rows: int = 200
    min_slice_events: int = 20
    slice_tolerance: float = 0.01
    correction: str = "holm"  # holm | bh
    alpha: float = 0.05


class FairnessConfig(_Section, frozen=True):
    """Opt-in fairness gaps between groups (core.evaluation.fairness, Fairlearn's definitions): the challenger's gap
    must not worsen past the champion's by more than `tolerance` (judged on its interval); `limits` are optional
    absolute bounds (a gap at most, a ratio at least). Off when no groups."""

    groups: tuple[str, ...] = ()
    metrics: tuple[str, ...] = FAIRNESS_METRICS
    tolerance: float = 0.02
    limits: Mapping[str, float] = {}
    min_group_rows: int = 50  # a smaller group is listed as insufficient evidence, never judged


class RobustnessConfig(_Section, frozen=True):
    """The robustness panel (core.evaluation.robustness), both models on the same rows."""

    enabled: bool = True
    perturbation: float = 0.1  # numeric features move by this fraction of their median absolute deviation
    missing_share: float = 0.1  # the share of a feature's values made missing, one feature at a time
    sample_rows: int = 2000  # rows (a seeded sample of the test rows) the panel perturbs
    max_flip_rate_increase: float = 0.02  # the challenger's class-flip share may exceed the champion's by this
    max_monotonic_violations: float = 0.05  # the share of rows breaking a declared monotonic feature
    # A row breaks it when its score at a grid point is on the wrong side of its score at a lower grid point by more
    # than this: a probability (classification) or a fraction of the test target's standard deviation (regression).
    monotonic_tolerance: float = 0.04  # churn: LR 0%, random forest 0-2.3%, HGB 12-42% of rows (docs/benchmarks.md)
    calibration: bool = True  # classification: Brier score and ECE not significantly worse than the champion's


class ExplainConfig(_Section, frozen=True):
    """Permutation importance of both models (core.evaluation.importance) and how far its ranking may move."""

    importance: bool = True
    sample_rows: int = 2000  # test rows (a seeded sample) the importance is measured on
    repeats: int = 5
    min_importance_ndcg: float = 0.9  # below: a warning naming the features that moved most
    max_share_ratio: float = 3.0  # the challenger leans on one feature this many times more than the champion did


class EvaluationConfig(_Section, frozen=True):
    """The champion/challenger gate."""

    margin: float = 0.0  # the primary metric must improve by at least this much
    confidence: float = 0.95  # of the paired-bootstrap interval of the difference
    bootstrap_samples: int = 1000
    guard_rails: Mapping[str, float] = {}  # metric -> largest tolerated regression
    floors: Mapping[str, float] = {}  # metric -> worst acceptable value
    leakage_threshold: float | None = 0.999  # a test-set primary score this good smells of target leakage
    min_test_rows: int = 500  # fewer clean test rows (after excluding the champion's): REJECT, never a promotion
    # Classification: fewer test rows of any class than this: REJECT (a rare class decides the metric).
    min_test_events: int = 50
    # point: the gain >= margin and its interval above zero; lower_bound: the interval's lower bound >= margin.
    require: str = "point"
    # Also judge the guard rails against the model's first champion, so small regressions cannot accumulate.
    baseline_guard: bool = False
    approval: ApprovalConfig = ApprovalConfig()  # when a person must approve the promotion
    slices: SlicesConfig = SlicesConfig()
    fairness: FairnessConfig = FairnessConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    explain: ExplainConfig = ExplainConfig()


class DeploymentConfig(_Section, frozen=True):
    """How a promoted model is smoke-tested as served."""

    smoke_rows: int = 100
    serve: bool = False  # also start `mlflow models serve` on loopback and POST to /invocations
    serve_timeout_s: float = 120.0


class PerformanceConfig(_Section, frozen=True):
    """Realized performance on delayed labels: when it counts as decay, and how often it may ask for a retrain."""

    tolerance: float = 0.02  # decay: the realized primary metric's interval is below the promised figure minus this
    min_join_rate: float = 0.9  # a day's predictions matched by labels below this share fails the check
    min_rows: int = 200  # a labelled day with fewer joined rows is reported, never judged
    bootstrap_samples: int = 1000
    confirm_days: int = 2  # ask for a retrain when decay holds on N ...
    of_last_days: int = 3  # ... of the last M labelled days checked,
    cooldown_hours: float = 24.0  # and not again within this many hours


class ScoringConfig(_Section, frozen=True):
    """Batch scoring with the champion, and where the outcomes arrive later."""

    source: str | None = None  # a folder of daily files <pipeline>_YYYY-MM-DD.csv: the records to score (no target)
    labels: str | None = None  # a folder of daily label files: id columns + target, for the day the records are of
    label_delay_days: int = 7  # the labels of day D arrive by D + label_delay_days
    chunk_rows: int = 200_000  # rows scored at a time (bounded memory)


class MonitoringConfig(_Section, frozen=True):
    """Drift monitoring: what counts as drift, and how often it may ask for a retrain."""

    window_days: int = 7  # the current window the monitor compares with the champion's training data
    alpha: float = 0.01  # significance after Benjamini-Hochberg correction across features
    psi_threshold: float = 0.2  # effect size a numeric feature needs (population stability index)
    js_threshold: float = 0.1  # effect size a categorical feature needs (Jensen-Shannon distance)
    drift_share: float = 0.3  # the dataset drifts when this share of features (weighted) drifts
    weights: Mapping[str, float] = {}  # feature -> importance weight (default 1)
    confirm_checks: int = 2  # emit a retrain request when drift holds in N ...
    of_last_checks: int = 3  # ... of the last M checks
    cooldown_hours: float = 24.0  # and not again within this many hours
    performance: PerformanceConfig = PerformanceConfig()


#: What can be alerted on (approval_waiting: a promotion waits for a person, evaluation.approval).
ALERT_EVENTS = (
    "run_failed",
    "promoted",
    "rolled_back",
    "rejected",
    "drift_confirmed",
    "performance_decay",
    "approval_waiting",
)
ALERT_CHANNEL_TYPES = ("email", "webhook")
WEBHOOK_FORMATS = ("json", "slack")


class AlertChannel(_Section, frozen=True):
    """Where alerts go: e-mail through an Airflow SMTP connection, or a JSON/Slack webhook through an HTTP one."""

    name: str
    type: str  # email | webhook
    conn_id: str
    to: tuple[str, ...] = ()  # email: the recipients
    from_email: str | None = None  # email: default the connection's from_email, else airflow-mlops@<host>
    format: str = "json"  # webhook: json (every field) | slack ({"text": ...}: Slack incoming webhooks)


class AlertsConfig(_Section, frozen=True):
    """Which events go to which channels. The task log gets every alert whatever the routes say."""

    channels: Mapping[str, AlertChannel] = {}
    events: Mapping[str, tuple[str, ...]] = {}  # event -> channel names

    def channels_for(self, event: str) -> list[AlertChannel]:
        return [self.channels[name] for name in self.events.get(event, ())]


class PipelineConfig(_Section, frozen=True):
    """A whole pipeline YAML, validated (see `load_config`)."""

    name: str
    source: SourceConfig
    target: str
    task: str
    features: tuple[Feature, ...]
    expectation_suite: str
    model_name: str
    candidates: tuple[Candidate, ...]
    metrics: MetricsConfig
    split: SplitConfig
    seed: int
    evaluation: EvaluationConfig = EvaluationConfig()
    deployment: DeploymentConfig = DeploymentConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    security: SecurityConfig = SecurityConfig()
    alerts: AlertsConfig = AlertsConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    scoring: ScoringConfig = ScoringConfig()
    # Binary classification: the class f1/precision/recall/ROC AUC treat as positive. None: inferred
    # (core.labels): for text labels the one reading as positive (yes/y/true/1/positive, any case:
    # "Yes" of Yes/No), else the last class in sorted order (1 of 0/1, True of False/True). Logged.
    positive_class: Any = None
    variant_of: str | None = None  # a variant (e.g. churn_fast) runs under its pipeline's DAGs and has none
    description: str = ""
    path: str = ""  # the file this config came from
    raw: Mapping[str, Any] = {}

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.type == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.type == "categorical"]

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    @property
    def split_strategy(self) -> str:
        """The split strategy in force: the configured one, else time when there is a date column."""
        return self.split.strategy or ("time" if self.source.date_column else "random")

    def candidate(self, name: str) -> Candidate:
        for c in self.candidates:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.candidates)
        raise ConfigError(f"{self.path}: model.candidates: no candidate named {name!r} (known: {known})")

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the project root (the folder holding include/)."""
        p = Path(relative)
        return p if p.is_absolute() else project_root_of(self.path) / p


def project_root_of(config_path: str) -> Path:
    """The project root: the parent of the `include/` folder the config lives in, else its folder."""
    p = Path(config_path).resolve()
    for parent in p.parents:
        if parent.name == "include":
            return parent.parent
    return p.parent
