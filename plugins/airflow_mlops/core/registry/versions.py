"""Model versions and aliases: register a challenger, read and write aliases, find versions.

MLflow has no compare-and-swap: every ``create_model_version`` makes a new version and alias writes are
last-writer-wins. So: find before registering (a retried task reuses its version), alias only READY
versions, and read every alias back after writing it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_mlops.core.filters import quote_filter_value
from airflow_mlops.core.registry.errors import UnknownModelError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)
T = TypeVar("T")

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"

#: The tag that, with the run id, identifies "the same registration" across task retries.
DIGEST_TAG = "data.digest"
#: Version tag: the last day of the training data window (YYYY-MM-DD); a backfill never replaces a newer champion.
WINDOW_END_TAG = "data.window_end"
#: The aliases a promotion, restore or rollback moves, in write order.
MOVED_ALIASES = (CHAMPION, PREVIOUS_CHAMPION)
#: MLflow error codes of a read of something that does not exist.
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


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
        from mlflow.store.artifact.utils.models import _parse_model_id_if_present

        # A tracking server needs the logged model's id with a `models:/<model_id>` source.
        version = client.create_model_version(
            name=model_name, source=model_uri, run_id=run_id, tags=tags, model_id=_parse_model_id_if_present(model_uri)
        )
        log.info("%s: registered version %s from %s", model_name, version.version, model_uri)
    version = wait_until_ready(client, model_name, version.version, timeout_s=timeout_s)
    set_alias(client, model_name, alias, version.version)
    return {"name": model_name, "version": str(version.version), "alias": alias}


def get_alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version `alias` points at, or None when the model or the alias does not exist."""
    return unless_missing(client.get_model_version_by_alias, name, alias)


def unless_missing(read: Callable[..., T], *args: Any) -> T | None:
    """`read(*args)`, or None when MLflow says what it reads does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return read(*args)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND_CODES:
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
            f"{name}@{alias}: set to version {version} but reads back as {got}; another writer moved it. Retry the task"
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
                f"{name} version {version} failed to register: {mv.status_message or 'no message'} (source {mv.source})"
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

    matches = [mv for mv in client.search_model_versions(f"name={quote_filter_value(name)}") if same(mv)]
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


def read_aliases(client: MlflowClient, name: str) -> dict[str, str | None]:
    """{champion, previous_champion} -> version (a string) or None."""
    out: dict[str, str | None] = {}
    for alias in MOVED_ALIASES:
        mv = get_alias_version(client, name, alias)
        out[alias] = None if mv is None else str(mv.version)
    return out


def alias_versions(
    client: MlflowClient, name: str, aliases: Iterable[str] = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)
) -> dict[str, ModelVersion]:
    """{alias: the version it points at, with its tags} for those of `aliases` that are set: one read per version,
    as a version read by alias lists every alias it carries (a champion that is also the challenger: one read)."""
    wanted = list(aliases)
    found: dict[str, ModelVersion] = {}
    for alias in wanted:
        if alias not in found and (mv := get_alias_version(client, name, alias)) is not None:
            found.update({a: mv for a in [alias, *(mv.aliases or [])] if a in wanted})
    return found


def newest_versions(client: MlflowClient, name: str, *, limit: int, before: int | None = None) -> list[ModelVersion]:
    """Up to `limit` versions of `name` with their tags, newest first: those numbered below `before` (a page of the
    version list, read in MLflow, not in Python)."""
    where = f"name = {quote_filter_value(name)}"
    if before is not None:
        where += f" and version_number < {int(before)}"
    return list(client.search_model_versions(where, max_results=limit, order_by=["version_number DESC"]))


def versions_numbered(client: MlflowClient, name: str, numbers: Iterable[str]) -> dict[str, ModelVersion]:
    """{number: version} of those `numbers` of `name` that exist: one search over their range when it is short,
    else one read each."""
    wanted = sorted({int(n) for n in numbers if str(n).isdigit()})
    if not wanted:
        return {}
    low, high = wanted[0], wanted[-1]
    if high - low < 4 * len(wanted) + 25:
        found = client.search_model_versions(
            f"name = {quote_filter_value(name)} and version_number >= {low} and version_number <= {high}",
            max_results=high - low + 1,
            order_by=["version_number DESC"],
        )
        return {str(mv.version): mv for mv in found if int(mv.version) in wanted}
    out = {str(n): unless_missing(client.get_model_version, name, str(n)) for n in wanted}
    return {n: mv for n, mv in out.items() if mv is not None}


def require_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND_CODES:
            raise
        known = [rm.name for rm in registered_models(client, limit=20)]
        raise UnknownModelError(
            f"no registered model named {name!r}; known models: {', '.join(known) or 'none yet'}"
        ) from None


def registered_models(client: MlflowClient, limit: int | None = None) -> list[Any]:
    out: list[Any] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=100, page_token=token)
        out.extend(page)
        token = page.token
        if not token or (limit is not None and len(out) >= limit):
            return out[:limit] if limit is not None else out


def put_alias(client: MlflowClient, name: str, alias: str, version: str | None) -> None:
    from mlflow.exceptions import MlflowException

    if version is not None:
        client.set_registered_model_alias(name, alias, version)
        return
    try:
        client.delete_registered_model_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND_CODES:
            raise


def undo(client: MlflowClient, name: str, before: dict[str, str | None], aliases: list[str]) -> tuple[bool, str]:
    """Put `aliases` back to `before` (best effort): (False when they are back as before, a sentence saying how it went).

    The flag is "still half-moved", as `Lock.moving` wants it.
    """
    failures = []
    for alias in reversed(aliases):
        try:
            put_alias(client, name, alias, before[alias])
        except Exception as exc:  # keep undoing the others
            failures.append(f"{alias} ({type(exc).__name__}: {exc})")
    try:
        seen = read_aliases(client, name)
    except Exception as exc:
        return True, f"undo attempted, but the aliases cannot be read back ({type(exc).__name__}: {exc})"
    if not failures and all(seen[a] == before[a] for a in aliases):
        return False, f"the aliases were put back as before ({aliases_text(seen)})"
    log.error("%s: undo incomplete: now %s, wanted %s", name, aliases_text(seen), aliases_text(before))
    return True, (
        f"UNDO INCOMPLETE: aliases are now {aliases_text(seen)}, were {aliases_text(before)}"
        + (f"; failed: {', '.join(failures)}" if failures else "")
        + f". Fix by hand with `airflow-mlops rollback {name} --to VERSION`"
    )


def aliases_text(aliases: dict[str, str | None]) -> str:
    return ", ".join(f"{a}={'unset' if v is None else v}" for a, v in aliases.items())
