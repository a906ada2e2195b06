"""Promotion, restore and rollback: `champion` and `previous_champion` move together, checked and recorded.

- compare-and-swap: the current champion is re-read under the lock and must be the one the decision (a
  promotion, or a rollback given `expected_champion`) was made against (MLflow alias writes are
  last-writer-wins; the check is ours);
- read back: after writing, both aliases are read back and compared;
- undo: a write that fails half-way is undone (best effort) before raising;
- ledger: every move is recorded as version tags and in the model's ledger (`ledger`);
- lock: one writer at a time per model, across processes (`lock`).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from airflow_mlops.core.filters import quote_filter_value
from airflow_mlops.core.registry.errors import AliasWriteError, ChampionMovedError, PromotionError, UnknownModelError
from airflow_mlops.core.registry.ledger import append_ledger, describe_actor, history, now, record_move
from airflow_mlops.core.registry.lock import Lock, promotion_lock
from airflow_mlops.core.registry.versions import (
    CHAMPION,
    MOVED_ALIASES,
    NOT_FOUND_CODES,
    PREVIOUS_CHAMPION,
    aliases_text,
    put_alias,
    read_aliases,
    require_model,
    undo,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from airflow_mlops.core.payloads import PromotionResult

log = logging.getLogger(__name__)


def promote(
    client: MlflowClient,
    name: str,
    version: str | int,
    *,
    expected_champion: str | int | None,
    actor: dict[str, str],
    reason: str,
) -> PromotionResult:
    """Make `version` the champion and the old champion `previous_champion`, if the champion is still `expected_champion`.

    Returns {name, champion, previous_champion, moved_at, before}; `before` holds both aliases as
    they were and is what `restore` needs. A retry of a promotion that already happened returns
    its result again (``already_done: True``) without moving anything.
    """
    version = str(version)
    expected = _version_or_none(expected_champion)
    require_model(client, name)
    with promotion_lock(client, name, actor) as lock:
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
                expected=expected,
                found=current,
            )
        if current == version:
            raise PromotionError(f"{name}: version {version} is already the champion; nothing to promote")
        _require_ready(client, name, version, "promote")
        after = {CHAMPION: version, PREVIOUS_CHAMPION: current if current is not None else before[PREVIOUS_CHAMPION]}
        moved_at = now()
        _move_and_record(
            client, name, before, after, actor=actor, reason=reason, action="promote", at=moved_at, lock=lock
        )
    log.info("%s: promoted version %s to champion (was %s)", name, version, _version_text(current))
    return {"name": name, "champion": version, "previous_champion": current, "moved_at": moved_at, "before": before}


def restore(
    client: MlflowClient, name: str, promotion: PromotionResult, *, actor: dict[str, str], reason: str
) -> PromotionResult:
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
    require_model(client, name)
    with promotion_lock(client, name, actor) as lock:
        current = read_aliases(client, name)
        if current == target:
            log.info("%s: aliases already as before the promotion of version %s; nothing to restore", name, promoted)
            return {
                "name": name,
                "champion": target[CHAMPION],
                "previous_champion": target[PREVIOUS_CHAMPION],
                "moved_at": None,
                "before": current,
                "already_done": True,
            }
        if current[CHAMPION] != promoted:
            raise ChampionMovedError(
                f"{name}: cannot restore the aliases from before the promotion of version {promoted}: the champion "
                f"is now {_describe_holder(client, name, current[CHAMPION])}. Nothing was changed; check "
                f"`airflow-mlops history {name}` and roll back by hand if needed",
                expected=promoted,
                found=current[CHAMPION],
            )
        restored = target[CHAMPION]
        if restored is not None:
            _require_ready(client, name, restored, "restore")
        moved_at = now()
        _move_and_record(
            client, name, current, target, actor=actor, reason=reason, action="restore", at=moved_at, lock=lock
        )
    log.info("%s: restored champion %s (undoing version %s)", name, _version_text(target[CHAMPION]), promoted)
    return {
        "name": name,
        "champion": target[CHAMPION],
        "previous_champion": target[PREVIOUS_CHAMPION],
        "moved_at": moved_at,
        "before": current,
    }


def rollback(
    client: MlflowClient,
    name: str,
    *,
    to_version: str | int | None = None,
    expected_champion: str | int | None = None,
    actor: dict[str, str],
    reason: str,
) -> PromotionResult:
    """Make `to_version` (default: the current `previous_champion`) the champion; the demoted one becomes `previous_champion`.

    With `expected_champion`, a compare-and-swap: the champion is checked under the promotion lock and a
    rollback decided against another champion raises ChampionMovedError (two rollbacks sent at once: one
    moves, the other is refused). Returns {name, champion, previous_champion, moved_at, before} (restore() can
    undo it).
    """
    expected = _version_or_none(expected_champion)
    require_model(client, name)
    with promotion_lock(client, name, actor) as lock:
        current = read_aliases(client, name)
        champion = current[CHAMPION]
        if expected is not None and champion != expected:
            raise ChampionMovedError(
                f"{name}: the champion is now {_describe_holder(client, name, champion)}, but this rollback was "
                f"decided against version {expected}; another writer moved it in between. Nothing was changed: "
                f"look at the champion again (reload the page, or `airflow-mlops status`) and decide anew",
                expected=expected,
                found=champion,
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
        moved_at = now()
        _move_and_record(
            client, name, current, after, actor=actor, reason=reason, action="rollback", at=moved_at, lock=lock
        )
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
    require_model(client, name)
    run = actor.get("airflow.run_id")
    with promotion_lock(client, name, actor):
        for earlier in history(client, name) if run else []:
            if (earlier.get("action"), earlier.get("version")) == (action, str(version)) and (
                earlier.get("actor") or {}
            ).get("airflow.run_id") == run:
                return earlier
        entry = {
            "at": now(), "model": name, "action": action, "alias": None, "from": None, "to": None,
            "version": str(version), "by": describe_actor(actor),
            "actor": {str(k): str(v) for k, v in actor.items()}, "reason": reason, **(details or {}),
        }  # fmt: skip
        append_ledger(client, name, [entry])
    log.info("%s: %s of version %s recorded by %s", name, action, version, entry["by"])
    return entry


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
    lock: Lock,
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
        record_move(client, name, before, after, actor=actor, reason=reason, action=action, at=at)
    except Exception as exc:
        lock.moving, undone = undo(client, name, before, [a for a in MOVED_ALIASES if before[a] != after[a]])
        raise AliasWriteError(
            f"{name}: the {action} moved the aliases but could not record it in the ledger "
            f"({type(exc).__name__}: {exc}); {undone}. Retry the task"
        ) from exc
    lock.moving = False


def _write_aliases(
    client: MlflowClient, name: str, before: dict[str, str | None], after: dict[str, str | None], lock: Lock
) -> None:
    attempted: list[str] = []
    try:
        for alias in MOVED_ALIASES:
            if after[alias] == before[alias]:
                continue
            attempted.append(alias)
            put_alias(client, name, alias, after[alias])
    except Exception as exc:
        lock.moving, undone = undo(client, name, before, attempted)
        raise AliasWriteError(
            f"{name}: moving alias {attempted[-1]!r} to {_version_text(after[attempted[-1]])} failed "
            f"({type(exc).__name__}: {exc}); {undone}. Retry the task"
        ) from exc
    seen = read_aliases(client, name)
    if seen != after:
        lock.moving = False  # another writer's aliases: left as they are, nothing to recover
        raise AliasWriteError(
            f"{name}: aliases were written as {aliases_text(after)} but read back as {aliases_text(seen)}; "
            f"another writer moved them (promotions must go through the promotion pool). Left as read; "
            f"check `airflow-mlops status` and `airflow-mlops history {name}`"
        )


def _already_promoted(
    client: MlflowClient, name: str, version: str, expected: str | None, current: str | None
) -> PromotionResult | None:
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


def _require_ready(client: MlflowClient, name: str, version: str, what: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND_CODES:
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


def _version_or_none(value: str | int | None) -> str | None:
    return None if value is None or str(value).strip() in ("", "None") else str(value).strip()


def _version_text(version: str | None) -> str:
    return "no champion" if version is None else f"version {version}"
