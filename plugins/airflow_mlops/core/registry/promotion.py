"""MLflow model-registry protocol: register a challenger, read and write aliases.

Aliases, not stages (``champion``, ``challenger``, ``previous_champion``). MLflow has no
compare-and-swap: every ``create_model_version`` makes a new version and alias writes are
last-writer-wins. So: find before registering (a retried task reuses its version), alias only
READY versions, and read every alias back after writing it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_mlops.core.errors import MlopsError
from airflow_mlops.core.filters import quote_filter_value

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from mlflow import MlflowClient
    from mlflow.entities import Run
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
    return _unless_missing(client.get_model_version_by_alias, name, alias)


def _unless_missing(read: Callable[..., T], *args: Any) -> T | None:
    """`read(*args)`, or None when MLflow says what it reads does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return read(*args)
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






# --------------------------------------------------------------------------- promotion
#
# `champion` and `previous_champion` move together, checked and recorded:
#   compare-and-swap  the current champion is re-read under the lock and must be the one the decision (a
#                     promotion, or a rollback given `expected_champion`) was made against (MLflow alias
#                     writes are last-writer-wins; the check is ours);
#   read back         after writing, both aliases are read back and compared;
#   undo              a write that fails half-way is undone (best effort) before raising;
#   ledger            every move is recorded as version tags and in a `champion_history.json`
#                     artifact of a run dedicated to the model (see `history`);
#   lock              one writer at a time per model, across processes: parameter `lock.<n>` of the
#                     ledger run (MLflow never changes a logged parameter, so claiming it is an
#                     atomic test-and-set). The move is announced first (`intent.<n>`): if the
#                     writer dies half-way, whoever takes its lock over records a move that was
#                     made, or undoes a half-made one, before moving anything itself.

#: The aliases a promotion, restore or rollback moves, in write order.
MOVED_ALIASES = (CHAMPION, PREVIOUS_CHAMPION)
#: The experiment holding one ledger run per registered model.
LEDGER_EXPERIMENT = "airflow-mlops-ledger"
#: The ledger artifact (a JSON list of moves, oldest first) in the model's ledger run.
LEDGER_ARTIFACT = "champion_history.json"
#: Registered-model tag: the id of the model's ledger run.
LEDGER_RUN_TAG = "champion_history.run_id"
#: Run tag that marks a ledger run and names its model (used when the model tag is missing).
LEDGER_MODEL_TAG = "mlops.ledger.model"
#: Version tags written by the evaluation step (read by `status`).
DECISION_TAG = "decision"
DECISION_REASONS_TAG = "decision.reasons"
DECISION_AT_TAG = "decision.at"
_MAX_TAG_VALUE = 5000
#: Seconds a writer waits for another one to release the model's promotion lock.
LOCK_WAIT_S = 60.0
#: A lock held this long is taken to be held by a dead writer and is taken over (an Airflow task's own retry
#: takes its lock over at once: Airflow never runs two tries of a task at the same time).
LOCK_STALE_S = 600.0
_LOCK_POLL_S = 0.2


class PromotionError(MlopsError):
    """An alias move was refused (unknown model or version, not READY, nothing to roll back to): nothing changed."""


class UnknownModelError(PromotionError):
    """The registered model or the model version does not exist."""


class ChampionMovedError(PromotionError):
    """The champion is not the one the caller expected (someone else moved it): nothing changed.

    `expected` and `found` are the champion versions (None: no champion) the caller expected and the lock found.
    """

    def __init__(self, message: str, *, expected: str | None = None, found: str | None = None) -> None:
        super().__init__(message)
        self.expected, self.found = expected, found


class AliasWriteError(RuntimeError):
    """Writing an alias failed or read back wrong; what was written was undone (best effort).

    Not an MlopsError on purpose: it is usually transient (registry down), so a retry may succeed.
    """


class PromotionInProgressError(RuntimeError):
    """Another writer holds the model's promotion lock: nothing was changed; retry later (transient)."""


@dataclass
class _Lock:
    run_id: str  # the ledger run holding the lock parameters
    index: int
    moving: bool = False  # an announced move is not finished nor undone: keep the lock for whoever recovers it


def promote(
    client: MlflowClient,
    name: str,
    version: str | int,
    *,
    expected_champion: str | int | None,
    actor: dict[str, str],
    reason: str,
) -> dict:
    """Make `version` the champion and the old champion `previous_champion`, if the champion is still `expected_champion`.

    Returns {name, champion, previous_champion, moved_at, before}; `before` holds both aliases as
    they were and is what `restore` needs. A retry of a promotion that already happened returns
    its result again (``already_done: True``) without moving anything.
    """
    version = str(version)
    expected = _version_or_none(expected_champion)
    _require_model(client, name)
    with _promotion_lock(client, name, actor) as lock:
        before = read_aliases(client, name)
        current = before[CHAMPION]
        if current != expected:
            done = _already_promoted(client, name, version, expected, current)
            if done is not None:
                return done
            raise ChampionMovedError(
                f"{name}: the champion is now {_describe_holder(client, name, current)}, but this promotion of "
                f"version {version} was decided against {_version_text(expected)}; another writer moved it in "
                f"between. Nothing was changed: evaluate version {version} against the current champion again",
                expected=expected, found=current,
            )
        if current == version:
            raise PromotionError(f"{name}: version {version} is already the champion; nothing to promote")
        _require_ready(client, name, version, "promote")
        after = {CHAMPION: version, PREVIOUS_CHAMPION: current if current is not None else before[PREVIOUS_CHAMPION]}
        moved_at = _now()
        _move_and_record(client, name, before, after, actor=actor, reason=reason, action="promote", at=moved_at,
                         lock=lock)
    log.info("%s: promoted version %s to champion (was %s)", name, version, _version_text(current))
    return {"name": name, "champion": version, "previous_champion": current, "moved_at": moved_at, "before": before}


def restore(client: MlflowClient, name: str, promotion: dict, *, actor: dict[str, str], reason: str) -> dict:
    """Put `champion` and `previous_champion` back as they were before `promotion` (a `promote`/`rollback` result).

    Refuses (ChampionMovedError, nothing changed) when the champion is no longer the promoted
    version. Aliases that did not exist before are deleted. Returns {name, champion,
    previous_champion, moved_at, before}; restoring twice is a no-op the second time.
    """
    if "before" not in promotion or "champion" not in promotion:
        raise PromotionError(
            f"{name}: restore needs the result of promote() or rollback() (keys 'champion' and 'before'), "
            f"got keys {sorted(promotion)}"
        )
    target = {alias: _version_or_none(promotion["before"].get(alias)) for alias in MOVED_ALIASES}
    promoted = str(promotion["champion"])
    _require_model(client, name)
    with _promotion_lock(client, name, actor) as lock:
        current = read_aliases(client, name)
        if current == target:
            log.info("%s: aliases already as before the promotion of version %s; nothing to restore", name, promoted)
            return {"name": name, **_result_aliases(target), "moved_at": None, "before": current, "already_done": True}
        if current[CHAMPION] != promoted:
            raise ChampionMovedError(
                f"{name}: cannot restore the aliases from before the promotion of version {promoted}: the champion "
                f"is now {_describe_holder(client, name, current[CHAMPION])}. Nothing was changed; check "
                f"`airflow-mlops history {name}` and roll back by hand if needed",
                expected=promoted, found=current[CHAMPION],
            )
        restored = target[CHAMPION]
        if restored is not None:
            _require_ready(client, name, restored, "restore")
        moved_at = _now()
        _move_and_record(client, name, current, target, actor=actor, reason=reason, action="restore", at=moved_at,
                         lock=lock)
    log.info("%s: restored champion %s (undoing version %s)", name, _version_text(target[CHAMPION]), promoted)
    return {"name": name, **_result_aliases(target), "moved_at": moved_at, "before": current}


def rollback(
    client: MlflowClient,
    name: str,
    *,
    to_version: str | int | None = None,
    expected_champion: str | int | None = None,
    actor: dict[str, str],
    reason: str,
) -> dict:
    """Make `to_version` (default: the current `previous_champion`) the champion; the demoted one becomes `previous_champion`.

    With `expected_champion`, a compare-and-swap: the champion is checked under the promotion lock and a
    rollback decided against another champion raises ChampionMovedError (two rollbacks sent at once: one
    moves, the other is refused). Returns {name, champion, previous_champion, moved_at, before} (restore() can
    undo it).
    """
    expected = _version_or_none(expected_champion)
    _require_model(client, name)
    with _promotion_lock(client, name, actor) as lock:
        current = read_aliases(client, name)
        champion = current[CHAMPION]
        if expected is not None and champion != expected:
            raise ChampionMovedError(
                f"{name}: the champion is now {_describe_holder(client, name, champion)}, but this rollback was "
                f"decided against version {expected}; another writer moved it in between. Nothing was changed: "
                f"look at the champion again (reload the page, or `airflow-mlops status`) and decide anew",
                expected=expected, found=champion,
            )
        if champion is None:
            raise PromotionError(f"{name} has no champion: there is nothing to roll back (promote a version first)")
        target = _version_or_none(to_version) or current[PREVIOUS_CHAMPION]
        if target is None:
            raise PromotionError(
                f"{name} has no previous_champion alias to roll back to; name the version to restore "
                f"(--to VERSION; versions: {', '.join(_version_numbers(client, name)) or 'none'})"
            )
        if target == champion:
            raise PromotionError(f"{name}: version {target} is already the champion; nothing to roll back")
        _require_ready(client, name, target, "roll back to")
        after: dict[str, str | None] = {CHAMPION: target, PREVIOUS_CHAMPION: champion}
        moved_at = _now()
        _move_and_record(client, name, current, after, actor=actor, reason=reason, action="rollback", at=moved_at,
                         lock=lock)
    log.info("%s: rolled back champion %s -> %s", name, champion, target)
    return {"name": name, "champion": target, "previous_champion": champion, "moved_at": moved_at, "before": current}


def record_decision(
    client: MlflowClient,
    name: str,
    version: str | int,
    *,
    action: str,
    actor: dict[str, str],
    reason: str,
    details: dict[str, str | None] | None = None,
) -> dict:
    """Record a decision that moved no alias (a person's, or a timeout's, rejection of `version`; a refused stale
    approval) in the ledger.

    The entry has `alias`, `from` and `to` None, names the version and holds `details` (e.g. the champion
    expected and found); written under the promotion lock like the moves. A retried task (same Airflow run)
    finds its entry instead of writing another. Returns the entry.
    """
    _require_model(client, name)
    run = actor.get("airflow.run_id")
    with _promotion_lock(client, name, actor):
        for earlier in history(client, name) if run else []:
            if (earlier.get("action"), earlier.get("version")) == (action, str(version)) and \
                    (earlier.get("actor") or {}).get("airflow.run_id") == run:
                return earlier
        entry = {
            "at": _now(), "model": name, "action": action, "alias": None, "from": None, "to": None,
            "version": str(version), "by": describe_actor(actor),
            "actor": {str(k): str(v) for k, v in actor.items()}, "reason": reason, **(details or {}),
        }  # fmt: skip
        _append_ledger(client, name, [entry])
    log.info("%s: %s of version %s recorded by %s", name, action, version, entry["by"])
    return entry


def read_aliases(client: MlflowClient, name: str) -> dict[str, str | None]:
    """{champion, previous_champion} -> version (a string) or None."""
    out: dict[str, str | None] = {}
    for alias in MOVED_ALIASES:
        mv = get_alias_version(client, name, alias)
        out[alias] = None if mv is None else str(mv.version)
    return out


def history(client: MlflowClient, name: str) -> list[dict]:
    """Every recorded alias move of `name`, oldest first: {at, model, action, alias, from, to, by, actor, reason}.

    A decision that moved nothing (`record_decision`: a person's rejection) has alias/from/to None and a `version`.
    """
    _require_model(client, name)
    merged: dict[tuple, dict] = {}
    for run_id in _ledger_runs(client, name):  # usually one; two first promotions at once may have made two
        for entry in _read_ledger(client, run_id):
            merged.setdefault((entry.get("at"), entry.get("alias"), entry.get("to")), entry)
    return sorted(merged.values(), key=lambda e: str(e.get("at")))


#: Parsed ledgers, newest first, by ((ledger run id, artifact size), ...): a ledger only grows (each write appends
#: entries to the list and rewrites it whole), so its size tells whether it changed since it was read.
_MOVES_CACHE: dict[tuple, list[dict]] = {}
_MOVES_CACHE_SIZE = 16
_MOVES_LOCK = threading.Lock()


def recorded_moves(client: MlflowClient, name: str) -> list[dict]:
    """`history(name)` newest first, for showing pages of it: a listing of each ledger run's folder, the JSON read
    and parsed only when it changed (a process-wide cache). The entries are shared: copy one before changing it."""
    sizes = tuple((run_id, _ledger_size(client, uri)) for run_id, uri in _ledger_locations(client, name))
    with _MOVES_LOCK:
        cached = _MOVES_CACHE.get(sizes)
    if cached is not None:
        return cached
    merged: dict[tuple, dict] = {}
    for run_id, size in sizes:
        for entry in _read_ledger(client, run_id) if size is not None else []:
            merged.setdefault((entry.get("at"), entry.get("alias"), entry.get("to")), entry)
    moves = sorted(merged.values(), key=lambda e: str(e.get("at")), reverse=True)
    with _MOVES_LOCK:
        while len(_MOVES_CACHE) >= _MOVES_CACHE_SIZE:
            del _MOVES_CACHE[next(iter(_MOVES_CACHE))]
        _MOVES_CACHE[sizes] = moves
    return moves


def lock_holder(client: MlflowClient, name: str) -> dict | None:
    """Who holds `name`'s promotion lock now ({index, by, at}), or None when it is free."""
    _require_model(client, name)
    for run_id in _ledger_runs(client, name):
        index, holder = _last_lock(client.get_run(run_id).data.params)
        if holder is not None:
            return {"index": index, "by": holder["by"], "at": holder["at"]}
    return None


def status(client: MlflowClient) -> list[dict]:
    """One row per registered model: its aliases, its newest version, the latest decision (challenger's, else the
    newest decided version's). A few reads per model, however many versions it has."""
    rows = []
    for rm in _registered_models(client):
        aliases = {str(k): str(v) for k, v in (getattr(rm, "aliases", None) or {}).items()}
        latest = max((str(mv.version) for mv in rm.latest_versions or []), key=int, default=None)
        rows.append(status_row(client, rm.name, aliases, latest_version=latest))
    return sorted(rows, key=lambda r: r["name"])


def status_row(
    client: MlflowClient,
    name: str,
    aliases: dict[str, str],
    *,
    known: Iterable[ModelVersion] = (),
    latest_version: str | None = None,
) -> dict:
    """`status`'s row of model `name` with these aliases ({alias: version}) and newest version.

    Reads the challenger and the champion (unless in `known`, versions already read with their tags) and, when
    the challenger has no decision, the newest decided version by one search: never the whole version list.
    """
    versions: dict[str, ModelVersion | None] = {str(mv.version): mv for mv in known}

    def version(number: str | None) -> ModelVersion | None:
        if number is None:
            return None
        if number not in versions:
            versions[number] = _unless_missing(client.get_model_version, name, number)
        return versions[number]

    challenger = aliases.get(CHALLENGER)
    evaluated = version(challenger)
    if evaluated is None or DECISION_TAG not in evaluated.tags:
        evaluated = latest_decided_version(client, name)
    ev_tags = evaluated.tags if evaluated is not None else {}
    champion = aliases.get(CHAMPION)
    champion_mv = version(champion)
    champ_tags = champion_mv.tags if champion_mv is not None else {}
    return {
        "name": name,
        "champion": champion,
        "challenger": challenger,
        "previous_champion": aliases.get(PREVIOUS_CHAMPION),
        "latest_version": latest_version,
        "champion_since": champ_tags.get("champion.promoted_at"),
        "champion_data_digest": champ_tags.get(DIGEST_TAG),
        "evaluated_version": str(evaluated.version) if evaluated is not None else None,
        "decision": ev_tags.get(DECISION_TAG),
        "reasons": _json_list(ev_tags.get(DECISION_REASONS_TAG)),
        "decided_at": ev_tags.get(DECISION_AT_TAG),
        "data_digest": ev_tags.get(DIGEST_TAG),
        "evaluation_run_id": ev_tags.get("evaluation.run_id"),
        "trigger": ev_tags.get("mlops.trigger"),  # schedule | manual | drift | ...: what started its run
        "trigger_summary": ev_tags.get("mlops.trigger.summary"),
    }


def alias_versions(client: MlflowClient, name: str, aliases: Iterable[str] = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)
                   ) -> dict[str, ModelVersion]:
    """{alias: the version it points at, with its tags} for those of `aliases` that are set: one read per version,
    as a version read by alias lists every alias it carries (a champion that is also the challenger: one read)."""
    wanted = list(aliases)
    found: dict[str, ModelVersion] = {}
    for alias in wanted:
        if alias not in found and (mv := get_alias_version(client, name, alias)) is not None:
            found.update({a: mv for a in [alias, *(mv.aliases or [])] if a in wanted})
    return found


def latest_decided_version(client: MlflowClient, name: str) -> ModelVersion | None:
    """The newest version of `name` the gate decided on (tag `decision`): one search, one result."""
    found = client.search_model_versions(
        f"name = {quote_filter_value(name)} and tags.`{DECISION_TAG}` LIKE '%'",
        max_results=1, order_by=["version_number DESC"],
    )
    return found[0] if found else None


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
            max_results=high - low + 1, order_by=["version_number DESC"])
        return {str(mv.version): mv for mv in found if int(mv.version) in wanted}
    out = {str(n): _unless_missing(client.get_model_version, name, str(n)) for n in wanted}
    return {n: mv for n, mv in out.items() if mv is not None}


def describe_actor(actor: dict[str, str]) -> str:
    """The `actor` entry (e.g. `cli:user@host`, `airflow-user:alice` who approved a task's promotion), else
    `airflow:<dag_id>/<run_id>/<task_id>` for a task, else the `user` entry."""
    if actor.get("actor"):
        return str(actor["actor"])
    if actor.get("airflow.dag_id"):
        return "airflow:" + "/".join(str(actor.get(k, "?")) for k in ("airflow.dag_id", "airflow.run_id", "airflow.task_id"))
    for key in ("user",):
        if actor.get(key):
            return str(actor[key])
    return ", ".join(f"{k}={v}" for k, v in sorted(actor.items())) or "unknown"


# --------------------------------------------------------------------------- promotion internals


def _move_and_record(
    client: MlflowClient,
    name: str,
    before: dict[str, str | None],
    after: dict[str, str | None],
    *,
    actor: dict[str, str],
    reason: str,
    action: str,
    at: str,
    lock: _Lock,
) -> None:
    """Announce the move under `lock`, write the aliases, read them back, record the moves.

    On any failure undo (best effort) and raise; a move neither finished nor undone keeps the
    lock, and whoever takes it over finishes or undoes the move from its announcement.
    """
    intent = {
        "action": action, "at": at, "before": before, "after": after, "reason": reason[:2000],
        "actor": {str(k): str(v)[:200] for k, v in actor.items()},
    }  # fmt: skip
    client.log_param(lock.run_id, f"intent.{lock.index}", json.dumps(intent))
    lock.moving = True
    _write_aliases(client, name, before, after, lock)
    try:
        _record(client, name, before, after, actor=actor, reason=reason, action=action, at=at)
    except Exception as exc:
        lock.moving, undone = _undo(client, name, before, [a for a in MOVED_ALIASES if before[a] != after[a]])
        raise AliasWriteError(
            f"{name}: the {action} moved the aliases but could not record it in the ledger "
            f"({type(exc).__name__}: {exc}); {undone}. Retry the task"
        ) from exc
    lock.moving = False


def _write_aliases(
    client: MlflowClient, name: str, before: dict[str, str | None], after: dict[str, str | None], lock: _Lock
) -> None:
    attempted: list[str] = []
    try:
        for alias in MOVED_ALIASES:
            if after[alias] == before[alias]:
                continue
            attempted.append(alias)
            _put_alias(client, name, alias, after[alias])
    except Exception as exc:
        lock.moving, undone = _undo(client, name, before, attempted)
        raise AliasWriteError(
            f"{name}: moving alias {attempted[-1]!r} to {_version_text(after[attempted[-1]])} failed "
            f"({type(exc).__name__}: {exc}); {undone}. Retry the task"
        ) from exc
    seen = read_aliases(client, name)
    if seen != after:
        lock.moving = False  # another writer's aliases: left as they are, nothing to recover
        raise AliasWriteError(
            f"{name}: aliases were written as {_aliases_text(after)} but read back as {_aliases_text(seen)}; "
            f"another writer moved them (promotions must go through the promotion pool). Left as read; "
            f"check `airflow-mlops status` and `airflow-mlops history {name}`"
        )


def _put_alias(client: MlflowClient, name: str, alias: str, version: str | None) -> None:
    from mlflow.exceptions import MlflowException

    if version is not None:
        client.set_registered_model_alias(name, alias, version)
        return
    try:
        client.delete_registered_model_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND_CODES:
            raise


def _undo(client: MlflowClient, name: str, before: dict[str, str | None], aliases: list[str]) -> tuple[bool, str]:
    """Put `aliases` back to `before` (best effort): (False when they are back as before, a sentence saying how it went).

    The flag is "still half-moved", as `_Lock.moving` wants it.
    """
    failures = []
    for alias in reversed(aliases):
        try:
            _put_alias(client, name, alias, before[alias])
        except Exception as exc:  # keep undoing the others
            failures.append(f"{alias} ({type(exc).__name__}: {exc})")
    try:
        seen = read_aliases(client, name)
    except Exception as exc:
        return True, f"undo attempted, but the aliases cannot be read back ({type(exc).__name__}: {exc})"
    if not failures and all(seen[a] == before[a] for a in aliases):
        return False, f"the aliases were put back as before ({_aliases_text(seen)})"
    log.error("%s: undo incomplete: now %s, wanted %s", name, _aliases_text(seen), _aliases_text(before))
    return True, (
        f"UNDO INCOMPLETE: aliases are now {_aliases_text(seen)}, were {_aliases_text(before)}"
        + (f"; failed: {', '.join(failures)}" if failures else "")
        + f". Fix by hand with `airflow-mlops rollback {name} --to VERSION`"
    )


def _record(
    client: MlflowClient,
    name: str,
    before: dict[str, str | None],
    after: dict[str, str | None],
    *,
    actor: dict[str, str],
    reason: str,
    action: str,
    at: str,
) -> None:
    """Version tags on the versions involved, then one ledger entry per moved alias."""
    by = describe_actor(actor)
    new, old = after[CHAMPION], before[CHAMPION]
    if new != old:
        if new is not None:
            _set_tags(client, name, new, {
                "champion.promoted_at": at,
                "champion.promoted_by": by,
                "champion.reason": reason,
                "champion.action": action,
                "champion.replaced": old or "",
                "champion.replaced_previous": before[PREVIOUS_CHAMPION] or "",
            })
        if old is not None:
            _set_tags(client, name, old, {
                "champion.demoted_at": at,
                "champion.demoted_by": by,
                "champion.demoted_reason": reason,
                "champion.replaced_by": new or "",
            })
    entries = [
        {
            "at": at,
            "model": name,
            "action": action,
            "alias": alias,
            "from": before[alias],
            "to": after[alias],
            "by": by,
            "actor": {str(k): str(v) for k, v in actor.items()},
            "reason": reason,
        }
        for alias in MOVED_ALIASES
        if before[alias] != after[alias]
    ]
    _append_ledger(client, name, entries)


def _set_tags(client: MlflowClient, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value)[:_MAX_TAG_VALUE])


def _already_promoted(
    client: MlflowClient, name: str, version: str, expected: str | None, current: str | None
) -> dict | None:
    """The result of an earlier identical promotion (a retried task), or None."""
    if current != version:
        return None
    tags = client.get_model_version(name, version).tags
    if "champion.promoted_at" not in tags or tags.get("champion.action") != "promote":
        return None
    if (tags.get("champion.replaced") or None) != expected:
        return None
    log.info("%s: version %s was already promoted over %s; nothing to do", name, version, _version_text(expected))
    before = {CHAMPION: expected, PREVIOUS_CHAMPION: tags.get("champion.replaced_previous") or None}
    return {
        "name": name,
        "champion": version,
        "previous_champion": expected,
        "moved_at": tags["champion.promoted_at"],
        "before": before,
        "already_done": True,
    }


def _require_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND_CODES:
            raise
        known = [rm.name for rm in _registered_models(client, limit=20)]
        raise UnknownModelError(
            f"no registered model named {name!r}; known models: {', '.join(known) or 'none yet'}"
        ) from None


def _require_ready(client: MlflowClient, name: str, version: str, what: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND_CODES:
            raise
        raise UnknownModelError(
            f"{name} has no version {version!r} to {what}; versions: {', '.join(_version_numbers(client, name)) or 'none'}. "
            f"Nothing was changed"
        ) from None
    if mv.status != "READY":
        raise PromotionError(
            f"{name} version {version} is {mv.status}, not READY: refusing to {what} it. Nothing was changed"
        )
    return mv


def _version_numbers(client: MlflowClient, name: str) -> list[str]:
    return sorted((str(mv.version) for mv in client.search_model_versions(f"name={quote_filter_value(name)}")), key=int)


def _registered_models(client: MlflowClient, limit: int | None = None) -> list[Any]:
    out: list[Any] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=100, page_token=token)
        out.extend(page)
        token = page.token
        if not token or (limit is not None and len(out) >= limit):
            return out[:limit] if limit is not None else out


def _describe_holder(client: MlflowClient, name: str, version: str | None) -> str:
    if version is None:
        return "unset (no champion)"
    try:
        tags = client.get_model_version(name, version).tags
    except Exception:
        return f"version {version}"
    by, at = tags.get("champion.promoted_by"), tags.get("champion.promoted_at")
    if by or at:
        return f"version {version} (set by {by or 'unknown'} at {at or 'unknown time'})"
    return f"version {version} (set outside airflow-mlops: no promotion tags)"


def _result_aliases(aliases: dict[str, str | None]) -> dict[str, str | None]:
    return {"champion": aliases[CHAMPION], "previous_champion": aliases[PREVIOUS_CHAMPION]}


def _version_or_none(value: str | int | None) -> str | None:
    return None if value is None or str(value).strip() in ("", "None") else str(value).strip()


def _version_text(version: str | None) -> str:
    return "no champion" if version is None else f"version {version}"


def _aliases_text(aliases: dict[str, str | None]) -> str:
    return ", ".join(f"{a}={'unset' if v is None else v}" for a, v in aliases.items())


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_list(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


# --------------------------------------------------------------------------- ledger


def _ledger_run_id(client: MlflowClient, name: str, *, create: bool) -> str | None:
    """The id of `name`'s ledger run: the registered-model tag, else a search by run tag, else a new run."""
    from mlflow.exceptions import MlflowException

    from airflow_mlops.core import tracking

    run_id = client.get_registered_model(name).tags.get(LEDGER_RUN_TAG)
    if run_id:
        try:
            if client.get_run(run_id).info.lifecycle_stage == "active":
                return run_id
        except MlflowException as exc:
            if exc.error_code not in _NOT_FOUND_CODES:
                raise
        log.warning("%s: ledger run %s (tag %s) is gone; looking for another", name, run_id, LEDGER_RUN_TAG)
    runs = _ledger_runs(client, name, tagged=False)
    if runs:
        _tag_ledger_run(client, name, runs[0])
        return runs[0]
    if not create:
        return None
    experiment_id = tracking.ensure_experiment(client, LEDGER_EXPERIMENT)
    run = client.create_run(experiment_id, run_name=f"{name} ledger", tags={LEDGER_MODEL_TAG: name})
    client.set_terminated(run.info.run_id, status="FINISHED")
    # Two first promotions at the same moment may both get here and each make a ledger run. The lock
    # looks at every ledger run of the model (`_rival_holder`), and `history` merges them (the extra
    # one cannot be deleted: that needs MANAGE on the ledger experiment, promoters have EDIT).
    oldest = _ledger_runs(client, name, tagged=False)[0]
    _tag_ledger_run(client, name, oldest)
    return oldest


def _ledger_runs(client: MlflowClient, name: str, *, tagged: bool = True) -> list[str]:
    """Ids of every active ledger run of `name`, oldest first (the model-tagged one first when `tagged`)."""
    found = [run.info.run_id for run in _search_ledger_runs(client, name)]
    tag = client.get_registered_model(name).tags.get(LEDGER_RUN_TAG) if tagged else None
    return [tag] + [r for r in found if r != tag] if tag in found else found


def _search_ledger_runs(client: MlflowClient, name: str) -> list[Run]:
    """Every active ledger run of `name` (MLflow Run objects), oldest first."""
    exp = client.get_experiment_by_name(LEDGER_EXPERIMENT)
    if exp is None:
        return []
    return list(client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{LEDGER_MODEL_TAG}` = {quote_filter_value(name)}",
        order_by=["attributes.start_time ASC", "attributes.run_id ASC"],
        max_results=50,
    ))


#: (Tracking URI, model name) -> ((ledger run id, its artifact location), ...) and when they were searched.
#: A model's ledger runs are made at its first promotion and never change after (only deleting one by hand
#: does): searched again each LEDGER_RUNS_TTL_S, as the search returns each run with every parameter the
#: promotion locks left on it.
_LEDGER_LOCATIONS: dict[tuple[str, str], tuple[tuple[tuple[str, str], ...], float]] = {}
LEDGER_RUNS_TTL_S = 60.0


def _ledger_locations(client: MlflowClient, name: str) -> tuple[tuple[str, str], ...]:
    """(run id, artifact location) of every active ledger run of `name`, oldest first (cached, see above)."""
    key = (str(client.tracking_uri), name)
    cached = _LEDGER_LOCATIONS.get(key)
    if cached is not None and time.monotonic() - cached[1] < LEDGER_RUNS_TTL_S:
        return cached[0]
    found = tuple((run.info.run_id, run.info.artifact_uri) for run in _search_ledger_runs(client, name))
    if found:  # none yet: the first promotion makes one, so look again next time
        _LEDGER_LOCATIONS[key] = (found, time.monotonic())
    return found


def _ledger_size(client: MlflowClient, artifact_uri: str) -> int | None:
    """The size of the ledger artifact at a ledger run's artifact location (None: none yet), listed without
    reading the run (`client.list_artifacts(run_id)` would)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(artifact_uri, tracking_uri=client.tracking_uri)
    return next((f.file_size for f in repo.list_artifacts() if f.path == LEDGER_ARTIFACT), None)


def _tag_ledger_run(client: MlflowClient, name: str, run_id: str) -> None:
    """Point the model's ledger tag at `run_id`. Two first promotions may write it at the same moment:
    a SQL store then refuses the second insert (a unique key), which is fine when the first wrote the same id."""
    from mlflow.exceptions import MlflowException

    try:
        client.set_registered_model_tag(name, LEDGER_RUN_TAG, run_id)
    except MlflowException:
        if client.get_registered_model(name).tags.get(LEDGER_RUN_TAG) != run_id:
            client.set_registered_model_tag(name, LEDGER_RUN_TAG, run_id)


def _read_ledger(client: MlflowClient, run_id: str) -> list[dict]:
    if LEDGER_ARTIFACT not in {f.path for f in client.list_artifacts(run_id)}:
        return []
    with tempfile.TemporaryDirectory(prefix="mlops-ledger-") as tmp:
        path = client.download_artifacts(run_id, LEDGER_ARTIFACT, tmp)
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    if not isinstance(entries, list):
        raise ValueError(f"ledger run {run_id}: {LEDGER_ARTIFACT} is not a JSON list; fix or remove it")
    return entries


def _append_ledger(client: MlflowClient, name: str, entries: list[dict]) -> None:
    """Read, append, rewrite the whole list in one artifact write (under the promotion lock).

    Entries already there (same time, alias and target: a move recorded again by a recovery) are skipped.
    """
    if not entries:
        return
    run_id = _ledger_run_id(client, name, create=True)
    assert run_id is not None
    ledger = _read_ledger(client, run_id)
    seen = {(e.get("at"), e.get("alias"), e.get("to")) for e in ledger}
    new = [e for e in entries if (e["at"], e["alias"], e["to"]) not in seen]
    if new:
        client.log_text(run_id, json.dumps(ledger + new, indent=2), LEDGER_ARTIFACT)


# --------------------------------------------------------------------------- promotion lock


@contextlib.contextmanager
def _promotion_lock(client: MlflowClient, name: str, actor: dict[str, str]) -> Iterator[_Lock]:
    """Hold `name`'s promotion lock (see the section comment above); wait up to LOCK_WAIT_S for it.

    A lock whose holder died is taken over: its own Airflow retry takes it at once, anyone else
    after LOCK_STALE_S. The move it announced is first finished or undone (`_recover`) under the
    next lock, then a fresh lock is taken for the caller. If the recovery fails too, its lock stays
    held and the next taker recovers the same move.
    """
    run_id = _ledger_run_id(client, name, create=True)
    assert run_id is not None
    me = describe_actor(actor)
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        params = client.get_run(run_id).data.params
        last, holder = _last_lock(params)
        own_retry = holder is not None and holder["by"] == me and bool(actor.get("airflow.dag_id"))
        if holder is not None and not own_retry and time.time() - holder["t"] < LOCK_STALE_S:
            _wait_or_give_up(name, deadline, f"lock {last} on ledger run {run_id}, held by {holder['by']} since "
                                             f"{holder['at']}")
            continue
        lock = _Lock(run_id, last + 1)
        if not _log_param_once(client, run_id, f"lock.{lock.index}", json.dumps({"by": me, "t": time.time(), "at": _now()})):
            continue  # another writer claimed it first
        rival = _rival_holder(client, name, run_id, me)
        if rival is not None:  # claimed on another ledger run of the model at the same moment: back off
            _release(client, lock, f"backed off: {rival}")
            _wait_or_give_up(name, deadline, rival, jitter=True)
            run_id = _ledger_runs(client, name, tagged=False)[0]  # from now on every writer agrees on the oldest
            _tag_ledger_run(client, name, run_id)
            continue
        if holder is None:
            break
        outcome = _recover(client, name, _pending_intent(params, last))
        log.warning("%s: took over the promotion lock %s of %s: %s", name, last, holder["by"], outcome)
        _release(client, _Lock(run_id, last), f"taken over by {me}: {outcome}")
        _release(client, lock, "recovery done")
    try:
        yield lock
    finally:
        if lock.moving:
            log.error("%s: an alias move is half-done: keeping promotion lock %s for the retry to finish or undo it",
                      name, lock.index)
        else:
            _release(client, lock, "released")


def _wait_or_give_up(name: str, deadline: float, held: str, *, jitter: bool = False) -> None:
    """Sleep one poll (randomised with `jitter`), or raise PromotionInProgressError once `deadline` has passed."""
    if time.monotonic() >= deadline:
        raise PromotionInProgressError(
            f"{name}: another alias move is in progress ({held}); waited {LOCK_WAIT_S:.0f} s. Nothing was changed: "
            f"retry later (a lock held for {LOCK_STALE_S / 60:.0f} min is taken over)"
        )
    time.sleep(_LOCK_POLL_S * (1 + random.random() if jitter else 1))


def _rival_holder(client: MlflowClient, name: str, run_id: str, me: str) -> str | None:
    """Who holds a live lock on another ledger run of `name` (there is one only after a first-promotion race).

    Each writer claims, then looks: of two writers that claim at once on different runs, at least one sees
    the other's claim and backs off, so they never both go on.
    """
    for other in _ledger_runs(client, name, tagged=False):
        if other == run_id:
            continue
        index, holder = _last_lock(client.get_run(other).data.params)
        if holder is not None and time.time() - holder["t"] < LOCK_STALE_S and holder["by"] != me:
            return f"{holder['by']} holds lock {index} on ledger run {other}"
    return None


def _recover(client: MlflowClient, name: str, intent_text: str | None) -> str:
    """Finish (record) an announced move whose aliases were all written, or undo a half-written one."""
    if intent_text is None:
        return "it had not started moving aliases"
    intent = json.loads(intent_text)
    before, after, action = intent["before"], intent["after"], intent["action"]
    now = read_aliases(client, name)
    if now == after:
        _record(client, name, before, after, actor=intent["actor"], reason=intent["reason"], action=action,
                at=intent["at"])
        return f"its {action} had moved the aliases ({_aliases_text(after)}); it is now recorded in the ledger"
    if now == before:
        return f"its {action} had not moved any alias"
    half_moved, undone = _undo(client, name, before, [a for a in MOVED_ALIASES if now[a] == after[a] != before[a]])
    if half_moved:
        raise AliasWriteError(f"{name}: the {action} of {_aliases_text(before)} -> {_aliases_text(after)} was left "
                              f"half-done and cannot be undone yet: {undone}. Retry the task")
    return f"its {action} was half-done ({_aliases_text(now)}); {undone}"


def _pending_intent(params: dict[str, str], last: int) -> str | None:
    """The move announced under the newest of the unreleased locks ending at `last` (their holders died)."""
    for index in range(last, 0, -1):
        if f"unlock.{index}" in params:
            return None
        if f"intent.{index}" in params:
            return params[f"intent.{index}"]
    return None


def _last_lock(params: dict[str, str]) -> tuple[int, dict | None]:
    """(index of the newest lock parameter or 0, its holder {by, t, at} while it is not released)."""
    indices = [int(k.split(".", 1)[1]) for k in params if k.startswith("lock.") and k[5:].isdigit()]
    last = max(indices, default=0)
    if not last or f"unlock.{last}" in params:
        return last, None
    return last, json.loads(params[f"lock.{last}"])


def _log_param_once(client: MlflowClient, run_id: str, key: str, value: str) -> bool:
    """Log `key` unless another value is already logged under it (False then): MLflow's atomic test-and-set."""
    from mlflow.exceptions import MlflowException

    try:
        client.log_param(run_id, key, value)
    except MlflowException as exc:
        if exc.error_code != "INVALID_PARAMETER_VALUE" or key not in client.get_run(run_id).data.params:
            raise
        return False
    return True


def _release(client: MlflowClient, lock: _Lock, note: str) -> None:
    try:
        _log_param_once(client, lock.run_id, f"unlock.{lock.index}", note[:6000])
    except Exception as exc:  # the lock stays: this task's retry, or anyone after LOCK_STALE_S, takes it over
        log.warning("Could not release promotion lock %s on run %s (%s: %s)", lock.index, lock.run_id,
                    type(exc).__name__, exc)
