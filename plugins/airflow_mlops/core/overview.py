"""What `airflow-mlops status` and the Models page show: one source for both.

`model_status` is the status table (one row per model, the champion's realized performance
included); `model_detail` is one model's page: its status row, its versions (newest first, a
page at a time), the evidence plots the gate and the monitors logged, and its ledger of alias
moves (newest first, a page at a time). Plain data (str, int, lists, dicts): the CLI prints it
as JSON, the web layer renders it as escaped text.

Both read a bounded number of model versions however many a model has (the aliased ones by alias, one
read per version, a page of versions by a search in MLflow, the newest decided version by a search for
its tag), and each thing they show once per request. What never changes is kept in the process: a
finished run's plot list, a ledger as parsed for its size (a ledger only grows), the pipeline configs
for their files' sizes and times. Registry state (aliases, tags) is read at every request.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import registry
from airflow_mlops.core.filters import quote_filter_value

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from mlflow import MlflowClient
    from mlflow.entities import Experiment

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


#: Plot lists of finished runs by (run id, folder): a finished run's evidence is written once.
_plots_cache: dict[tuple[str, str], list[dict]] = {}
_PLOTS_CACHE_SIZE = 512
#: The panels of finished evaluation runs' verdicts, by run id (a finished run's verdict.json never changes).
_panels_cache: dict[str, dict[str, dict]] = {}
#: Where the gate's evaluation run keeps its verdict (core/evaluation/evidence.py writes it).
VERDICT_ARTIFACT = "evaluation/verdict.json"
_cache_lock = threading.Lock()


def configs_or_none(folder: str | Path) -> list[PipelineConfig]:
    """The serving pipelines of the catalog of `folder` (core/catalog.py: variants and refused files left out), or
    none when the folder cannot be read (logged: the registry is still shown). Callers pass
    `settings.pipelines_folder()` (`[mlops] pipelines_folder`, an Airflow option: core does not read it)."""
    from airflow_mlops.core.catalog import read_catalog

    try:
        return read_catalog(folder).configs
    except Exception as exc:  # an unreadable folder hides the monitors' evidence, not the registry
        log.warning(
            "pipeline configs not read from %s (no realized performance or monitor plots shown): %s", folder, exc
        )
        return []


def config_for(model_name: str, configs: Sequence[PipelineConfig]) -> PipelineConfig | None:
    """The pipeline serving `model_name`, if any."""
    return next((c for c in configs if c.model_name == model_name), None)


def model_status(client: MlflowClient, *, configs: Sequence[PipelineConfig], days: int = 7) -> list[dict]:
    """`airflow-mlops status --json`: registry.status rows, each with `performance` (the champion's realized
    performance over its last `days` labelled days, None without checks) and `pipeline` (None if none of `configs`,
    the catalog's pipelines, serves it)."""
    rows = registry.status(client)
    for row in rows:
        config = config_for(row["name"], configs)
        _complete(client, row, days, config, _monitors(client, config) if row.get("champion") else None)
    return rows


def model_detail(
    client: MlflowClient,
    name: str,
    *,
    configs: Sequence[PipelineConfig],
    days: int = 7,
    versions_before: int | None = None,
    ledger_page: int = 1,
    page_size: int = PAGE_SIZE,
) -> dict:
    """One model's page: {status, versions, versions_before, versions_newer, versions_older, evidence, panels,
    ledger, ledger_total, ledger_page, page_size}. `panels`: the latest verdict's (verdict_panels).

    `versions`: `page_size` versions numbered below `versions_before` (default: the newest), newest first, read
    as one page in MLflow. `versions_older` / `versions_newer`: the `versions_before` of the next older page (None:
    none older) and of the next newer one (None: the newest page). Raises registry.UnknownModelError for a model
    that is not registered.

    Every version is read once per request: those read for the aliases and the page also give the triggers of the
    ledger moves shown. Nothing of the registry is kept between requests but the ledger runs' locations and the
    parsed ledger (re-read when its size changes; registry.recorded_moves).
    """
    by_alias = registry.alias_versions(client, name)
    listed = registry.newest_versions(client, name, limit=page_size + 1, before=versions_before)
    shown, older = listed[:page_size], listed[page_size:]
    top = shown if versions_before is None else registry.newest_versions(client, name, limit=1)
    latest = str(top[0].version) if top else None
    # pages are ranges of version numbers: the newer page ends page_size numbers higher (None: the newest page)
    newer = (
        None
        if versions_before is None or latest is None or versions_before + page_size > int(latest)
        else (versions_before + page_size)
    )
    if latest is None and not by_alias:
        registry.require_model(client, name)  # UnknownModelError, unless it has no version yet
    aliases = {alias: str(mv.version) for alias, mv in by_alias.items()}
    known = {str(mv.version): mv for mv in [*shown, *top, *by_alias.values()]}
    row = registry.status_row(client, name, aliases, known=known.values(), latest_version=latest)
    config = config_for(name, configs)
    monitors = _monitors(client, config)
    _complete(client, row, days, config, monitors)
    on_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        on_version.setdefault(version, []).append(alias)
    moves = registry.recorded_moves(client, name)  # newest first
    ledger = [dict(entry) for entry in _page(moves, ledger_page, page_size)]
    moved_in = {str(e.get("to")) for e in ledger if e.get("action") == "promote" and e.get("to") is not None}
    known.update(registry.versions_numbered(client, name, moved_in - set(known)))
    for entry in ledger:  # what started the run that made the version a promotion moved in
        mv = known.get(str(entry.get("to"))) if entry.get("action") == "promote" else None
        entry["trigger"] = (mv.tags or {}).get("mlops.trigger") if mv is not None else None
    return {
        "status": row,
        "versions": [_version(mv, on_version.get(str(mv.version), [])) for mv in shown],
        "versions_before": versions_before,
        "versions_newer": newer,
        "versions_older": int(shown[-1].version) if older else None,
        "evidence": evidence(client, row, monitors),
        "panels": verdict_panels(client, row.get("evaluation_run_id")),
        "ledger": ledger,
        "ledger_total": len(moves),
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


def evidence(client: MlflowClient, row: dict, monitors: Experiment | None) -> list[dict]:
    """The PNG plots behind the latest verdict and checks: the gate's (evaluated version), and the latest drift
    check's and performance check's in `monitors` (the pipeline's monitoring experiment, None: none).
    Each: {kind, title, run_id, experiment_id, path, at}."""
    out: list[dict] = []
    version, run_id = row.get("evaluated_version"), row.get("evaluation_run_id")
    if version and run_id:
        out += _plots(client, run_id, "evaluation", f"gate: version {version} ({row.get('decision') or '?'})")
    if monitors is not None:
        from airflow_mlops.core import monitoring

        for step, folder, limit in (("drift", "drift", MAX_DRIFT_PLOTS), ("performance", "performance", 2)):
            run = _latest_run(client, monitors, step, row["name"])
            if run is not None:
                tags = run.data.tags
                verdict = tags.get(monitoring.VERDICT_TAG) or tags.get("performance.verdict") or ""
                day = tags.get("performance.day") or (_ms_iso(run.info.start_time) or "")[:10]
                title = f"{step} check {day}"
                out += _plots(client, run.info.run_id, folder, f"{title} ({verdict})" if verdict else title)[:limit]
    return out


def verdict_panels(client: MlflowClient, run_id: str | None) -> dict[str, dict]:
    """The panels of an evaluation run's verdict ({name: PanelResult.to_dict()}, its verdict.json's "panels").

    {} when the verdict has none (an older one, or the panels off), when there is no run, or when it cannot be
    read (logged: the page is shown without them). Kept in the process once the run has finished."""
    if not run_id:
        return {}
    with _cache_lock:
        cached = _panels_cache.get(run_id)
    if cached is not None:
        return cached
    import json
    import tempfile
    from pathlib import Path

    try:
        finished = client.get_run(run_id).info.status == "FINISHED"
        with tempfile.TemporaryDirectory(prefix="mlops-verdict-") as tmp:
            verdict = json.loads(Path(client.download_artifacts(run_id, VERDICT_ARTIFACT, tmp)).read_text())
    except Exception as exc:  # no verdict.json (not the gate's run), or a store that is down
        log.info("no panels shown for evaluation run %s: %s", run_id, exc)
        if not _lacks_verdict(client, run_id):
            return {}
        verdict, finished = None, True  # a finished run without verdict.json will not get one: remember that
    panels = verdict.get("panels") if isinstance(verdict, dict) else None
    found = {str(k): v for k, v in panels.items() if isinstance(v, dict)} if isinstance(panels, dict) else {}
    if finished:
        with _cache_lock:
            if len(_panels_cache) >= _PLOTS_CACHE_SIZE:
                del _panels_cache[next(iter(_panels_cache))]
            _panels_cache[run_id] = found
    return found


def _lacks_verdict(client: MlflowClient, run_id: str) -> bool:
    """Whether a finished run holds no verdict.json (rather than a store that could not be read)."""
    try:
        if client.get_run(run_id).info.status != "FINISHED":
            return False
        folder = VERDICT_ARTIFACT.rsplit("/", 1)[0]
        return all(f.path != VERDICT_ARTIFACT for f in client.list_artifacts(run_id, folder))
    except Exception:
        return False


def _monitors(client: MlflowClient, config: PipelineConfig | None) -> Experiment | None:
    """The pipeline's monitoring experiment (drift and performance checks); None without a pipeline or checks."""
    if config is None:
        return None
    from airflow_mlops.core import monitoring

    return client.get_experiment_by_name(monitoring.monitoring_experiment(config))


def _complete(
    client: MlflowClient, row: dict, days: int, config: PipelineConfig | None, monitors: Experiment | None
) -> dict:
    row["pipeline"] = config.name if config is not None else None
    row["performance"] = _realized(client, row, days, config, monitors)
    return row


def _realized(
    client: MlflowClient, row: dict, days: int, config: PipelineConfig | None, monitors: Experiment | None
) -> dict | None:
    """The champion's realized performance (performance monitor); None without checks, or when reading them fails."""
    if not row.get("champion") or config is None or monitors is None:
        return None
    try:
        from airflow_mlops.core.performance.evidence import realized_summary

        return realized_summary(client, config, str(row["champion"]), days=days, experiment_id=monitors.experiment_id)
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
        "reasons": registry.json_list(tags.get(registry.DECISION_REASONS_TAG)),
        **{key: tags.get(tag) for key, tag in _VERSION_TAGS.items()},
    }


def _plots(client: MlflowClient, run_id: str, folder: str, title: str) -> list[dict]:
    with _cache_lock:
        plots = _plots_cache.get((run_id, folder))
    if plots is None:
        run = client.get_run(run_id)
        files = sorted(
            f.path for f in client.list_artifacts(run_id, folder) if not f.is_dir and f.path.endswith(".png")
        )
        plots = [
            {"kind": folder, "run_id": run_id, "experiment_id": run.info.experiment_id, "path": path,
             "at": _ms_iso(run.info.start_time)}
            for path in files
        ]  # fmt: skip
        if run.info.status == "FINISHED":
            with _cache_lock:
                if len(_plots_cache) >= _PLOTS_CACHE_SIZE:
                    del _plots_cache[next(iter(_plots_cache))]
                _plots_cache[(run_id, folder)] = plots
    return [{**plot, "title": title} for plot in plots]


def _latest_run(client: MlflowClient, experiment: Experiment, step: str, model: str) -> Any:
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
    return items[start : start + size]


def _ms_iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
