"""What `airflow-mlops status` and the Models page show: one source for both.

`model_status` is the status table (one row per model, the champion's realized performance
included); `model_detail` is one model's page: its status row, its versions (newest first, a
page at a time), the evidence plots the gate and the monitors logged, and its ledger of alias
moves (newest first, a page at a time). Plain data (str, int, lists, dicts): the CLI prints it
as JSON, the web layer renders it as escaped text.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import registry
from airflow_mlops.core.filters import quote_filter_value

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)

#: Rows per page of the version list and of the ledger.
PAGE_SIZE = 25
#: At most this many drift plots are shown per check (one per feature; the report in MLflow has them all).
MAX_DRIFT_PLOTS = 6
#: The version tags shown with each version.
_VERSION_TAGS = {
    "decision": registry.DECISION_TAG, "decided_at": registry.DECISION_AT_TAG, "data_digest": registry.DIGEST_TAG,
    "trigger": "mlops.trigger", "dag_id": "airflow.dag_id", "dag_run_id": "airflow.run_id",
    "evaluation_run_id": "evaluation.run_id", "candidate": "mlops.candidate",
}  # fmt: skip


def serving_configs() -> list[PipelineConfig]:
    """The pipelines of include/pipelines/ (variants left out): each names the model it serves."""
    from airflow_mlops.core.config import pipeline_configs

    return [c for c in pipeline_configs() if not c.variant_of]


def _configs_or_none() -> list[PipelineConfig]:
    try:
        return serving_configs()
    except Exception as exc:  # a broken YAML hides the monitors' evidence, not the registry
        log.warning("pipeline configs not read (no realized performance or monitor plots shown): %s", exc)
        return []


def config_for(model_name: str, configs: Sequence[PipelineConfig]) -> PipelineConfig | None:
    """The pipeline serving `model_name`, if any."""
    return next((c for c in configs if c.model_name == model_name), None)


def model_status(client: MlflowClient, *, days: int = 7, configs: Sequence[PipelineConfig] | None = None) -> list[dict]:
    """`airflow-mlops status --json`: registry.status rows, each with `performance` (the champion's realized
    performance over its last `days` labelled days, None without checks) and `pipeline` (None if none serves it)."""
    rows = registry.status(client)
    if configs is None:
        configs = _configs_or_none() if rows else []
    for row in rows:
        _complete(client, row, days, configs)
    return rows


def model_detail(
    client: MlflowClient,
    name: str,
    *,
    days: int = 7,
    configs: Sequence[PipelineConfig] | None = None,
    versions_page: int = 1,
    ledger_page: int = 1,
    page_size: int = PAGE_SIZE,
) -> dict:
    """One model's page: {status, versions, versions_total, evidence, ledger, ledger_total, pages}.

    Raises registry.UnknownModelError for a model that is not registered.
    """
    try:
        rm = client.get_registered_model(name)
    except Exception as exc:
        if getattr(exc, "error_code", None) in registry._NOT_FOUND_CODES:
            raise registry.UnknownModelError(f"no registered model named {name!r}") from exc
        raise
    configs = _configs_or_none() if configs is None else configs
    all_versions = registry.model_versions(client, rm.name)
    row = _complete(client, registry.status_row(client, rm, all_versions), days, configs)
    aliases: dict[str, list[str]] = {}
    for alias, version in (getattr(rm, "aliases", None) or {}).items():
        aliases.setdefault(str(version), []).append(str(alias))
    all_versions.sort(key=lambda mv: int(mv.version), reverse=True)
    shown = _page(all_versions, versions_page, page_size)
    triggers = {str(mv.version): (mv.tags or {}).get("mlops.trigger") for mv in all_versions}
    ledger = sorted(registry.history(client, rm.name), key=lambda e: str(e.get("at")), reverse=True)  # newest first
    for entry in ledger:  # what started the run that made the version a promotion moved in
        entry["trigger"] = triggers.get(str(entry.get("to"))) if entry.get("action") == "promote" else None
    return {
        "status": row,
        "versions": [_version(mv, aliases.get(str(mv.version), [])) for mv in shown],
        "versions_total": len(all_versions),
        "versions_page": versions_page,
        "evidence": evidence(client, row, config_for(rm.name, configs)),
        "ledger": _page(ledger, ledger_page, page_size),
        "ledger_total": len(ledger),
        "ledger_page": ledger_page,
        "page_size": page_size,
    }


def versions_of_dag_run(client: MlflowClient, dag_id: str, run_id: str) -> list[dict]:
    """The model versions an Airflow DAG run registered (version tags airflow.dag_id / airflow.run_id)."""
    found = client.search_model_versions(
        f"tags.`airflow.dag_id` = {quote_filter_value(dag_id)} and tags.`airflow.run_id` = {quote_filter_value(run_id)}"
    )
    out = [{"name": mv.name, **_version(mv, [])} for mv in found]
    return sorted(out, key=lambda v: (v["name"], -int(v["version"])))


def evidence(client: MlflowClient, row: dict, config: PipelineConfig | None) -> list[dict]:
    """The PNG plots behind the latest verdict and checks: the gate's (evaluated version), the latest drift check's
    and the latest performance check's. Each: {kind, title, run_id, experiment_id, path, at}."""
    out: list[dict] = []
    version = row.get("evaluated_version")
    if version:
        run_id = client.get_model_version(row["name"], version).tags.get("evaluation.run_id")
        if run_id:
            out += _plots(client, run_id, "evaluation", f"gate: version {version} ({row.get('decision') or '?'})")
    if config is not None:
        from airflow_mlops.core import monitoring

        experiment = client.get_experiment_by_name(monitoring.monitoring_experiment(config))
        for step, folder, limit in (("drift", "drift", MAX_DRIFT_PLOTS), ("performance", "performance", 2)):
            run = _latest_run(client, experiment, step, row["name"])
            if run is not None:
                tags = run.data.tags
                verdict = tags.get(monitoring.VERDICT_TAG) or tags.get("performance.verdict") or ""
                day = tags.get("performance.day") or (_ms_iso(run.info.start_time) or "")[:10]
                title = f"{step} check {day}"
                out += _plots(client, run.info.run_id, folder, f"{title} ({verdict})" if verdict else title)[:limit]
    return out


def _complete(client: MlflowClient, row: dict, days: int, configs: Sequence[PipelineConfig]) -> dict:
    config = config_for(row["name"], configs)
    row["pipeline"] = config.name if config is not None else None
    row["performance"] = _realized(client, row, days, config)
    return row


def _realized(client: MlflowClient, row: dict, days: int, config: PipelineConfig | None) -> dict | None:
    """The champion's realized performance (performance monitor); None without checks, or when reading them fails."""
    if not row.get("champion") or config is None:
        return None
    try:
        from airflow_mlops.core.performance.evidence import realized_summary

        return realized_summary(client, config, str(row["champion"]), days=days)
    except Exception as exc:  # status must work whatever the monitoring history holds
        log.warning("realized performance of %s not shown: %s", row["name"], exc)
        return None


def _version(mv: Any, aliases: list[str]) -> dict:
    tags = mv.tags or {}
    return {
        "version": str(mv.version),
        "aliases": sorted(aliases),
        "status": str(mv.status),
        "created_at": _ms_iso(mv.creation_timestamp),
        "run_id": mv.run_id,
        "reasons": registry._json_list(tags.get(registry.DECISION_REASONS_TAG)),
        **{key: tags.get(tag) for key, tag in _VERSION_TAGS.items()},
    }


def _plots(client: MlflowClient, run_id: str, folder: str, title: str) -> list[dict]:
    run = client.get_run(run_id)
    files = sorted(f.path for f in client.list_artifacts(run_id, folder) if not f.is_dir and f.path.endswith(".png"))
    return [
        {"kind": folder, "title": title, "run_id": run_id, "experiment_id": run.info.experiment_id, "path": path,
         "at": _ms_iso(run.info.start_time)}
        for path in files
    ]  # fmt: skip


def _latest_run(client: MlflowClient, experiment: Any, step: str, model: str) -> Any:
    if experiment is None:
        return None
    from airflow_mlops.core import monitoring

    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{monitoring.STEP_TAG}` = {quote_filter_value(step)} and "
        f"tags.`{monitoring.MODEL_TAG}` = {quote_filter_value(model)} and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _page(items: list, page: int, size: int) -> list:
    start = (max(page, 1) - 1) * size
    return items[start:start + size]


def _ms_iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
