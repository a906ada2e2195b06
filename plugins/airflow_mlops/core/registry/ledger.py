"""The ledger: every alias move and decision, as version tags and in a `champion_history.json` artifact of a
run dedicated to the model (one ledger run per registered model, in the `airflow-mlops-ledger` experiment)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import threading
import time
from typing import TYPE_CHECKING

from airflow_mlops.core.filters import quote_filter_value
from airflow_mlops.core.registry.versions import (
    CHAMPION,
    MOVED_ALIASES,
    NOT_FOUND_CODES,
    PREVIOUS_CHAMPION,
    require_model,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger(__name__)

#: The experiment holding one ledger run per registered model.
LEDGER_EXPERIMENT = "airflow-mlops-ledger"
#: The ledger artifact (a JSON list of moves, oldest first) in the model's ledger run.
LEDGER_ARTIFACT = "champion_history.json"
#: Registered-model tag: the id of the model's ledger run.
LEDGER_RUN_TAG = "champion_history.run_id"
#: Run tag that marks a ledger run and names its model (used when the model tag is missing).
LEDGER_MODEL_TAG = "mlops.ledger.model"
_MAX_TAG_VALUE = 5000


def ledger_run_id(client: MlflowClient, name: str, *, create: bool) -> str | None:
    """The id of `name`'s ledger run: the registered-model tag, else a search by run tag, else a new run."""
    from mlflow.exceptions import MlflowException

    from airflow_mlops.core import tracking

    run_id = client.get_registered_model(name).tags.get(LEDGER_RUN_TAG)
    if run_id:
        try:
            if client.get_run(run_id).info.lifecycle_stage == "active":
                return run_id
        except MlflowException as exc:
            if exc.error_code not in NOT_FOUND_CODES:
                raise
        log.warning("%s: ledger run %s (tag %s) is gone; looking for another", name, run_id, LEDGER_RUN_TAG)
    runs = ledger_runs(client, name, tagged=False)
    if runs:
        tag_ledger_run(client, name, runs[0])
        return runs[0]
    if not create:
        return None
    experiment_id = tracking.ensure_experiment(client, LEDGER_EXPERIMENT)
    run = client.create_run(experiment_id, run_name=f"{name} ledger", tags={LEDGER_MODEL_TAG: name})
    client.set_terminated(run.info.run_id, status="FINISHED")
    # Two first promotions at the same moment may both get here and each make a ledger run. The lock
    # looks at every ledger run of the model (`lock._rival_holder`), and `history` merges them (the extra
    # one cannot be deleted: that needs MANAGE on the ledger experiment, promoters have EDIT).
    oldest = ledger_runs(client, name, tagged=False)[0]
    tag_ledger_run(client, name, oldest)
    return oldest


def ledger_runs(client: MlflowClient, name: str, *, tagged: bool = True) -> list[str]:
    """Ids of every active ledger run of `name`, oldest first (the model-tagged one first when `tagged`)."""
    found = [run.info.run_id for run in _search_ledger_runs(client, name)]
    tag = client.get_registered_model(name).tags.get(LEDGER_RUN_TAG) if tagged else None
    return [tag] + [r for r in found if r != tag] if tag in found else found


def _search_ledger_runs(client: MlflowClient, name: str) -> list[Run]:
    """Every active ledger run of `name` (MLflow Run objects), oldest first."""
    exp = client.get_experiment_by_name(LEDGER_EXPERIMENT)
    if exp is None:
        return []
    return list(
        client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{LEDGER_MODEL_TAG}` = {quote_filter_value(name)}",
            order_by=["attributes.start_time ASC", "attributes.run_id ASC"],
            max_results=50,
        )
    )


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


def tag_ledger_run(client: MlflowClient, name: str, run_id: str) -> None:
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


def append_ledger(client: MlflowClient, name: str, entries: list[dict]) -> None:
    """Read, append, rewrite the whole list in one artifact write (under the promotion lock).

    Entries already there (same time, alias and target: a move recorded again by a recovery) are skipped.
    """
    if not entries:
        return
    run_id = ledger_run_id(client, name, create=True)
    assert run_id is not None
    ledger = _read_ledger(client, run_id)
    seen = {(e.get("at"), e.get("alias"), e.get("to")) for e in ledger}
    new = [e for e in entries if (e["at"], e["alias"], e["to"]) not in seen]
    if new:
        client.log_text(run_id, json.dumps(ledger + new, indent=2), LEDGER_ARTIFACT)


def history(client: MlflowClient, name: str) -> list[dict]:
    """Every recorded alias move of `name`, oldest first: {at, model, action, alias, from, to, by, actor, reason}.

    A decision that moved nothing (`record_decision`: a person's rejection) has alias/from/to None and a `version`.
    """
    require_model(client, name)
    merged: dict[tuple, dict] = {}
    for run_id in ledger_runs(client, name):  # usually one; two first promotions at once may have made two
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


def record_move(
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
            _set_tags(
                client,
                name,
                new,
                {
                    "champion.promoted_at": at,
                    "champion.promoted_by": by,
                    "champion.reason": reason,
                    "champion.action": action,
                    "champion.replaced": old or "",
                    "champion.replaced_previous": before[PREVIOUS_CHAMPION] or "",
                },
            )
        if old is not None:
            _set_tags(
                client,
                name,
                old,
                {
                    "champion.demoted_at": at,
                    "champion.demoted_by": by,
                    "champion.demoted_reason": reason,
                    "champion.replaced_by": new or "",
                },
            )
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
    append_ledger(client, name, entries)


def _set_tags(client: MlflowClient, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value)[:_MAX_TAG_VALUE])


def describe_actor(actor: dict[str, str]) -> str:
    """The `actor` entry (e.g. `cli:user@host`, `airflow-user:alice` who approved a task's promotion), else
    `airflow:<dag_id>/<run_id>/<task_id>` for a task, else the `user` entry."""
    if actor.get("actor"):
        return str(actor["actor"])
    if actor.get("airflow.dag_id"):
        return "airflow:" + "/".join(
            str(actor.get(k, "?")) for k in ("airflow.dag_id", "airflow.run_id", "airflow.task_id")
        )
    for key in ("user",):
        if actor.get(key):
            return str(actor[key])
    return ", ".join(f"{k}={v}" for k, v in sorted(actor.items())) or "unknown"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
