"""Errors raised by core: each says what was wrong, where, and what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


class MlopsError(Exception):
    """Base class. Operators turn these into AirflowFailException: a retry cannot fix them."""


class ConfigError(MlopsError):
    """The pipeline config file is invalid (names the file and the key)."""


class DataSourceError(MlopsError):
    """The source data cannot be read or is malformed (names the file, line or column)."""


class TrainingError(MlopsError):
    """The model cannot be trained on this data (names the column and what to do)."""


class EvaluationError(MlopsError):
    """The champion/challenger comparison cannot be made (names the model, version or column)."""


class SplitError(TrainingError):
    """The snapshot cannot be split into train, validation and test rows (names the window and the keys)."""


class PerformanceError(MlopsError):
    """Predictions or delayed labels cannot be judged (names the day, the file, the column and the values)."""


class NothingToCheck(MlopsError):
    """A performance check found nothing to judge yet (no champion, labels not arrived): a skip, with the reason."""


class SourceUnavailableError(Exception):
    """A source's server cannot be reached (a database down, a connection lost mid-read); names the connection.

    Not an MlopsError on purpose: a retry can fix it, so Airflow retries the task.
    """


class MlflowUnavailableError(Exception):
    """The MLflow server cannot be reached (down, timed out, or 429/5xx after MLflow's retries); names the URI.

    Not an MlopsError on purpose: a retry can fix it, so Airflow retries the task with backoff.
    """


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or while handling."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def unreachable_cause(exc: BaseException) -> BaseException | None:
    """The connection error or timeout in `exc`'s chain (the MLflow server is down or hung), else None."""
    import requests

    unreachable = (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError)
    return next((e for e in exception_chain(exc) if isinstance(e, unreachable)), None)
