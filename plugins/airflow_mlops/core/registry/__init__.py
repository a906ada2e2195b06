"""MLflow model-registry protocol, split by concern:

- ``versions``: register a challenger, read and write aliases (READY versions only, read back), find versions;
- ``promotion``: promote, restore, rollback and record a decision (compare-and-swap, undo on failure);
- ``ledger``: every move and decision recorded as version tags and in the model's ledger run (`history`);
- ``lock``: the promotion lock, one writer of a model's aliases at a time, across processes;
- ``status``: each model's aliases and latest decision;
- ``errors``: what a refused or failed move raises.

Aliases, not stages (``champion``, ``challenger``, ``previous_champion``). The time limits (``lock.LOCK_WAIT_S``,
``lock.LOCK_STALE_S``, ``ledger.LEDGER_RUNS_TTL_S``) are read where they are defined: change them there.
"""

from __future__ import annotations

from airflow_mlops.core.registry.errors import (
    AliasWriteError,
    ChampionMovedError,
    PromotionError,
    PromotionInProgressError,
    UnknownModelError,
)
from airflow_mlops.core.registry.ledger import (
    LEDGER_ARTIFACT,
    LEDGER_EXPERIMENT,
    LEDGER_MODEL_TAG,
    LEDGER_RUN_TAG,
    append_ledger,
    describe_actor,
    history,
    recorded_moves,
)
from airflow_mlops.core.registry.lock import lock_holder
from airflow_mlops.core.registry.promotion import promote, record_decision, restore, rollback
from airflow_mlops.core.registry.status import (
    DECISION_AT_TAG,
    DECISION_REASONS_TAG,
    DECISION_TAG,
    json_list,
    latest_decided_version,
    status,
    status_row,
)
from airflow_mlops.core.registry.versions import (
    CHALLENGER,
    CHAMPION,
    DIGEST_TAG,
    MOVED_ALIASES,
    PREVIOUS_CHAMPION,
    WINDOW_END_TAG,
    alias_versions,
    get_alias_version,
    newest_versions,
    read_aliases,
    register_challenger,
    require_model,
    set_alias,
    versions_numbered,
    wait_until_ready,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DECISION_AT_TAG",
    "DECISION_REASONS_TAG",
    "DECISION_TAG",
    "DIGEST_TAG",
    "LEDGER_ARTIFACT",
    "LEDGER_EXPERIMENT",
    "LEDGER_MODEL_TAG",
    "LEDGER_RUN_TAG",
    "MOVED_ALIASES",
    "PREVIOUS_CHAMPION",
    "WINDOW_END_TAG",
    "AliasWriteError",
    "ChampionMovedError",
    "PromotionError",
    "PromotionInProgressError",
    "UnknownModelError",
    "alias_versions",
    "append_ledger",
    "describe_actor",
    "get_alias_version",
    "history",
    "json_list",
    "latest_decided_version",
    "lock_holder",
    "newest_versions",
    "promote",
    "read_aliases",
    "record_decision",
    "recorded_moves",
    "register_challenger",
    "require_model",
    "restore",
    "rollback",
    "set_alias",
    "status",
    "status_row",
    "versions_numbered",
    "wait_until_ready",
]
