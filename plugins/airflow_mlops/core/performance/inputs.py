"""What a performance check reads: the day's predictions (written by batch scoring) and its delayed labels.

Predictions of day D: ``<mlops_home>/predictions/<pipeline>/day=YYYY-MM-DD/predictions.parquet`` with the
id columns, ``score`` (binary: the positive class's probability; regression: the prediction), ``predicted``
(class or prediction), ``model_version``, ``data_digest`` and ``scored_at``. Labels of day D: a file
``<scoring.labels>/<pipeline>_labels_YYYY-MM-DD.csv`` (or ``.parquet``) with the id columns and the target
(and the date column, when the config has one): the outcomes OF day D, arriving by D + ``label_delay_days``.
Every problem is a ``PerformanceError`` naming the day, the file, the column and the values; nothing is
written before the inputs are known good.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from typing import TYPE_CHECKING, Any

from airflow_mlops import settings
from airflow_mlops.core.errors import DataSourceError, PerformanceError
from airflow_mlops.core.paths import resolve_source, source_roots

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)

#: The columns batch scoring writes besides the id columns (the contract with core.scoring).
PREDICTION_COLUMNS = ("score", "predicted", "model_version")
PREDICTIONS_FILE = "predictions.parquet"
LABEL_SUFFIXES = (".csv", ".parquet")
MAX_LISTED = 5


def predictions_path(config: PipelineConfig, day: dt.date) -> Path:
    """Where batch scoring writes the predictions of `day`: one Parquet file per day (a partition)."""
    return settings.mlops_home() / "predictions" / config.name / f"day={day.isoformat()}" / PREDICTIONS_FILE


def read_predictions(config: PipelineConfig, day: dt.date) -> pd.DataFrame:
    """The predictions of `day`; a PerformanceError naming the file when they are missing or malformed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = predictions_path(config, day)
    if not path.is_file():
        raise PerformanceError(
            f"{config.name}: there are no predictions for {day} ({path} does not exist), so its labels cannot be "
            f"judged: score the day first ({config.name}_scoring with as_of={day}), then re-run this check"
        )
    try:
        frame = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise PerformanceError(
            f"{path}: the predictions of {day} are not a readable Parquet file ({exc}); re-score the day"
        ) from None
    wanted = [*config.source.id_columns, *PREDICTION_COLUMNS]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise PerformanceError(
            f"{path}: the predictions of {day} lack column(s) {', '.join(map(repr, missing))} (present: "
            f"{', '.join(map(str, frame.columns))}); the join needs the id columns (source.id_columns) and "
            f"{', '.join(PREDICTION_COLUMNS)}: re-score the day"
        )
    if not config.source.id_columns:
        raise PerformanceError(
            f"{config.path}: source.id_columns is empty: predictions and labels are joined on "
            f"them; name the columns that identify a record (e.g. customer_id)"
        )
    bad = frame["score"].isna()
    if config.task != "multiclass_classification" and bad.any():
        raise PerformanceError(f"{path}: {int(bad.sum())} prediction(s) of {day} have no score; re-score the day")
    return frame


# --------------------------------------------------------------------------- labels


def labels_folder(config: PipelineConfig, source: str | None = None) -> Path:
    """The configured labels folder (or the `source` override: a folder or one file), relative to the project."""
    where = source or config.scoring.labels
    if not where:
        raise PerformanceError(
            f"{config.path}: scoring.labels is not set: there is no labels folder to read "
            f"(set it, or pass the labels file as `source`)"
        )
    return config.resolve(where)


def find_labels(
    config: PipelineConfig, day: dt.date, *, source: str | None = None, allowed_roots: list[Path] | None = None
) -> Path | None:
    """The labels file of `day` (``*_labels_YYYY-MM-DD.csv|.parquet`` in the folder, or the `source` file);
    None when it has not arrived. The path must lie in an allowed folder (``paths.source_roots``)."""
    where = labels_folder(config, source)
    try:
        real = resolve_source(where, allowed_roots or source_roots(config))
    except DataSourceError as exc:
        raise PerformanceError(f"labels: {exc}") from None
    if real.is_file():
        return real
    if not real.is_dir():
        return None
    found = sorted(
        p
        for p in real.iterdir()
        if p.is_file()
        and p.suffix in LABEL_SUFFIXES
        and p.stem.endswith(f"_labels_{day.isoformat()}")
        and not p.name.startswith(".")
    )
    if len(found) > 1:
        raise PerformanceError(
            f"{real}: {len(found)} labels files for {day} ({', '.join(p.name for p in found)}); keep exactly one"
        )
    if found:
        resolve_source(found[0], allowed_roots or source_roots(config))  # a symlink may point elsewhere
        return found[0]
    return None


def today(config: PipelineConfig) -> dt.date:
    """Today in the pipeline's time zone (schedule.timezone)."""
    return dt.datetime.now(zoneinfo.ZoneInfo(config.schedule.timezone)).date()


def read_labels(
    config: PipelineConfig,
    day: dt.date,
    *,
    path: Path | None = None,
    source: str | None = None,
    classes: list[Any] | None = None,
    today_is: dt.date | None = None,
) -> pd.DataFrame:
    """The labels of `day`: its labels file (`path`, else found by ``find_labels``), checked.

    Refused, naming the file, column and values: a day after today (labels cannot have arrived for it),
    rows dated another day, a missing id or target column, missing target values, and (classification)
    classes the model does not know (`classes`: the model's classes, see ``known_classes``).
    Returns the id columns and the target.
    """
    now = today_is or today(config)
    if day > now:
        raise PerformanceError(
            f"{config.name}: labels for {day}, a future day (today is {now} in {config.schedule.timezone}): no "
            f"outcome of that day can be known yet; check the as_of you passed (the labels of day D are checked "
            f"on D + scoring.label_delay_days)"
        )
    file = path or find_labels(config, day, source=source)
    if file is None:
        raise PerformanceError(
            f"{labels_folder(config, source)}: no labels file for {day} (<pipeline>_labels_{day}.csv)"
        )
    frame = _read_labels_file(config, file)
    ids, target, date_column = list(config.source.id_columns), config.target, config.source.date_column
    missing = [c for c in [*ids, target] if c not in frame.columns]
    if missing:
        raise PerformanceError(
            f"{file}: labels lack column(s) {', '.join(map(repr, missing))} (present: "
            f"{', '.join(map(str, frame.columns))}); a labels file needs the id columns (source.id_columns: "
            f"{', '.join(ids)}) and the target ({target})"
        )
    if date_column and date_column in frame.columns:
        _check_label_days(frame[date_column], file, day, now)
    null_ids = frame[ids].isna().any(axis=1)
    if null_ids.any():
        raise PerformanceError(
            f"{file}: {int(null_ids.sum())} label row(s) have no id ({', '.join(ids)}); they "
            f"cannot be joined: fix the export"
        )
    y = frame[target]
    if y.isna().any():
        raise PerformanceError(
            f"{file}: target column {target!r} has {int(y.isna().sum())} missing value(s); a "
            f"labels file holds known outcomes only: drop the rows whose outcome is not known yet"
        )
    if config.is_classification and classes is not None:
        known = {_plain(c) for c in classes}
        seen = {_plain(v) for v in y.unique().tolist()}
        unknown = sorted((v for v in seen if v not in known), key=str)
        if unknown:
            counts = y.map(lambda v: _plain(v) in unknown).sum()
            raise PerformanceError(
                f"{file}: target column {target!r} holds class(es) {', '.join(map(repr, unknown[:MAX_LISTED]))} "
                f"({int(counts)} row(s)) that the model does not know (its classes: "
                f"{', '.join(map(repr, sorted(known, key=str)))}); fix the labels (a spelling or encoding change "
                f"upstream?) or retrain on data that includes them"
            )
    if not config.is_classification:
        try:
            frame[target] = y.astype(float)
        except (TypeError, ValueError):
            raise PerformanceError(
                f"{file}: target column {target!r} must hold numbers for a regression; "
                f"got e.g. {', '.join(map(repr, y.head(3).tolist()))}"
            ) from None
    return frame[[*ids, target]]


def _read_labels_file(config: PipelineConfig, file: Path) -> pd.DataFrame:
    import pandas as pd

    from airflow_mlops.core import data

    size = file.stat().st_size
    if size > config.source.max_file_mb * 1024 * 1024:
        raise PerformanceError(
            f"{file}: labels file is too large ({size / 1024 / 1024:.1f} MB > "
            f"source.max_file_mb {config.source.max_file_mb:g})"
        )
    if size == 0:
        raise PerformanceError(f"{file}: labels file is empty (0 bytes); re-export it")
    text_columns = [*config.source.id_columns, *(c for c, t in config.source.dtypes.items() if t == "string")]
    try:
        if file.suffix == ".parquet":
            return pd.read_parquet(file)
        return data.read_csv(file, na_values=config.source.na_values, text_columns=text_columns)
    except DataSourceError as exc:
        raise PerformanceError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise PerformanceError(f"{file}: labels file cannot be read ({exc}); re-export it") from None


def _check_label_days(dates: pd.Series, file: Path, day: dt.date, now: dt.date) -> None:
    """Every row must be of `day` (the file's day); a row dated after today is a future label."""
    import pandas as pd

    parsed = pd.to_datetime(dates, errors="coerce", format="ISO8601")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    if parsed.isna().any():
        bad = dates[parsed.isna()].astype(str).unique().tolist()
        raise PerformanceError(
            f"{file}: date column {dates.name!r} has {int(parsed.isna().sum())} value(s) that "
            f"are not dates, e.g. {', '.join(map(repr, bad[:MAX_LISTED]))}"
        )
    days = parsed.dt.date
    future = sorted({d for d in days.unique() if d > now})
    if future:
        raise PerformanceError(
            f"{file}: {int((days > now).sum())} label row(s) dated in the future ({', '.join(map(str, future[:MAX_LISTED]))}"
            f"; today is {now}): outcomes cannot be known before they happen; fix the export's clock or dates"
        )
    other = sorted({d for d in days.unique() if d != day})
    if other:
        raise PerformanceError(
            f"{file}: the labels file of {day} holds {int((days != day).sum())} row(s) of other day(s) "
            f"({', '.join(map(str, other[:MAX_LISTED]))}); each day's outcomes go in that day's file "
            f"(<pipeline>_labels_YYYY-MM-DD)"
        )


# --------------------------------------------------------------------------- the model's classes


def known_classes(
    client: MlflowClient | None, config: PipelineConfig, versions: list[str], predictions: pd.DataFrame
) -> tuple[list[Any] | None, str]:
    """The classes the model versions know, and where they come from; (None, "") for a regression.

    The target's values in each version's own training snapshot (found through its training run's
    dataset input, as the drift monitor finds the champion's): exactly what it could learn, whatever
    the day's predictions happen to contain. When a snapshot cannot be read: the classes seen in the
    day's ``predicted`` column plus ``target.positive_class``, and the source says so.
    """
    if not config.is_classification:
        return None, ""
    classes: set[Any] = set()
    problems = []
    for version in versions:
        try:
            classes |= set(_training_classes(client, config, str(version)))
        except Exception as exc:  # the fallback below names why
            problems.append(f"v{version}: {exc}")
    if not problems:
        return sorted(classes, key=str), f"the training data of version(s) {', '.join(map(str, versions))}"
    seen = {_plain(v) for v in predictions["predicted"].dropna().unique().tolist()}
    if config.positive_class is not None:
        seen.add(config.positive_class)
    log.warning(
        "the classes of %s come from the predictions, not the training data (%s)",
        config.model_name,
        "; ".join(problems),
    )
    return sorted(classes | seen, key=str), (
        "the predicted classes of the day (training data unavailable: " + "; ".join(problems)[:300] + ")"
    )


def _training_classes(client: MlflowClient | None, config: PipelineConfig, version: str) -> list[Any]:
    import pyarrow.parquet as pq

    from airflow_mlops.core.monitoring import local_path, training_input_uri

    if client is None:
        raise PerformanceError("no MLflow client")
    mv = client.get_model_version(config.model_name, version)
    if not mv.run_id:
        raise PerformanceError("the version has no training run")
    uri = training_input_uri(client.get_run(mv.run_id))
    path = local_path(uri) if uri else None
    if path is None or not path.is_file():
        raise PerformanceError(f"its training snapshot ({uri or 'not logged'}) cannot be read here")
    column = pq.read_table(path, columns=[config.target]).column(0)
    return [_plain(v) for v in column.unique().to_pylist() if v is not None]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
