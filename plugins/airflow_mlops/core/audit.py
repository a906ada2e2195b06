"""Re-check, from MLflow alone, that a verdict was judged on rows neither model saw.

Three outcomes: **clean** (every record read, no scored row seen by either model), **leak** (scored
rows a model saw, named by hash and date) and **unverified** (a record is missing, unreadable or
hashed over other columns: the audit cannot say, and says why). Unverified is never reported clean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import EvaluationError
from airflow_mlops.core.row_records import TEST_ROWS_ARTIFACT, read_record_table, run_record

if TYPE_CHECKING:
    from mlflow import MlflowClient

CLEAN, LEAK, UNVERIFIED = "clean", "leak", "unverified"
_NAMED_ROWS = 20  # leaked rows listed by hash (and date) in the result


def audit_verdict(client: MlflowClient, model_name: str, version: str) -> dict[str, Any]:
    """Audit `version`'s verdict: reads the evaluation run's test_rows.parquet (tag evaluation.run_id), the
    champion's and the challenger's training_rows.parquet, and counts the scored test rows found in either.

    Returns {model, version, champion_version, evaluation_run_id, scored, excluded, seen_by_champion,
    seen_by_challenger, outcome, leaked_rows, notes, ok}; ok is True only when the outcome is clean.
    Raises EvaluationError when the version has no evaluation to audit.
    """
    import tempfile

    import numpy as np
    import pyarrow.parquet as pq

    mv = client.get_model_version(model_name, str(version))
    run_id = mv.tags.get("evaluation.run_id")
    if not run_id:
        raise EvaluationError(
            f"{model_name} version {version} has no evaluation (tag evaluation.run_id): nothing to audit"
        )
    champion_version = mv.tags.get("evaluation.champion_version", "none")
    path = f"evaluation/{TEST_ROWS_ARTIFACT}"
    with tempfile.TemporaryDirectory(prefix="mlops-audit-") as tmp:
        try:
            table = pq.read_table(client.download_artifacts(run_id, path, tmp))
            test = read_record_table(table, f"{path} of run {run_id}")
        except Exception as exc:  # any failure here means: no usable record of what was scored
            raise EvaluationError(
                f"{model_name} version {version}: evaluation run {run_id} has no readable {path} ({exc}); "
                f"it was evaluated before test rows were recorded"
            ) from None
    scored_mask = np.asarray(table.column("scored").to_pylist(), dtype=bool)
    scored = test.hashes[scored_mask]
    dates = _dates(table, scored_mask)
    notes: list[str] = []
    result: dict[str, Any] = {
        "model": model_name,
        "version": str(version),
        "champion_version": champion_version,
        "evaluation_run_id": run_id,
        "scored": len(scored),
        "excluded": len(test.hashes) - len(scored),
        "seen_by_champion": None,
        "seen_by_challenger": None,
        "leaked_rows": [],
        "notes": notes,
    }
    unverified = False
    for role, who in (("challenger", str(version)), ("champion", champion_version)):
        if who == "none":
            notes.append(f"no {role}: nothing to compare")
            continue
        record, why = run_record(client, client.get_model_version(model_name, who).run_id)
        if record is None:
            notes.append(f"unverified: the {role} v{who}: {why}")
            unverified = True
        elif record.columns != test.columns or record.scheme != test.scheme:
            notes.append(
                f"unverified: the {role} v{who}'s rows were hashed over other columns or with another "
                f"hash scheme than the test rows"
            )
            unverified = True
        else:
            seen = np.isin(scored, record.hashes)
            result[f"seen_by_{role}"] = int(seen.sum())
            for i in np.flatnonzero(seen)[: _NAMED_ROWS - len(result["leaked_rows"])]:
                result["leaked_rows"].append({"row_hash": f"{int(scored[i]):016x}", "date": dates[i], "seen_by": role})
    if any(result[f"seen_by_{r}"] for r in ("champion", "challenger")):
        outcome = LEAK
    else:
        outcome = UNVERIFIED if unverified else CLEAN
    result["outcome"], result["ok"] = outcome, outcome == CLEAN
    return result


def _dates(table: Any, mask: Any) -> list[str | None]:
    """The scored rows' dates from the record (None for an undated one)."""
    other = [c for c in table.column_names if c not in ("row_hash", "role", "scored")]
    if not other:
        return [None] * int(mask.sum())
    values = table.column(other[0]).to_pylist()
    return [values[i] for i in range(len(values)) if mask[i]]
