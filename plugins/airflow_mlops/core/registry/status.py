"""`airflow-mlops status`: each model's aliases and latest decision, in a few reads per model."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from airflow_mlops.core.filters import quote_filter_value
from airflow_mlops.core.registry.versions import (
    CHALLENGER,
    CHAMPION,
    DIGEST_TAG,
    PREVIOUS_CHAMPION,
    registered_models,
    unless_missing,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

#: Version tags written by the evaluation step (read by `status`).
DECISION_TAG = "decision"
DECISION_REASONS_TAG = "decision.reasons"
DECISION_AT_TAG = "decision.at"
#: The gate's panels whose one-line summaries the evaluated version carries as tags `evaluation.<name>`
#: (core/evaluation/evidence.py writes them; core/evaluation/panels.py runs the panels).
PANEL_NAMES = ("slices", "fairness", "robustness", "importance")


def status(client: MlflowClient) -> list[dict]:
    """One row per registered model: its aliases, its newest version, the latest decision (challenger's, else the
    newest decided version's). A few reads per model, however many versions it has."""
    rows = []
    for rm in registered_models(client):
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
            versions[number] = unless_missing(client.get_model_version, name, number)
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
        "reasons": json_list(ev_tags.get(DECISION_REASONS_TAG)),
        "decided_at": ev_tags.get(DECISION_AT_TAG),
        "data_digest": ev_tags.get(DIGEST_TAG),
        "evaluation_run_id": ev_tags.get("evaluation.run_id"),
        "trigger": ev_tags.get("mlops.trigger"),  # schedule | manual | drift | ...: what started its run
        "trigger_summary": ev_tags.get("mlops.trigger.summary"),
        # {panel: summary} of the verdict's panels; {} for a verdict without them (older, or panels off)
        "panel_summaries": {n: ev_tags[f"evaluation.{n}"] for n in PANEL_NAMES if ev_tags.get(f"evaluation.{n}")},
    }


def latest_decided_version(client: MlflowClient, name: str) -> ModelVersion | None:
    """The newest version of `name` the gate decided on (tag `decision`): one search, one result."""
    found = client.search_model_versions(
        f"name = {quote_filter_value(name)} and tags.`{DECISION_TAG}` LIKE '%'",
        max_results=1,
        order_by=["version_number DESC"],
    )
    return found[0] if found else None


def json_list(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
