"""Bodies of the Models page's POSTs as Pydantic models: FastAPI refuses a missing, unknown or ill-typed field with a
422 that names it, before any registry or Airflow call."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator


class _Body(BaseModel):
    # unknown fields are refused (a misspelt "to_verison" must not roll back to another version); numbers are
    # accepted where a version string is expected (`"expected_champion": 3`), as the page's API always did
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, str_strip_whitespace=True)


class RollbackRequest(_Body):
    """POST /api/models/{name}/rollback: move `champion` back, if it is still `expected_champion`."""

    reason: str
    expected_champion: str
    to_version: str | None = None

    @field_validator("reason")
    @classmethod
    def _reason_given(cls, value: str) -> str:
        if not value:
            raise ValueError("a reason is required: it is recorded in the ledger")
        return value

    @field_validator("expected_champion")
    @classmethod
    def _champion_given(cls, value: str) -> str:
        if not value:
            raise ValueError(
                "expected_champion is required: the champion version you decided against (the page "
                "sends the one it shows); the rollback is refused if the champion has moved since"
            )
        return value

    @field_validator("to_version")
    @classmethod
    def _blank_is_previous(cls, value: str | None) -> str | None:
        return value or None


class ApprovalAnswer(_Body):
    """POST /api/models/{name}/approvals: approve or reject the promotion `dag_id`/`run_id` waits for."""

    dag_id: str
    run_id: str
    decision: Literal["approve", "reject"]
    comment: str = ""

    @field_validator("dag_id", "run_id")
    @classmethod
    def _id_given(cls, value: str) -> str:
        if not value:
            raise ValueError("dag_id and run_id of the request are required")
        return value

    @field_validator("decision", mode="before")
    @classmethod
    def _decision_lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value
