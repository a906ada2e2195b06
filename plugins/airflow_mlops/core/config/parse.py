"""A pipeline config's data -> a validated PipelineConfig; every error names the file and the key.

e.g. ``include/pipelines/churn.yaml: model.candidates[1].estimator: unknown estimator 'sklearn.foo.Bar'``.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core.config.estimators import check_estimator
from airflow_mlops.core.config.gate import approval_config, split_config
from airflow_mlops.core.config.operations import alerts_config, performance_config, schedule_config, scoring_config
from airflow_mlops.core.config.reader import Reader, string_list
from airflow_mlops.core.config.sections import (
    CLASSIFICATION_METRICS,
    COLUMN_DTYPES,
    FEATURE_TYPES,
    PIPELINE_NAME,
    REGRESSION_METRICS,
    REQUIRE_MODES,
    SOURCE_FORMATS,
    TASKS,
    Candidate,
    DeploymentConfig,
    EvaluationConfig,
    Feature,
    MetricsConfig,
    MonitoringConfig,
    PipelineConfig,
    SecurityConfig,
    SourceConfig,
)


def parse_config(data: Any, *, file: str = "<config>", check_estimators: bool = True) -> PipelineConfig:
    top = Reader(file, data, "")
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
        na_values=tuple(string_list(src, "na_values")),
        dtypes={str(k): v for k, v in src.get("dtypes", dict, {}).items()},
        id_columns=tuple(string_list(src, "id_columns")),
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
        fr = Reader(file, item, f"features[{i}]")
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
        cr = Reader(file, item, f"model.candidates[{i}]")
        cand = Candidate(name=cr.get("name", str), estimator=cr.get("estimator", str), params=cr.get("params", dict, {}))
        cr.done()
        if check_estimators:
            check_estimator(cand.estimator, task, lambda msg, r=cr: r.fail(msg, "estimator"))
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

    split = split_config(top.sub("split", {}), source, known_columns=[*names, *source.id_columns])

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
        approval=approval_config(ev),
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
        performance=performance_config(mon.sub("performance", {})),
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

    alerts = alerts_config(top.sub("alerts", {}), file)
    schedule = schedule_config(top.sub("schedule", {}))
    scoring = scoring_config(top.sub("scoring", {}))

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



def _metric_map(reader: Reader, key: str, allowed: tuple[str, ...]) -> dict[str, float]:
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

