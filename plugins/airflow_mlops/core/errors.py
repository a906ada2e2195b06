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
