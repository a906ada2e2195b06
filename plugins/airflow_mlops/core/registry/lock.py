"""The promotion lock: one writer of a model's aliases at a time, across processes.

The lock is parameter `lock.<n>` of the model's ledger run (MLflow never changes a logged parameter, so
claiming it is an atomic test-and-set). The move is announced first (`intent.<n>`): if the writer dies
half-way, whoever takes its lock over records a move that was made, or undoes a half-made one, before
moving anything itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_mlops.core.registry.errors import AliasWriteError, PromotionInProgressError
from airflow_mlops.core.registry.ledger import (
    describe_actor,
    ledger_run_id,
    ledger_runs,
    now,
    record_move,
    tag_ledger_run,
)
from airflow_mlops.core.registry.versions import MOVED_ALIASES, aliases_text, read_aliases, require_model, undo

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlflow import MlflowClient

log = logging.getLogger(__name__)

#: Seconds a writer waits for another one to release the model's promotion lock.
LOCK_WAIT_S = 60.0
#: A lock held this long is taken to be held by a dead writer and is taken over (an Airflow task's own retry
#: takes its lock over at once: Airflow never runs two tries of a task at the same time).
LOCK_STALE_S = 600.0
_LOCK_POLL_S = 0.2


@dataclass
class Lock:
    run_id: str  # the ledger run holding the lock parameters
    index: int
    moving: bool = False  # an announced move is not finished nor undone: keep the lock for whoever recovers it


@contextlib.contextmanager
def promotion_lock(client: MlflowClient, name: str, actor: dict[str, str]) -> Iterator[Lock]:
    """Hold `name`'s promotion lock (see the module docstring); wait up to LOCK_WAIT_S for it.

    A lock whose holder died is taken over: its own Airflow retry takes it at once, anyone else
    after LOCK_STALE_S. The move it announced is first finished or undone (`_recover`) under the
    next lock, then a fresh lock is taken for the caller. If the recovery fails too, its lock stays
    held and the next taker recovers the same move.
    """
    run_id = ledger_run_id(client, name, create=True)
    assert run_id is not None
    me = describe_actor(actor)
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        params = client.get_run(run_id).data.params
        last, holder = _last_lock(params)
        own_retry = holder is not None and holder["by"] == me and bool(actor.get("airflow.dag_id"))
        if holder is not None and not own_retry and time.time() - holder["t"] < LOCK_STALE_S:
            _wait_or_give_up(
                name, deadline, f"lock {last} on ledger run {run_id}, held by {holder['by']} since {holder['at']}"
            )
            continue
        lock = Lock(run_id, last + 1)
        if not _log_param_once(
            client, run_id, f"lock.{lock.index}", json.dumps({"by": me, "t": time.time(), "at": now()})
        ):
            continue  # another writer claimed it first
        rival = _rival_holder(client, name, run_id, me)
        if rival is not None:  # claimed on another ledger run of the model at the same moment: back off
            _release(client, lock, f"backed off: {rival}")
            _wait_or_give_up(name, deadline, rival, jitter=True)
            run_id = ledger_runs(client, name, tagged=False)[0]  # from now on every writer agrees on the oldest
            tag_ledger_run(client, name, run_id)
            continue
        if holder is None:
            break
        outcome = _recover(client, name, _pending_intent(params, last))
        log.warning("%s: took over the promotion lock %s of %s: %s", name, last, holder["by"], outcome)
        _release(client, Lock(run_id, last), f"taken over by {me}: {outcome}")
        _release(client, lock, "recovery done")
    try:
        yield lock
    finally:
        if lock.moving:
            log.error(
                "%s: an alias move is half-done: keeping promotion lock %s for the retry to finish or undo it",
                name,
                lock.index,
            )
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
    for other in ledger_runs(client, name, tagged=False):
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
        record_move(
            client, name, before, after, actor=intent["actor"], reason=intent["reason"], action=action, at=intent["at"]
        )
        return f"its {action} had moved the aliases ({aliases_text(after)}); it is now recorded in the ledger"
    if now == before:
        return f"its {action} had not moved any alias"
    half_moved, undone = undo(client, name, before, [a for a in MOVED_ALIASES if now[a] == after[a] != before[a]])
    if half_moved:
        raise AliasWriteError(
            f"{name}: the {action} of {aliases_text(before)} -> {aliases_text(after)} was left "
            f"half-done and cannot be undone yet: {undone}. Retry the task"
        )
    return f"its {action} was half-done ({aliases_text(now)}); {undone}"


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


def _release(client: MlflowClient, lock: Lock, note: str) -> None:
    try:
        _log_param_once(client, lock.run_id, f"unlock.{lock.index}", note[:6000])
    except Exception as exc:  # the lock stays: this task's retry, or anyone after LOCK_STALE_S, takes it over
        log.warning(
            "Could not release promotion lock %s on run %s (%s: %s)", lock.index, lock.run_id, type(exc).__name__, exc
        )


def lock_holder(client: MlflowClient, name: str) -> dict | None:
    """Who holds `name`'s promotion lock now ({index, by, at}), or None when it is free."""
    require_model(client, name)
    for run_id in ledger_runs(client, name):
        index, holder = _last_lock(client.get_run(run_id).data.params)
        if holder is not None:
            return {"index": index, "by": holder["by"], "at": holder["at"]}
    return None
