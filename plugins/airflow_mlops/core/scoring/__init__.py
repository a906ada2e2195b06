"""Batch scoring with the champion: one day's unlabeled records -> one immutable Parquet partition of predictions.

``score_day`` reads ``<scoring.source>/<pipeline>_YYYY-MM-DD.csv`` (or ``.parquet``) in chunks of
``scoring.chunk_rows`` (bounded memory: 10M rows never sit in memory at once), checks every chunk as
the snapshot checks a source file (``data.check_frame``: columns, declared types, blanks, infinite
numbers, future dates; plus ids present and unique across the whole file), validates it with the
pipeline's Great Expectations suite minus the target's rules, scores it with the champion and appends
it to ``<mlops_home>/predictions/<pipeline>/day=YYYY-MM-DD/predictions.parquet``.

- The champion alias is resolved to a version once, and that version scores the whole day even if
  ``@champion`` moves meanwhile. No champion: ``NoChampionError`` (the operator skips, saying why).
- The partition is written into a temporary file of the same folder and renamed into place only
  when every row is scored (``fsutil.write_atomically``): a rerun of the day replaces it, a failure
  or a crash mid-write leaves the previous partition as it was, and bad input writes nothing. The folder is
  fsynced after the rename. A worker killed mid-write leaves its temp file: it is named after the task
  (``writer``), so the task's retry removes it whatever its age, and every run first sweeps the
  pipeline's temp files untouched for an hour (``sweep_partial_writes``, logging each and its bytes).
- Columns: the id columns, ``score`` (binary: the positive class's probability, ``core.labels``;
  multiclass: the predicted class's probability; regression: the prediction), ``predicted`` (the
  class with the highest probability, as scikit-learn's ``predict``; regression: the prediction),
  ``model_version``, ``data_digest`` and ``scored_at`` (one UTC timestamp per run).
- ``data_digest`` is ``sha256:`` of the input file's bytes, computed while streaming it (not
  ``data.content_digest``, which needs the whole frame in memory): the same file, the same digest.

Suite rules hold per chunk: row-level rules (types, ranges, sets, nulls) exactly as for the whole
file; the table's row count is checked against the whole file; aggregate rules (distinct counts, a
column's mean) see one chunk (at least half of ``chunk_rows`` rows, or the whole file when it fits).

Split by concern: ``day`` (``score_day``: the champion, the checks, the atomic write, the MLflow run), ``batch``
(finding, digesting and reading the day's file in chunks), ``scorer`` (a model's output as score and predicted).
"""

from __future__ import annotations

from airflow_mlops.core.scoring.batch import batch_file
from airflow_mlops.core.scoring.day import (
    GC_EVERY_CHUNKS,
    GC_EVERY_ROWS,
    PREDICTION_COLUMNS,
    PREDICTIONS_FILE,
    ROW_COUNT_RULES,
    STEP,
    BatchValidationFailed,
    NoChampionError,
    parse_day,
    partition_path,
    predictions_root,
    score_day,
    scoring_experiment,
    sweep_partial_writes,
)
from airflow_mlops.core.scoring.scorer import Scorer, predictions_table

__all__ = [
    "GC_EVERY_CHUNKS",
    "GC_EVERY_ROWS",
    "PREDICTIONS_FILE",
    "PREDICTION_COLUMNS",
    "ROW_COUNT_RULES",
    "STEP",
    "BatchValidationFailed",
    "NoChampionError",
    "Scorer",
    "batch_file",
    "parse_day",
    "partition_path",
    "predictions_root",
    "predictions_table",
    "score_day",
    "scoring_experiment",
    "sweep_partial_writes",
]
