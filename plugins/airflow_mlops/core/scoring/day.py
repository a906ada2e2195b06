"""``score_day``: one day's records scored with the champion into one immutable Parquet partition (see the package)."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import json
import logging
import tempfile
import time
import zoneinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops import settings
from airflow_mlops.core import fsutil, registry, tracking, training, validation
from airflow_mlops.core.data import SUFFIXES, check_frame
from airflow_mlops.core.errors import ConfigError, DataSourceError, MlopsError
from airflow_mlops.core.scoring.batch import UniqueIds, batch_file, check_size, read_chunks, scan
from airflow_mlops.core.scoring.scorer import Scorer, predictions_table

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Iterator

    import pandas as pd
    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.parquet"
#: What a partition holds besides the id columns.
PREDICTION_COLUMNS = ("score", "predicted", "model_version", "data_digest", "scored_at")
STEP = "score"
#: Table row-count rules are checked against the whole file, not per chunk.
ROW_COUNT_RULES = ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal")
#: A Great Expectations validation leaves reference cycles that hold its frame (~30 MB per 200k churn rows) until
#: Python's full garbage collection, which runs rarely: collect after this many validated rows or chunks, or the
#: memory of a 10M-row day grows with the file (peak 1.7 GB instead of 1.0 GB, measured). A full collection: ~0.2 s.
GC_EVERY_ROWS = 1_000_000
GC_EVERY_CHUNKS = 8


class NoChampionError(MlopsError):
    """The model has no champion yet: there is nothing to score with (the operator skips)."""


class BatchValidationFailed(DataSourceError):
    """The batch failed the pipeline's expectation suite (minus the target's rules); `report` holds the failures."""

    def __init__(self, message: str, report: validation.ValidationReport) -> None:
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------- where


def scoring_experiment(config: PipelineConfig) -> str:
    """The MLflow experiment holding one run per scored day of this pipeline."""
    return f"{config.name}-scoring"


def predictions_root() -> Path:
    return settings.mlops_home() / "predictions"


def partition_path(pipeline: str, day: dt.date, root: Path | None = None) -> Path:
    """``<root>/<pipeline>/day=YYYY-MM-DD/predictions.parquet`` (root: ``<mlops_home>/predictions``)."""
    return Path(root or predictions_root()) / pipeline / f"day={day.isoformat()}" / PREDICTIONS_FILE


def parse_day(value: dt.date | str) -> dt.date:
    """A date, or a DataSourceError naming the value when it is not YYYY-MM-DD."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10] if len(text) > 10 and text[10] in "T " else text)
    except ValueError:
        shown = repr(text if len(text) <= 40 else text[:37] + "...")
        raise DataSourceError(f"day {shown} is not a date: use YYYY-MM-DD, e.g. 2026-02-12") from None


# --------------------------------------------------------------------------- a day


def score_day(
    config: PipelineConfig,
    day: dt.date | str,
    *,
    client: MlflowClient,
    source: str | None = None,
    tags: dict[str, str] | None = None,
    allowed_roots: list[Path] | None = None,
    root: Path | None = None,
    writer: str | None = None,
) -> dict:
    """Score `day`'s records with the champion into one Parquet partition (see the module docstring).

    `source` overrides ``scoring.source`` (a file, or a folder of daily files); `tags` go on the MLflow
    run (the operator's Airflow tags); `root` overrides ``<mlops_home>/predictions``; `writer` names the
    task across its retries (e.g. ``dag/run/task/map_index``): its temp files carry it, so a retry removes
    those of a killed try at any age (``sweep_partial_writes``). Raises
    NoChampionError (nothing to score with), BatchValidationFailed, DataSourceError/ConfigError (bad
    input, nothing written). Returns a JSON-able summary: day, rows, model_name, model_version, path,
    data_digest, seconds, rows_per_s, scored_at, source, chunks, mlflow_run_id.
    """
    started = time.perf_counter()
    sweep_partial_writes(config.name, root, writer=writer)
    day = parse_day(day)
    _check_not_future(day, config)
    if not config.source.id_columns:
        raise ConfigError(
            f"{config.path}: source.id_columns: scoring needs at least one id column (e.g. [customer_id]): "
            f"predictions are joined with their labels on it"
        )
    champion = registry.get_alias_version(client, config.model_name, registry.CHAMPION)
    if champion is None:  # before the batch is looked for: a fresh install has neither, and that is no failure
        raise NoChampionError(
            f"{config.model_name} has no champion to score with: run {config.name}_retrain first. "
            f"Nothing was scored for {day.isoformat()}"
        )
    path = batch_file(config, day, source=source, allowed_roots=allowed_roots)
    fmt = next((f for f, suffix in SUFFIXES.items() if path.suffix.lower() == suffix), config.source.format)
    check_size(path, config)

    version = str(champion.version)
    model_uri = f"models:/{config.model_name}/{version}"  # pinned: the alias may move while we score
    tracking.configure(client)
    with tempfile.TemporaryDirectory(prefix="mlops-score-") as tmp:
        model = training.load_model(model_uri, dst_path=tmp, allow_pickle=config.security.allow_pickle_models)
    scorer = Scorer.of(model, config)
    log.info(
        "Scoring %s for %s with %s version %s (models:/%s@champion, pinned for the whole day)",
        path,
        day,
        config.model_name,
        version,
        config.model_name,
    )

    stat = path.stat()
    digest = scan(path, fmt)
    scored_at = dt.datetime.now(dt.UTC)
    target = partition_path(config.name, day, root)
    batch = _Batch(config, day, path, fmt, scorer, version, digest, scored_at, started, stat)
    tables = batch.tables()
    first = next(tables)  # bad input in the first chunk (most days: the only one) fails before any folder exists
    metadata = {
        b"airflow_mlops": json.dumps(
            {
                "pipeline": config.name,
                "day": day.isoformat(),
                "model_name": config.model_name,
                "model_version": version,
                "data_digest": digest,
                "scored_at": scored_at.isoformat(),
                "source": str(path),
            }
        ).encode()
    }
    created = not target.parent.exists()
    try:
        fsutil.write_atomically(
            target, lambda fh: _write_tables(fh, itertools.chain([first], tables), metadata), writer=writer
        )
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                target.parent.rmdir()  # only when empty: the folder of an earlier partition is never removed
        raise
    seconds = time.perf_counter() - started
    summary = {
        "pipeline": config.name,
        "day": day.isoformat(),
        "rows": batch.rows,
        "chunks": batch.chunks,
        "model_name": config.model_name,
        "model_version": version,
        "path": str(target),
        "data_digest": digest,
        "seconds": round(seconds, 3),
        "rows_per_s": round(batch.rows / seconds, 1) if seconds > 0 else None,
        "scored_at": scored_at.isoformat(),
        "source": str(path),
    }
    log.info(
        "Scored %d rows of %s for %s with %s v%s in %.1f s (%.0f rows/s, %d chunk(s)) -> %s (input %s)",
        batch.rows,
        path,
        day,
        config.model_name,
        version,
        seconds,
        summary["rows_per_s"] or 0,
        batch.chunks,
        target,
        digest,
    )
    summary["mlflow_run_id"] = _log_run(client, config, summary, tags or {})
    return summary


def sweep_partial_writes(
    pipeline: str, root: Path | None = None, *, writer: str | None = None
) -> list[tuple[Path, int]]:
    """Remove the temp files that killed scoring writes left in `pipeline`'s partitions (a killed worker's may hold
    gigabytes): `writer`'s own at any age, anyone's untouched for ``fsutil.STALE_TEMP_S`` (a live write touches its
    file at every chunk). Logs each with its size; returns (path, bytes) of each."""
    folder = Path(root or predictions_root()) / pipeline
    return fsutil.sweep_temps(folder, f"day=*/.{PREDICTIONS_FILE}.*.tmp", writer=writer)


def _check_not_future(day: dt.date, config: PipelineConfig) -> None:
    """A day after today (UTC, or in the schedule's time zone if it is already later there) has no records yet."""
    now = dt.datetime.now(dt.UTC)
    today = max(now.date(), now.astimezone(zoneinfo.ZoneInfo(config.schedule.timezone)).date())
    if day > today:
        raise DataSourceError(
            f"day {day.isoformat()} is in the future (today is {today.isoformat()}): its records cannot exist yet, "
            f"nothing was scored; pass the day to score (as_of, YYYY-MM-DD)"
        )


class _Batch:
    """The day's file as a stream of scored Arrow tables, one per chunk, each checked and validated first."""

    def __init__(
        self,
        config: PipelineConfig,
        day: dt.date,
        path: Path,
        fmt: str,
        scorer: Scorer,
        version: str,
        digest: str,
        scored_at: dt.datetime,
        started: float,
        stat: os.stat_result,
    ) -> None:
        self.config, self.day, self.path, self.fmt, self.scorer = config, day, path, fmt, scorer
        self.version, self.digest, self.scored_at, self.started, self.stat = version, digest, scored_at, started, stat
        self.ids = UniqueIds(list(config.source.id_columns), path)
        self.suite = str(config.resolve(config.expectation_suite))
        self.rows = self.chunks = 0
        self._uncollected_rows = self._uncollected_chunks = 0

    def tables(self) -> Iterator[pa.Table]:
        for frame in read_chunks(self.path, self.fmt, self.config):
            frame = self._checked(frame)
            table = predictions_table(
                self.scorer,
                frame,
                id_columns=self.config.source.id_columns,
                model_version=self.version,
                data_digest=self.digest,
                scored_at=self.scored_at,
            )
            self.rows += len(frame)
            self.chunks += 1
            elapsed = time.perf_counter() - self.started
            log.info(
                "%s: %s rows scored so far (%d chunk(s), %.0f rows/s)",
                self.path.name,
                f"{self.rows:,}",
                self.chunks,
                self.rows / elapsed if elapsed > 0 else 0.0,
            )
            yield table
        self._check_row_count()
        self._check_unchanged()

    def _checked(self, frame: pd.DataFrame) -> pd.DataFrame:
        config = self.config
        frame = check_frame(frame, config, self.path, without=(config.target,))
        missing = [c for c in self.scorer.features if c not in frame.columns]
        if missing:
            raise DataSourceError(
                f"{self.path}: missing column(s) {', '.join(map(repr, missing))} that the champion "
                f"(version {self.version}) takes as input; present: {', '.join(map(str, frame.columns))}. Fix the "
                f"export, or retrain so the champion matches the config's features"
            )
        self.ids.add(frame)
        first, last = int(frame.index[0]) + 1, int(frame.index[-1]) + 1
        report = validation.validate_frame(
            frame,
            self.suite,
            data_name=f"{config.name} batch {self.day.isoformat()} (data rows {first}-{last})",
            without_columns=(config.target,),
            without_rules=ROW_COUNT_RULES,
        )
        if not report.success:
            raise BatchValidationFailed(
                f"{self.path}: the batch for {self.day.isoformat()} failed validation, nothing was written (the "
                f"file is kept as it is):\n{validation.describe_failures(report)}",
                report,
            )
        self._uncollected_rows += len(frame)
        self._uncollected_chunks += 1
        if self._uncollected_rows >= GC_EVERY_ROWS or self._uncollected_chunks >= GC_EVERY_CHUNKS:
            gc.collect()  # see GC_EVERY_ROWS
            self._uncollected_rows = self._uncollected_chunks = 0
        return frame

    def _check_unchanged(self) -> None:
        """The file digested is the file scored: an export still being written (or rewritten) is refused."""
        now = self.path.stat()
        if (now.st_size, now.st_mtime_ns) != (self.stat.st_size, self.stat.st_mtime_ns):
            raise DataSourceError(
                f"{self.path}: the file changed while it was being scored (size {self.stat.st_size} -> {now.st_size} "
                f"bytes), nothing was written; score the day again once the upstream export has finished"
            )

    def _check_row_count(self) -> None:
        """The suite's table row-count rules, against the whole file."""
        data = json.loads(Path(self.suite).read_text(encoding="utf-8"))
        failed = []
        rules = [item for item in data.get("expectations") or [] if item.get("type") in ROW_COUNT_RULES]
        for item in rules:
            kwargs = dict(item.get("kwargs") or {})
            if item["type"] == "expect_table_row_count_to_equal":
                ok = self.rows == kwargs.get("value")
            else:
                low, high = kwargs.get("min_value"), kwargs.get("max_value")
                ok = (low is None or (self.rows > low if kwargs.get("strict_min") else self.rows >= low)) and (
                    high is None or (self.rows < high if kwargs.get("strict_max") else self.rows <= high)
                )
            if not ok:
                failed.append(validation.ExpectationFailure(item["type"], None, self.rows, kwargs=kwargs))
        if failed:
            report = validation.ValidationReport(
                success=False,
                evaluated=len(rules),
                failed=failed,
                result={},
                suite_name=str(data.get("name") or ""),
                suite_path=self.suite,
                data_name=f"{self.config.name} batch {self.day.isoformat()}",
            )
            raise BatchValidationFailed(
                f"{self.path}: the batch for {self.day.isoformat()} failed validation, nothing was written:\n"
                f"{validation.describe_failures(report)}",
                report,
            )


def _write_tables(fh: Any, tables: Iterable[pa.Table], metadata: dict[bytes, bytes]) -> None:
    """Append each table to one Parquet file (one row group per chunk); every chunk is cast to the first's schema."""
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    try:
        for table in tables:
            if writer is None or schema is None:
                schema = table.schema.with_metadata(metadata)
                writer = pq.ParquetWriter(fh, schema)
            elif not table.schema.equals(schema, check_metadata=False):
                table = _conform(table, schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        changed = [
            f"{f.name!r} ({schema.field(f.name).type} -> {f.type})"
            for f in table.schema
            if f.name in schema.names and schema.field(f.name).type != f.type
        ]
        raise DataSourceError(
            f"a column changes type within the batch: {', '.join(changed) or exc}; an id column must have one type "
            f"in every row (e.g. all text): fix the export, or declare it in source.dtypes"
        ) from None


# --------------------------------------------------------------------------- evidence


def _log_run(client: MlflowClient, config: PipelineConfig, summary: dict, tags: dict[str, str]) -> str:
    """One MLflow run in ``<pipeline>-scoring`` with the summary (rows, version, digest, path)."""
    import mlflow

    run_tags = {
        **tags,
        "mlops.step": STEP,
        "mlops.model": config.model_name,
        "model.version": summary["model_version"],
        "data.digest": summary["data_digest"],
        "data.digest_of": "file bytes (sha256)",
        "scoring.day": summary["day"],
        "code.version": tracking.code_version(),
    }
    with tracking.active_run(client, scoring_experiment(config), f"score-{summary['day']}", run_tags) as run_id:
        mlflow.log_params(
            {
                "day": summary["day"],
                "model_name": config.model_name,
                "model_version": summary["model_version"],
                "source": summary["source"],
                "path": summary["path"],
                "chunk_rows": config.scoring.chunk_rows,
            }
        )
        mlflow.log_metrics(
            {
                "rows": float(summary["rows"]),
                "chunks": float(summary["chunks"]),
                "seconds": float(summary["seconds"]),
                "rows_per_s": float(summary["rows_per_s"] or 0.0),
            }
        )
        mlflow.log_dict(summary, "scoring/summary.json")
    return run_id
