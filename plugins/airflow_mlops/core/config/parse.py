"""A pipeline config's data -> a validated PipelineConfig; every error names the file and the key.

e.g. ``include/pipelines/churn.yaml: model.candidates[1].estimator: unknown estimator 'sklearn.foo.Bar'``.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core.config.estimators import check_estimator
from airflow_mlops.core.config.gate import deployment_config, evaluation_config, split_config
from airflow_mlops.core.config.operations import (
    alerts_config,
    monitoring_config,
    schedule_config,
    scoring_config,
    security_config,
)
from airflow_mlops.core.config.reader import Reader, read_field, read_struct
from airflow_mlops.core.config.sections import (
    CLASSIFICATION_METRICS,
    COLUMN_DTYPES,
    FEATURE_TYPES,
    MONOTONIC_DIRECTIONS,
    PIPELINE_NAME,
    REGRESSION_METRICS,
    SOURCE_FORMATS,
    SOURCE_KINDS,
    TASKS,
    Candidate,
    Feature,
    MetricsConfig,
    PipelineConfig,
    SourceConfig,
)
from airflow_mlops.core.config.source_checks import check_source
from airflow_mlops.core.paths import uri_problem


def parse_config(data: Any, *, file: str = "<config>", check_estimators: bool = True) -> PipelineConfig:
    top = Reader(file, data, "")
    name = read_field(top, PipelineConfig, "name", key="pipeline")
    if not PIPELINE_NAME.fullmatch(name):
        top.fail(
            f"{name!r} cannot name DAGs and Assets: use lower-case letters, digits and '_', starting with a "
            "letter (e.g. churn, house_prices)",
            "pipeline",
        )
    variant_of = read_field(top, PipelineConfig, "variant_of")
    if variant_of is not None and variant_of != name:
        top.fail(
            f"a variant runs under its pipeline's DAGs, so 'pipeline' must be {variant_of!r} too, got {name!r}",
            "variant_of",
        )

    src = top.sub("source")
    source = read_struct(
        src, SourceConfig, choices={"format": SOURCE_FORMATS, "kind": SOURCE_KINDS}, kinds={"allowed_roots": list}
    )
    src.done()
    check_source(src, source)
    for column, dtype in source.dtypes.items():
        if dtype not in COLUMN_DTYPES:
            src.fail(f"{column}: {dtype!r} is not one of {', '.join(COLUMN_DTYPES)}", "dtypes")
    if source.window_days is not None and source.window_days < 1:
        src.fail("must be >= 1", "window_days")
    if source.max_file_mb <= 0:
        src.fail(f"must be > 0, got {source.max_file_mb:g}", "max_file_mb")
    if not source.allowed_roots or not all(isinstance(r, str) and r.strip() for r in source.allowed_roots):
        src.fail(f"need a non-empty list of folder paths, got {list(source.allowed_roots)!r}", "allowed_roots")
    for key, value in (("path", source.path), *(("allowed_roots", r) for r in source.allowed_roots)):
        if problem := uri_problem(value):  # s3://CONN_ID@bucket/prefix/, file:///... (core.paths)
            src.fail(problem, key)

    tgt = top.sub("target")
    target = read_field(tgt, PipelineConfig, "target", key="column")
    task = read_field(tgt, PipelineConfig, "task", choices=TASKS)
    positive_class = read_field(tgt, PipelineConfig, "positive_class", kind=(str, int, bool))
    tgt.done()
    if positive_class is not None and task != "binary_classification":
        tgt.fail(f"only binary classification has a positive class; the task is {task!r}", "positive_class")

    features = []
    raw_features = top.get("features", list)
    if not raw_features:
        top.fail("at least one feature is required", "features")
    for i, item in enumerate(raw_features):
        fr = Reader(file, item, f"features[{i}]")
        feature = read_struct(fr, Feature, choices={"type": FEATURE_TYPES, "monotonic": MONOTONIC_DIRECTIONS})
        fr.done()
        if feature.monotonic is not None and feature.type != "numeric":
            fr.fail(
                f"{feature.name!r} is {feature.type}: only a numeric feature can rise, so only it can be monotonic; "
                "remove the key or make the feature numeric",
                "monotonic",
            )
        features.append(feature)
    names = [f.name for f in features]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        top.fail(f"duplicated feature name(s): {', '.join(dupes)}", "features")
    if target in names:
        top.fail(f"the target column {target!r} is also listed as a feature (target leakage)", "features")
    id_features = sorted(set(source.id_columns) & set(names))
    if id_features:
        top.fail(
            f"{', '.join(map(repr, id_features))} listed in source.id_columns: ids are kept for joins, never "
            "used as features; remove them from one list",
            "features",
        )
    if target in source.id_columns:
        src.fail(f"the target column {target!r} cannot be an id column", "id_columns")

    val = top.sub("validation")
    suite = read_field(val, PipelineConfig, "expectation_suite", key="suite")
    val.done()

    mdl = top.sub("model")
    model_name = read_field(mdl, PipelineConfig, "model_name", key="name")
    candidates = []
    raw_candidates = mdl.get("candidates", list)
    if not raw_candidates:
        mdl.fail("at least one candidate is required", "candidates")
    for i, item in enumerate(raw_candidates):
        cr = Reader(file, item, f"model.candidates[{i}]")
        cand = read_struct(cr, Candidate)
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
    metrics = read_struct(met, MetricsConfig, choices={"primary": allowed}, kinds={"others": list})
    for m in metrics.others:
        if m not in allowed:
            met.fail(f"{m!r} is not a metric for {task}; allowed: {', '.join(allowed)}", "others")
    met.done()

    split = split_config(top.sub("split", {}), source, known_columns=[*names, *source.id_columns])
    evaluation = evaluation_config(top.sub("evaluation", {}), allowed, features, task)
    deployment = deployment_config(top.sub("deployment", {}))
    monitoring = monitoring_config(top.sub("monitoring", {}), names)
    security = security_config(top.sub("security", {}))
    alerts = alerts_config(top.sub("alerts", {}), file)
    schedule = schedule_config(top.sub("schedule", {}))
    scoring = scoring_config(top.sub("scoring", {}))

    seed = read_field(top, PipelineConfig, "seed")
    description = read_field(top, PipelineConfig, "description")
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
        metrics=metrics,
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
