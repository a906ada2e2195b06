"""What a refused or failed alias move raises."""

from __future__ import annotations

from airflow_mlops.core.errors import MlopsError


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
