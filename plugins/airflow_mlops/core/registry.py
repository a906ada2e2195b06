"""MLflow model-registry protocol: register a challenger, read and write aliases.

Aliases, not stages (``champion``, ``challenger``, ``previous_champion``). MLflow has no
compare-and-swap: every ``create_model_version`` makes a new version and alias writes are
last-writer-wins. So: find before registering (a retried task reuses its version), alias only
READY versions, and read every alias back after writing it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import MlopsError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
#: The tag that, with the run id, identifies "the same registration" across task retries.
DIGEST_TAG = "data.digest"

_NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def register_challenger(
    client: MlflowClient,
    model_name: str,
    model_uri: str,
    run_id: str,
    *,
    tags: dict[str, str],
    alias: str = CHALLENGER,
    timeout_s: float = 120,
) -> dict:
    """Register `model_uri` (logged by `run_id`) as a version of `model_name` and point `alias` at it.

    Idempotent: a retry finds the version this run already registered for the same data digest
    (tag ``data.digest``; same MLflow run, or same Airflow DAG run and candidate) and reuses it. Returns {name, version, alias}.
    """
    tags = {k: str(v) for k, v in tags.items()}
    version = _find_registered(client, model_name, run_id, tags)
    if version is not None:
        log.info("%s: this run is already registered as version %s; reusing it", model_name, version.version)
    else:
        _ensure_registered_model(client, model_name)
        version = client.create_model_version(name=model_name, source=model_uri, run_id=run_id, tags=tags)
        log.info("%s: registered version %s from %s", model_name, version.version, model_uri)
    version = wait_until_ready(client, model_name, version.version, timeout_s=timeout_s)
    set_alias(client, model_name, alias, version.version)
    return {"name": model_name, "version": str(version.version), "alias": alias}


def get_alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version `alias` points at, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND_CODES:
            return None
        raise


def set_alias(client: MlflowClient, name: str, alias: str, version: str | int) -> None:
    """Point `alias` at `version` (READY only) and read it back."""
    current = client.get_model_version(name, str(version))
    if current.status != "READY":
        raise RuntimeError(f"{name} version {version} is {current.status}, not READY: alias {alias!r} not moved")
    client.set_registered_model_alias(name, alias, str(version))
    seen = get_alias_version(client, name, alias)
    if seen is None or str(seen.version) != str(version):
        got = None if seen is None else seen.version
        raise RuntimeError(
            f"{name}@{alias}: set to version {version} but reads back as {got}; another writer moved it. "
            f"Retry the task"
        )
    log.info("%s@%s -> version %s", name, alias, version)


def wait_until_ready(
    client: MlflowClient, name: str, version: str | int, *, timeout_s: float = 120, poll_s: float = 0.2
) -> ModelVersion:
    """Poll until the version is READY; fail clearly on FAILED_REGISTRATION or timeout."""
    deadline = time.monotonic() + timeout_s
    delay = poll_s
    while True:
        mv = client.get_model_version(name, str(version))
        if mv.status == "READY":
            return mv
        if mv.status == "FAILED_REGISTRATION":
            raise RuntimeError(
                f"{name} version {version} failed to register: {mv.status_message or 'no message'} "
                f"(source {mv.source})"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{name} version {version} still {mv.status} after {timeout_s:.0f} s; the registry may be "
                f"overloaded. A retry reuses this version"
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 5.0)


def _find_registered(client: MlflowClient, name: str, run_id: str, tags: dict[str, str]) -> ModelVersion | None:
    """A usable version of `name` this pipeline run already registered for the same data digest.

    Same MLflow run, or the same Airflow DAG run and candidate (a cleared and re-run training
    task logs a new MLflow run of the same, seeded, model): either way, reuse it.
    """
    digest = tags.get(DIGEST_TAG)
    same_airflow_run = ("airflow.dag_id", "airflow.run_id", "mlops.candidate")

    def same(mv: ModelVersion) -> bool:
        if mv.status == "FAILED_REGISTRATION" or mv.tags.get(DIGEST_TAG) != digest:
            return False
        if mv.run_id == run_id:
            return True
        return all(k in tags and mv.tags.get(k) == tags[k] for k in same_airflow_run)

    matches = [mv for mv in client.search_model_versions(f"name={_quote(name)}") if same(mv)]
    if not matches:
        return None
    return min(matches, key=lambda mv: int(mv.version))


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(name)
        except MlflowException as create_exc:
            if create_exc.error_code != "RESOURCE_ALREADY_EXISTS":  # created by a concurrent task
                raise


def _quote(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"name {value!r} contains both quote characters; MLflow filters cannot express it")


