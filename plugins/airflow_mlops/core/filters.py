"""MLflow search-filter helpers (light: no mlflow import)."""

from __future__ import annotations


def quote_filter_value(value: str) -> str:
    """A string literal for an MLflow search filter (MLflow filters have no escape character)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"{value!r} contains both quote characters; MLflow filters cannot express it")
