"""Drift monitoring: the champion's reference data, the current window, debounce, evidence in MLflow.

The monitor compares the last ``monitoring.window_days`` days with the champion's *own* training
snapshot, found through the champion version's MLflow run (the dataset input logged with
``mlflow.log_input``: its source is the snapshot URI; the ``data.digest`` tag is its version).
No copy of the reference is kept. Every check is one MLflow run in ``<pipeline>-monitoring``;
those runs are also the memory the debounce reads (drift in N of the last M checks, then a
cool-down before the next retrain request).

Light at import (pandas and mlflow are imported inside the functions that need them): the
sensor calls ``window_available`` on every poke.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from airflow_mlops.core.errors import MlopsError
from airflow_mlops.core.filters import quote_filter_value

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.payloads import SnapshotSummary

log = logging.getLogger(__name__)

#: Tag values of a drift-check run (the debounce reads them back).
STEP = "drift"
STEP_TAG = "mlops.step"
VERDICT_TAG = "drift.verdict"
REQUESTED_TAG = "retrain.requested"
REASON_TAG = "retrain.reason"
MODEL_TAG = "mlops.model"
CHECKED_AT_TAG = "drift.checked_at"
REFERENCE_VERSION_TAG = "reference.version"
REFERENCE_DIGEST_TAG = "reference.digest"
DIGEST_TAG = "data.digest"


class ChampionReferenceError(MlopsError):
    """The champion's training snapshot cannot be located or read (names the version, run and URI)."""


def monitoring_experiment(config: PipelineConfig) -> str:
    """The MLflow experiment holding one run per drift check (and performance check) of this pipeline."""
    return f"{config.name}-monitoring"


# --------------------------------------------------------------------------- reference


def champion_reference(client: MlflowClient, model_name: str) -> dict | None:
    """The champion's own training snapshot: {uri, digest, version, run_id}; None without a champion.

    Found through the champion version's run: its training dataset input (source = snapshot URI)
    and the ``data.digest`` tag of the version (else of the run).
    """
    from mlflow.exceptions import MlflowException

    from airflow_mlops.core.registry import CHAMPION, get_alias_version

    version = get_alias_version(client, model_name, CHAMPION)
    if version is None:
        return None
    where = f"{model_name}@{CHAMPION} (version {version.version}, run {version.run_id})"
    if not version.run_id:
        raise ChampionReferenceError(
            f"{where}: the version has no MLflow run, so its training data is unknown; "
            f"retrain the model with the pipeline so the run records its snapshot"
        )
    try:
        run = client.get_run(version.run_id)
    except MlflowException as exc:
        raise ChampionReferenceError(f"{where}: its training run cannot be read ({exc}); was it deleted?") from None
    digest = (version.tags or {}).get(DIGEST_TAG) or run.data.tags.get(DIGEST_TAG)
    uri = training_input_uri(run)
    if not uri:
        raise ChampionReferenceError(
            f"{where}: the training run logged no dataset input with a source URI (mlflow.log_input); "
            f"the reference snapshot cannot be found. Retrain the model with the pipeline"
        )
    if not digest:
        raise ChampionReferenceError(f"{where}: neither the version nor its run has a {DIGEST_TAG!r} tag")
    path = local_path(uri)
    if path is not None and path.suffix == ".parquet" and ":" in digest and path.stem != digest.split(":", 1)[1]:
        raise ChampionReferenceError(
            f"{where}: the logged snapshot {uri} is not the snapshot of digest {digest} (file names are digests)"
        )
    if path is not None and not path.is_file():
        raise ChampionReferenceError(
            f"{where}: its training snapshot {path} is gone; snapshots must be kept while a version trained "
            f"on them is champion (restore the file, or retrain to make a new champion)"
        )
    return {"uri": uri, "digest": digest, "version": str(version.version), "run_id": version.run_id}


def training_input_uri(run: Any) -> str | None:
    """The source URI of the run's training dataset input (else of its only dataset input)."""
    inputs = list(getattr(getattr(run, "inputs", None), "dataset_inputs", None) or [])

    def context(di: Any) -> str | None:
        return next((t.value for t in di.tags or [] if t.key == "mlflow.data.context"), None)

    chosen = [di for di in inputs if context(di) == "training"] or (inputs if len(inputs) == 1 else [])
    for di in chosen:
        uri = _source_uri(di.dataset.source)
        if uri:
            return uri
    return None


def _source_uri(source: str | None) -> str | None:
    if not source:
        return None
    try:
        data = json.loads(source)
    except ValueError:
        return source
    if isinstance(data, dict):
        for key in ("uri", "url", "path"):
            if data.get(key):
                return str(data[key])
        return None
    return str(data)


def local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri)
    return None


def champion_scores(
    client: MlflowClient, config: PipelineConfig, reference: dict, frames: list[pd.DataFrame]
) -> list[Any]:
    """The champion's scores (positive-class probability, else predictions) on each frame, for prediction drift.

    The model is loaded like the smoke test does (skops, this package's trusted types only).
    """
    from airflow_mlops.core import labels, tracking, training

    tracking.configure(client)
    model = training.load_model(
        f"models:/{config.model_name}/{reference['version']}", allow_pickle=config.security.allow_pickle_models
    )
    scores = []
    classes = list(getattr(model, "classes_", []))
    positive = labels.positive_class(config, classes)
    for frame in frames:
        x = frame[config.feature_names]
        if config.task == "binary_classification" and hasattr(model, "predict_proba"):
            scores.append(model.predict_proba(x)[:, labels.positive_index(classes, positive)])
        else:
            scores.append(model.predict(x))
    return scores


# --------------------------------------------------------------------------- current window


def monitoring_config(config: PipelineConfig) -> PipelineConfig:
    """The pipeline config with its source window set to the monitoring window."""
    source = config.source._replace(window_days=config.monitoring.window_days)
    return config._replace(source=source)


def snapshot_window(
    config: PipelineConfig,
    as_of: dt.date,
    *,
    source: str | None = None,
    allowed_roots: list[Path] | None = None,
) -> SnapshotSummary:
    """Snapshot the monitoring window (``monitoring.window_days`` days up to ``as_of``) immutably.

    Same as the training snapshot (``data.take_snapshot``), with the monitoring window and the same
    confinement (``allowed_roots``, default ``paths.source_roots(config)``); returns its dict.
    """
    from airflow_mlops.core.data import take_snapshot

    return take_snapshot(monitoring_config(config), source=source, window_end=as_of, allowed_roots=allowed_roots)


def current_window(config: PipelineConfig, as_of: dt.date, *, source: str | None = None) -> pd.DataFrame:
    """The last ``monitoring.window_days`` days up to ``as_of``, read (and snapshotted) like training data."""
    from airflow_mlops.core.data import read_snapshot

    return read_snapshot(snapshot_window(config, as_of, source=source)["uri"])


def window_pattern(
    config: PipelineConfig, as_of: dt.date, *, source: str | None = None, allowed_roots: list[Path] | None = None
) -> str:
    """What must exist for the window ending ``as_of``: the day's file in a folder, or the single file.

    A folder of daily files (``*_YYYY-MM-DD.csv``) -> a glob for the ``as_of`` day; a file -> the file.
    A source outside the allowed folders (default ``paths.source_roots(config)``) is refused: nobody
    waits for, or probes, a path the snapshot would refuse.
    """
    from airflow_mlops.core.paths import resolve_source, source_roots

    path = config.resolve(source or config.source.path)
    resolve_source(path, allowed_roots or source_roots(config))
    if path.is_dir() or (not path.exists() and not path.suffix):
        return str(path / f"*_{as_of.isoformat()}.{config.source.format}")
    return str(path)


def window_available(
    config: PipelineConfig, as_of: dt.date, source: str | None = None, allowed_roots: list[Path] | None = None
) -> bool:
    """Cheap: does a non-empty file for the window's last day exist? (No file is read.)"""
    import glob

    for match in glob.glob(window_pattern(config, as_of, source=source, allowed_roots=allowed_roots)):
        p = Path(match)
        try:
            if p.is_file() and p.stat().st_size > 0:
                return True
        except OSError:
            continue
    return False


# --------------------------------------------------------------------------- debounce


def should_request_retrain(
    history: list[dict],
    *,
    now: dt.datetime,
    confirm_checks: int,
    of_last_checks: int,
    cooldown_hours: float,
    last_requested_at: dt.datetime | str | None = None,
    what: str = "drift",
    unit: str = "check",
) -> tuple[bool, str]:
    """Debounce and cool-down: ask for a retrain only when drift is confirmed and none was asked recently.

    ``history``: checks ``{at, drift, requested}``, oldest first, the check being decided LAST
    (its ``requested`` is ignored). Request when the current check drifts, at least
    ``confirm_checks`` of the last ``of_last_checks`` checks drifted, and no earlier check
    requested a retrain within ``cooldown_hours`` before ``now``. Returns (request?, reason).

    Other monitors reuse it: ``drift`` is then "this check found the problem" (e.g. performance decay),
    named ``what`` in the reason, counted in ``unit``s (e.g. "labelled day"). ``last_requested_at``: a
    request not in ``history`` (e.g. made by an earlier check of the same day) that the cool-down counts too.
    """
    if confirm_checks < 1 or of_last_checks < confirm_checks:
        raise ValueError(f"need 1 <= confirm_checks <= of_last_checks, got {confirm_checks} of {of_last_checks}")
    if not history:
        return False, f"no {unit} to decide on"
    current = history[-1]
    if not current.get("drift"):
        return False, f"no {what} in this {unit}"
    recent = history[-of_last_checks:]
    drifted = sum(1 for h in recent if h.get("drift"))
    if drifted < confirm_checks:
        return False, (
            f"{what} in {drifted} of the last {len(recent)} {unit}(s); {confirm_checks} of {of_last_checks} "
            f"are needed before a retrain is requested"
        )
    now = aware_utc(now)
    cooldown = dt.timedelta(hours=cooldown_hours)
    last = next((aware_utc(_as_datetime(p["at"])) for p in reversed(history[:-1]) if p.get("requested")), None)
    if last_requested_at is not None:
        other = aware_utc(_as_datetime(last_requested_at))
        last = other if last is None else max(last, other)
    if last is not None and now - last < cooldown:
        return False, (
            f"{what} confirmed ({drifted} of the last {len(recent)} {unit}s), but a retrain was already "
            f"requested at {last.isoformat(timespec='seconds')}; cool-down of {cooldown_hours:g} h "
            f"until {(last + cooldown).isoformat(timespec='seconds')}"
        )
    return True, (
        f"{what} in {drifted} of the last {len(recent)} {unit}s ({confirm_checks} of {of_last_checks} needed) "
        f"and no retrain requested in the last {cooldown_hours:g} h"
    )


def check_history(
    client: MlflowClient,
    experiment: str,
    model_name: str,
    limit: int,
    *,
    reference_version: str | None = None,
    step: str = STEP,
    verdict_tag: str = VERDICT_TAG,
    hit_verdict: str = "drift",
    reference_tag: str = REFERENCE_VERSION_TAG,
    checked_at_tag: str = CHECKED_AT_TAG,
    once_per_tag: str | None = None,
    extra_filters: tuple[str, ...] = (),
) -> list[dict]:
    """The last `limit` finished drift checks of `model_name`, oldest first: {at, drift, requested, run_id, ...}.

    With ``reference_version``, only checks against that champion version count (a new champion
    starts a fresh history). A DAG run that logged several checks (retried task) counts once (its latest).

    Other monitors read their own checks with the same rules: runs tagged ``mlops.step=<step>``, the
    finding in ``verdict_tag`` (``drift`` is True when it equals ``hit_verdict``), the version in
    ``reference_tag``. ``once_per_tag``: runs sharing that tag's value (e.g. the day checked) count once,
    as the latest, with ``requested`` / ``requested_at`` kept from any of them that asked for a retrain
    (so re-checking a day cannot dodge the cool-down). ``extra_filters``: more MLflow filter clauses.
    """
    exp = client.get_experiment_by_name(experiment)
    if exp is None or limit <= 0:
        return []
    filters = [
        f"tags.`{STEP_TAG}` = {quote_filter_value(step)}",
        f"tags.`{MODEL_TAG}` = {quote_filter_value(model_name)}",
        "attributes.status = 'FINISHED'",
        *extra_filters,
    ]
    if reference_version is not None:
        filters.append(f"tags.`{reference_tag}` = {quote_filter_value(str(reference_version))}")
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=" and ".join(filters),
        order_by=["attributes.start_time DESC"],
        max_results=max(limit * 3, 10),
    )
    out: list[dict] = []
    seen_airflow_runs: set[tuple[str, str]] = set()
    kept: dict[str, dict] = {}
    for run in runs:
        tags = run.data.tags
        key = (tags.get("airflow.dag_id", ""), tags.get("airflow.run_id", ""))
        if all(key):
            if key in seen_airflow_runs:
                continue
            seen_airflow_runs.add(key)
        at_text = tags.get(checked_at_tag)
        at = _as_datetime(at_text) if at_text else dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC)
        requested = tags.get(REQUESTED_TAG) == "true"
        once = tags.get(once_per_tag) if once_per_tag else None
        if once is not None and once in kept:  # an earlier check of the same day (we keep the latest)
            entry = kept[once]
            if requested and not entry["requested"]:
                entry["requested"], entry["requested_at"] = True, at
            continue
        entry = {
            "at": at,
            "drift": tags.get(verdict_tag) == hit_verdict,
            "requested": requested,
            "requested_at": at if requested else None,
            "run_id": run.info.run_id,
            "airflow_run_id": tags.get("airflow.run_id"),
            "reference_version": tags.get(reference_tag),
        }
        if once_per_tag:
            entry[once_per_tag] = once
        if once is not None:
            kept[once] = entry
        if len(out) < limit:
            out.append(entry)
        elif once is None:
            break
    return list(reversed(out))


# --------------------------------------------------------------------------- evidence


# --------------------------------------------------------------------------- helpers


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def aware_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
