"""Pipeline config (YAML) -> typed, validated objects.

Every error names the file and the key, e.g.
``include/pipelines/churn.yaml: model.candidates[1].estimator: unknown estimator 'sklearn.foo.Bar'``.

The sections are immutable msgspec Structs (copy one with ``section._replace(key=value)``): every
DAG parse imports this module, and defining its 17 sections costs ~0.5 ms as Structs against ~4 ms as
NamedTuples and ~13 ms as frozen dataclasses (docs/benchmarks.md, DAG parse cost); msgspec is a
dependency of Airflow itself. Their mappings are typed ``Mapping`` (read-only): nothing may change one
in place.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import msgspec

from airflow_mlops.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

TASKS = ("binary_classification", "multiclass_classification", "regression")
FEATURE_TYPES = ("numeric", "categorical")
SOURCE_FORMATS = ("csv", "parquet")
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


class Feature(_Section, frozen=True):
    """One model input: a column and how it is encoded."""

    name: str
    type: str  # numeric | categorical


class SourceConfig(_Section, frozen=True):
    """Where the rows come from and what reading them needs."""

    path: str  # a file, or a folder of daily files; relative paths are relative to the project root
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
    key: tuple[str, ...] = ()  # random split: the columns naming a row (one customer: one role); () = id_columns or content


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
ALERT_EVENTS = ("run_failed", "promoted", "rolled_back", "rejected", "drift_confirmed", "performance_decay",
                "approval_waiting")
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


class _Reader:
    """Reads one mapping strictly: unknown keys and wrong types are errors naming file and key."""

    def __init__(self, file: str, data: Any, where: str) -> None:
        self.file, self.where = file, where
        if not isinstance(data, dict):
            self.fail(f"expected a mapping, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def fail(self, msg: str, key: str | None = None) -> None:
        loc = f"{self.where}.{key}" if key and self.where else (key or self.where or "<top level>")
        raise ConfigError(f"{self.file}: {loc}: {msg}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., choices: tuple = ()) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                self.fail("required key is missing", key)
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            ok = False
        else:
            ok = isinstance(value, kinds) or (float in kinds and isinstance(value, int))
        if not ok:
            names = " or ".join(k.__name__ for k in kinds)
            self.fail(f"expected {names}, got {type(value).__name__} {value!r}", key)
        if choices and value not in choices:
            self.fail(f"{value!r} is not one of {', '.join(map(str, choices))}", key)
        return value

    def sub(self, key: str, default: Any = ...) -> _Reader:
        value = self.get(key, dict, default)
        return _Reader(self.file, value, f"{self.where}.{key}" if self.where else key)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            self.fail(f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(self.used))}")


def pipeline_configs(folder: str | Path | None = None) -> list[PipelineConfig]:
    """Every pipeline config in `folder` (default: the project's include/pipelines/), sorted by file name;
    files that do not parse are skipped (the DAGs report them)."""
    from airflow_mlops import settings

    root = Path(folder) if folder else settings.project_root() / "include" / "pipelines"
    configs = []
    for path in sorted(root.glob("*.yaml")):
        try:
            configs.append(load_config(path, check_estimators=False))
        except ConfigError:
            continue
    return configs


def load_config(path: str | Path, *, check_estimators: bool = True) -> PipelineConfig:
    """Read and validate a pipeline config file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found; pipeline configs live in include/pipelines/") from None
    return parse_config(read_yaml(Path(path), text), file=file, check_estimators=check_estimators)


#: Every DAG parse reads every pipeline YAML. PyYAML costs ~1 ms a file, and ~8 ms to import; so, like Python's
#: own __pycache__ (or dbt's partial parsing), the data of each YAML is kept as JSON in `__pycache__/` beside it,
#: named by a digest of the file's text: an edited YAML is read afresh, never served stale.
YAML_COPIES = "__pycache__"


def read_yaml(path: Path, text: str) -> Any:
    """The data of the YAML `text` read from `path`: from its JSON copy when there is one, else parsed (and copied)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()
    copy = path.parent / YAML_COPIES / f"{path.name}.{digest}.json"
    try:
        return json.loads(copy.read_bytes())
    except (OSError, ValueError):
        pass
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    _keep_json_copy(copy, data, older=f"{path.name}.*.json")
    return data


def _keep_json_copy(copy: Path, data: Any, *, older: str) -> None:
    """Write `copy` (atomically) when JSON holds `data` exactly (no dates, sets or number keys), and remove the
    copies of the file's older texts (the files matching `older`). A folder that cannot be written is skipped:
    the YAML is read each time."""
    try:
        text = json.dumps(data)
        if json.loads(text) != data:
            return
        copy.parent.mkdir(exist_ok=True)
        for stale in copy.parent.glob(older):
            stale.unlink(missing_ok=True)
        partial = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, copy)
    except (OSError, TypeError, ValueError):
        return


def parse_config(data: Any, *, file: str = "<config>", check_estimators: bool = True) -> PipelineConfig:
    top = _Reader(file, data, "")
    name = top.get("pipeline", str)
    if not PIPELINE_NAME.fullmatch(name):
        top.fail(f"{name!r} cannot name DAGs and Assets: use lower-case letters, digits and '_', starting with a "
                 "letter (e.g. churn, house_prices)", "pipeline")
    variant_of = top.get("variant_of", str, None)
    if variant_of is not None and variant_of != name:
        top.fail(f"a variant runs under its pipeline's DAGs, so 'pipeline' must be {variant_of!r} too, got {name!r}",
                 "variant_of")

    src = top.sub("source")
    source = SourceConfig(
        path=src.get("path", str),
        format=src.get("format", str, "csv", SOURCE_FORMATS),
        date_column=src.get("date_column", str, None),
        window_days=src.get("window_days", int, None),
        max_file_mb=float(src.get("max_file_mb", float, 512.0)),
        allowed_roots=tuple(src.get("allowed_roots", list, ["data"])),
        na_values=tuple(_string_list(src, "na_values")),
        dtypes={str(k): v for k, v in src.get("dtypes", dict, {}).items()},
        id_columns=tuple(_string_list(src, "id_columns")),
    )
    src.done()
    for column, dtype in source.dtypes.items():
        if dtype not in COLUMN_DTYPES:
            src.fail(f"{column}: {dtype!r} is not one of {', '.join(COLUMN_DTYPES)}", "dtypes")
    if source.window_days is not None and source.window_days < 1:
        src.fail("must be >= 1", "window_days")
    if source.max_file_mb <= 0:
        src.fail(f"must be > 0, got {source.max_file_mb:g}", "max_file_mb")
    if not source.allowed_roots or not all(isinstance(r, str) and r.strip() for r in source.allowed_roots):
        src.fail(f"need a non-empty list of folder paths, got {list(source.allowed_roots)!r}", "allowed_roots")

    tgt = top.sub("target")
    target = tgt.get("column", str)
    task = tgt.get("task", str, choices=TASKS)
    positive_class = tgt.get("positive_class", (str, int, bool), None)
    tgt.done()
    if positive_class is not None and task != "binary_classification":
        tgt.fail(f"only binary classification has a positive class; the task is {task!r}", "positive_class")

    features = []
    raw_features = top.get("features", list)
    if not raw_features:
        top.fail("at least one feature is required", "features")
    for i, item in enumerate(raw_features):
        fr = _Reader(file, item, f"features[{i}]")
        features.append(Feature(name=fr.get("name", str), type=fr.get("type", str, choices=FEATURE_TYPES)))
        fr.done()
    names = [f.name for f in features]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        top.fail(f"duplicated feature name(s): {', '.join(dupes)}", "features")
    if target in names:
        top.fail(f"the target column {target!r} is also listed as a feature (target leakage)", "features")
    id_features = sorted(set(source.id_columns) & set(names))
    if id_features:
        top.fail(f"{', '.join(map(repr, id_features))} listed in source.id_columns: ids are kept for joins, never "
                 "used as features; remove them from one list", "features")
    if target in source.id_columns:
        src.fail(f"the target column {target!r} cannot be an id column", "id_columns")

    val = top.sub("validation")
    suite = val.get("suite", str)
    val.done()

    mdl = top.sub("model")
    model_name = mdl.get("name", str)
    candidates = []
    raw_candidates = mdl.get("candidates", list)
    if not raw_candidates:
        mdl.fail("at least one candidate is required", "candidates")
    for i, item in enumerate(raw_candidates):
        cr = _Reader(file, item, f"model.candidates[{i}]")
        cand = Candidate(name=cr.get("name", str), estimator=cr.get("estimator", str), params=cr.get("params", dict, {}))
        cr.done()
        if check_estimators:
            _check_estimator(cand.estimator, task, lambda msg, r=cr: r.fail(msg, "estimator"))
        candidates.append(cand)
    cnames = [c.name for c in candidates]
    if len(set(cnames)) != len(cnames):
        mdl.fail(f"candidate names must be unique, got {cnames}", "candidates")
    mdl.done()

    met = top.sub("metrics")
    allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    primary = met.get("primary", str, choices=allowed)
    others = met.get("others", list, [])
    for m in others:
        if m not in allowed:
            met.fail(f"{m!r} is not a metric for {task}; allowed: {', '.join(allowed)}", "others")
    met.done()

    split = _split_config(top.sub("split", {}), source, known_columns=[*names, *source.id_columns])

    ev = top.sub("evaluation", {})
    evaluation = EvaluationConfig(
        margin=float(ev.get("margin", float, 0.0)),
        confidence=float(ev.get("confidence", float, 0.95)),
        bootstrap_samples=ev.get("bootstrap_samples", int, 1000),
        guard_rails=_metric_map(ev, "guard_rails", allowed),
        floors=_metric_map(ev, "floors", allowed),
        leakage_threshold=ev.get("leakage_threshold", (float, type(None)), 0.999),
        min_test_rows=ev.get("min_test_rows", int, 500),
        min_test_events=ev.get("min_test_events", int, 50),
        require=ev.get("require", str, "point", REQUIRE_MODES),
        baseline_guard=ev.get("baseline_guard", bool, False),
        approval=_approval_config(ev),
    )
    ev.done()
    if not 0.5 <= evaluation.confidence < 1.0:
        ev.fail(f"must be in [0.5, 1), got {evaluation.confidence}", "confidence")
    if evaluation.bootstrap_samples < 100:
        ev.fail(f"use at least 100 resamples, got {evaluation.bootstrap_samples}", "bootstrap_samples")
    if evaluation.margin < 0:
        ev.fail(f"must be >= 0, got {evaluation.margin}", "margin")
    if evaluation.min_test_rows < 2:
        ev.fail(f"must be >= 2, got {evaluation.min_test_rows}", "min_test_rows")
    if evaluation.min_test_events < 1:
        ev.fail(f"must be >= 1, got {evaluation.min_test_events}", "min_test_events")
    if "min_test_events" in ev.data and evaluation.min_test_events > evaluation.min_test_rows:
        ev.fail(f"{evaluation.min_test_events} events of each class cannot fit in evaluation.min_test_rows "
                f"({evaluation.min_test_rows}) test rows; lower min_test_events or raise min_test_rows", "min_test_events")

    dep = top.sub("deployment", {})
    deployment = DeploymentConfig(
        smoke_rows=dep.get("smoke_rows", int, 100),
        serve=dep.get("serve", bool, False),
        serve_timeout_s=float(dep.get("serve_timeout_s", float, 120.0)),
    )
    dep.done()
    if deployment.smoke_rows < 1:
        dep.fail("must be >= 1", "smoke_rows")

    mon = top.sub("monitoring", {})
    monitoring = MonitoringConfig(
        window_days=mon.get("window_days", int, 7),
        alpha=float(mon.get("alpha", float, 0.01)),
        psi_threshold=float(mon.get("psi_threshold", float, 0.2)),
        js_threshold=float(mon.get("js_threshold", float, 0.1)),
        drift_share=float(mon.get("drift_share", float, 0.3)),
        weights={str(k): float(v) for k, v in mon.get("weights", dict, {}).items()},
        confirm_checks=mon.get("confirm_checks", int, 2),
        of_last_checks=mon.get("of_last_checks", int, 3),
        cooldown_hours=float(mon.get("cooldown_hours", float, 24.0)),
        performance=_performance_config(mon.sub("performance", {})),
    )
    mon.done()
    unknown_weights = sorted(set(monitoring.weights) - set(names))
    if unknown_weights:
        mon.fail(f"unknown feature(s) {', '.join(map(repr, unknown_weights))}", "weights")
    if not 1 <= monitoring.confirm_checks <= monitoring.of_last_checks:
        mon.fail(f"need 1 <= confirm_checks <= of_last_checks, got {monitoring.confirm_checks} of "
                 f"{monitoring.of_last_checks}", "confirm_checks")
    for key in ("alpha", "drift_share"):
        if not 0 < getattr(monitoring, key) <= 1:
            mon.fail(f"must be in (0, 1], got {getattr(monitoring, key)}", key)
    if monitoring.window_days < 1:
        mon.fail("must be >= 1", "window_days")

    sec = top.sub("security", {})
    security = SecurityConfig(allow_pickle_models=sec.get("allow_pickle_models", bool, False))
    sec.done()

    alerts = _alerts_config(top.sub("alerts", {}), file)
    schedule = _schedule_config(top.sub("schedule", {}))
    scoring = _scoring_config(top.sub("scoring", {}))

    seed = top.get("seed", int)
    description = top.get("description", str, "")
    top.done()

    return PipelineConfig(
        name=name,
        source=source,
        target=target,
        task=task,
        features=tuple(features),
        expectation_suite=suite,
        model_name=model_name,
        candidates=tuple(candidates),
        metrics=MetricsConfig(primary=primary, others=tuple(others)),
        split=split,
        seed=seed,
        evaluation=evaluation,
        deployment=deployment,
        monitoring=monitoring,
        security=security,
        alerts=alerts,
        schedule=schedule,
        scoring=scoring,
        positive_class=positive_class,
        variant_of=variant_of,
        description=description,
        path=file,
        raw=data,
    )


def _string_list(reader: _Reader, key: str) -> list[str]:
    values = reader.get(key, list, [])
    if not all(isinstance(v, str) for v in values):
        reader.fail(f"expected a list of strings, got {values!r}", key)
    return values


def _approval_config(ev: _Reader) -> ApprovalConfig:
    """`evaluation.approval`: a mode (``approval: borderline``) or a mapping {mode, band, timeout_hours}."""
    d = ApprovalConfig()
    raw = ev.get("approval", (str, dict), d.mode)
    if isinstance(raw, str):
        if raw not in APPROVAL_MODES:
            ev.fail(f"{raw!r} is not one of {', '.join(APPROVAL_MODES)} (or a mapping with mode, band, timeout_hours)",
                    "approval")
        return d._replace(mode=raw)
    apr = ev.sub("approval")
    approval = ApprovalConfig(
        mode=apr.get("mode", str, d.mode, APPROVAL_MODES),
        band=float(apr.get("band", float, d.band)),
        timeout_hours=float(apr.get("timeout_hours", float, d.timeout_hours)),
    )
    apr.done()
    if approval.band < 0:
        apr.fail(f"must be >= 0 (in units of the primary metric), got {approval.band:g}", "band")
    if not approval.timeout_hours > 0:
        apr.fail(f"must be > 0 (how long a run waits for an answer before it rejects), got {approval.timeout_hours:g}",
                 "timeout_hours")
    return approval


def _performance_config(per: _Reader) -> PerformanceConfig:
    d = PerformanceConfig()
    performance = PerformanceConfig(
        tolerance=float(per.get("tolerance", float, d.tolerance)),
        min_join_rate=float(per.get("min_join_rate", float, d.min_join_rate)),
        min_rows=per.get("min_rows", int, d.min_rows),
        bootstrap_samples=per.get("bootstrap_samples", int, d.bootstrap_samples),
        confirm_days=per.get("confirm_days", int, d.confirm_days),
        of_last_days=per.get("of_last_days", int, d.of_last_days),
        cooldown_hours=float(per.get("cooldown_hours", float, d.cooldown_hours)),
    )
    per.done()
    if performance.tolerance < 0:
        per.fail(f"must be >= 0, got {performance.tolerance}", "tolerance")
    if not 0 < performance.min_join_rate <= 1:
        per.fail(f"must be in (0, 1], got {performance.min_join_rate}", "min_join_rate")
    if performance.min_rows < 2:
        per.fail(f"must be >= 2, got {performance.min_rows}", "min_rows")
    if performance.bootstrap_samples < 100:
        per.fail(f"use at least 100 resamples, got {performance.bootstrap_samples}", "bootstrap_samples")
    if not 1 <= performance.confirm_days <= performance.of_last_days:
        per.fail(f"need 1 <= confirm_days <= of_last_days, got {performance.confirm_days} of "
                 f"{performance.of_last_days}", "confirm_days")
    return performance


def _scoring_config(sco: _Reader) -> ScoringConfig:
    d = ScoringConfig()
    scoring = ScoringConfig(
        source=sco.get("source", str, None),
        labels=sco.get("labels", str, None),
        label_delay_days=sco.get("label_delay_days", int, d.label_delay_days),
        chunk_rows=sco.get("chunk_rows", int, d.chunk_rows),
    )
    sco.done()
    if scoring.label_delay_days < 0:
        sco.fail(f"must be >= 0, got {scoring.label_delay_days}", "label_delay_days")
    if scoring.chunk_rows < 1000:
        sco.fail(f"score at least 1000 rows at a time, got {scoring.chunk_rows}", "chunk_rows")
    if scoring.labels and not scoring.source:
        sco.fail("labels are joined with the predictions of scoring.source: set it too", "labels")
    return scoring


def _schedule_config(sch: _Reader) -> ScheduleConfig:
    default = ScheduleConfig()
    schedule = ScheduleConfig(
        retrain=sch.get("retrain", (str, type(None)), default.retrain),
        drift_monitor=sch.get("drift_monitor", (str, type(None)), default.drift_monitor),
        scoring=sch.get("scoring", (str, type(None)), default.scoring),
        performance_monitor=sch.get("performance_monitor", (str, type(None)), default.performance_monitor),
        timezone=sch.get("timezone", str, default.timezone),
    )
    sch.done()
    for key in ("retrain", "drift_monitor", "scoring", "performance_monitor"):
        cron = getattr(schedule, key)
        if cron is not None and not cron.startswith("@") and len(cron.split()) != 5:
            sch.fail(f"{cron!r} is not a cron expression of 5 fields (e.g. '0 2 * * *'), a preset such as @daily, "
                     "or null for none", key)
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(schedule.timezone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        sch.fail(f"unknown time zone {schedule.timezone!r} (an IANA name such as UTC or Europe/Paris)", "timezone")
    return schedule


def _alerts_config(alr: _Reader, file: str) -> AlertsConfig:
    channels: dict[str, AlertChannel] = {}
    for name, raw in alr.get("channels", dict, {}).items():
        ch = _Reader(file, raw, f"alerts.channels.{name}")
        kind = ch.get("type", str, choices=ALERT_CHANNEL_TYPES)
        conn_id = ch.get("conn_id", str)
        if not conn_id.strip():
            ch.fail("must name an Airflow connection", "conn_id")
        to: list[Any] = []
        if kind == "email":
            to = ch.get("to", list)
            if not to or not all(isinstance(a, str) and "@" in a for a in to):
                ch.fail(f"expected a list of e-mail addresses, got {to!r}", "to")
            sender = ch.get("from", str, None)
        else:
            sender = None
        fmt = ch.get("format", str, "json", WEBHOOK_FORMATS) if kind == "webhook" else "json"
        ch.done()
        channels[str(name)] = AlertChannel(
            name=str(name), type=kind, conn_id=conn_id, to=tuple(to), from_email=sender, format=fmt
        )
    events: dict[str, tuple[str, ...]] = {}
    for event, names in alr.get("events", dict, {}).items():
        if event not in ALERT_EVENTS:
            alr.fail(f"unknown event {event!r}; events: {', '.join(ALERT_EVENTS)}", "events")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            alr.fail(f"{event}: expected a list of channel names, got {names!r}", "events")
        unknown = [n for n in names if n not in channels]
        if unknown:
            alr.fail(f"{event}: unknown channel(s) {', '.join(map(repr, unknown))}; channels: "
                     f"{', '.join(channels) or 'none defined (alerts.channels)'}", "events")
        events[event] = tuple(names)
    alr.done()
    return AlertsConfig(channels=channels, events=events)


def _split_config(spl: _Reader, source: SourceConfig, known_columns: list[str]) -> SplitConfig:
    split = SplitConfig(
        strategy=spl.get("strategy", str, None, SPLIT_STRATEGIES),
        test_days=spl.get("test_days", int, None),
        validation_days=spl.get("validation_days", int, None),
        test_size=float(spl.get("test_size", float, 0.2)),
        validation_size=float(spl.get("validation_size", float, 0.2)),
        stratify=spl.get("stratify", bool, True),
        key=tuple(_string_list(spl, "key")),
    )
    spl.done()
    for key in ("test_size", "validation_size"):
        if not 0.0 < getattr(split, key) < 1.0:
            spl.fail(f"must be between 0 and 1, got {getattr(split, key)}", key)
    if split.test_size + split.validation_size >= 1.0:
        spl.fail(f"test_size + validation_size must leave rows to train on, got {split.test_size} + "
                 f"{split.validation_size}", "validation_size")
    for key in ("test_days", "validation_days"):
        value = getattr(split, key)
        if value is not None and value < 1:
            spl.fail(f"must be >= 1, got {value}", key)
        if value is not None and split.strategy == "random":
            spl.fail("counts days of a time split; the random split takes test_size / validation_size", key)
    unknown = [c for c in split.key if c not in known_columns and c != source.date_column]
    if unknown:
        spl.fail(f"{', '.join(map(repr, unknown))} is not a column of this pipeline (its features, "
                 f"source.id_columns or date column); the split key names the columns that identify a row", "key")
    if split.key and (split.strategy == "time" or (split.strategy is None and source.date_column)):
        spl.fail("names the rows of the random split; a time split gives each row its role by its date", "key")
    if split.strategy == "time" and not source.date_column:
        spl.fail("'time' needs source.date_column (the day each row belongs to); set it, or use 'random'", "strategy")
    if split.strategy is None and not source.date_column and (split.test_days or split.validation_days):
        spl.fail("test_days / validation_days need source.date_column (a time split); use test_size / "
                 "validation_size for a random split", "test_days" if split.test_days else "validation_days")
    return split


def _metric_map(reader: _Reader, key: str, allowed: tuple[str, ...]) -> dict[str, float]:
    """A {metric: number} mapping whose metrics are known for the task."""
    raw = reader.get(key, dict, {})
    out = {}
    for metric, value in raw.items():
        if metric not in allowed:
            reader.fail(f"{metric!r} is not a metric for this task; allowed: {', '.join(allowed)}", key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            reader.fail(f"{metric}: expected a number, got {type(value).__name__} {value!r}", key)
        out[metric] = float(value)
    return out


def _check_estimator(path: str, task: str, fail: Any) -> None:
    if not path.startswith(ALLOWED_ESTIMATOR_PREFIX) or path.count(".") < 2:
        fail(f"unknown estimator {path!r}: give a scikit-learn class path such as sklearn.linear_model.LogisticRegression")
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        fail(f"unknown estimator {path!r}: module {module_name!r} does not exist in scikit-learn")
    cls = getattr(module, class_name, None)
    if cls is None or not hasattr(cls, "fit"):
        fail(f"unknown estimator {path!r}: {module_name} has no estimator class {class_name!r}")
        return
    wants = "regressor" if task == "regression" else "classifier"
    kind = getattr(cls, "_estimator_type", None)
    if kind is None:
        from sklearn.base import is_classifier, is_regressor

        try:
            est = cls()
            kind = "classifier" if is_classifier(est) else "regressor" if is_regressor(est) else None
        except Exception:
            kind = None
    if kind is not None and kind != wants:
        fail(f"estimator {path!r} is a {kind}, but the target task {task!r} needs a {wants}")
