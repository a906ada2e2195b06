"""Errors raised by core: each says what was wrong, where, and what to do."""

from __future__ import annotations


class MlopsError(Exception):
    """Base class. Operators turn these into AirflowFailException: a retry cannot fix them."""


class ConfigError(MlopsError):
    """The pipeline config file is invalid (names the file and the key)."""


class DataSourceError(MlopsError):
    """The source data cannot be read or is malformed (names the file, line or column)."""


class TrainingError(MlopsError):
    """The model cannot be trained on this data (names the column and what to do)."""


class MlflowUnavailableError(Exception):
    """The MLflow server cannot be reached (down, timed out, or 429/5xx after MLflow's retries); names the URI.

    Not an MlopsError on purpose: a retry can fix it, so Airflow retries the task with backoff.
    """
