"""Locating a source's files: the window's days, daily file names, and the CSV/Parquet formats by name."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow_mlops.core.errors import DataSourceError

if TYPE_CHECKING:
    from pathlib import Path

SUFFIXES = {"csv": ".csv", "parquet": ".parquet"}


class Named(Protocol):
    @property
    def name(self) -> str: ...


class SourceFile(Protocol):
    """A file the readers take: a local ``Path``, or an object of a store (core.data.objects.ObjectFile)."""

    @property
    def name(self) -> str: ...

    @property
    def suffix(self) -> str: ...

    def stat(self) -> Any: ...  # its ``st_size`` is checked before anything is read

    def read_bytes(self) -> bytes: ...


F = TypeVar("F", bound=Named)
DAILY_FILE = re.compile(r"_(\d{4}-\d{2}-\d{2})\.[A-Za-z]+$")


def window_start(window_end: dt.date | None, window_days: int | None) -> dt.date | None:
    """The first day inside the window, or None when the window has no lower bound."""
    if window_end is None or window_days is None:
        return None
    return window_end - dt.timedelta(days=window_days - 1)


def span(start: dt.date | None, end: dt.date | None) -> str:
    return f"{start.isoformat() if start else '...'}..{end.isoformat() if end else '...'}"


def source_files(
    path: Path,
    fmt: str,
    start: dt.date | None,
    end: dt.date | None,
    *,
    given: str | None = None,
    config_file: str | None = None,
) -> list[Path]:
    """The file itself (a .csv or .parquet file: anything else is refused unread, named as `given`), or the
    folder's files of this format inside the window (sorted by name)."""
    if path.is_file():
        format_of(path, shown=given)
        return [path]
    if not path.exists():
        raise DataSourceError(
            f"{path}: source not found (no such file or folder); check source.path in "
            f"{config_file or 'the pipeline config'}, or that the upstream export ran"
        )
    if not path.is_dir():
        raise DataSourceError(f"{path}: source is neither a regular file nor a folder")
    suffix = SUFFIXES[fmt]
    found = sorted(p for p in path.iterdir() if p.suffix == suffix and p.is_file() and not p.name.startswith("."))
    if not found:
        raise DataSourceError(f"{path}: folder has no {suffix} files; check source.path and source.format ({fmt})")
    return in_window(found, start, end, where=path, suffix=suffix)


def in_window(found: list[F], start: dt.date | None, end: dt.date | None, *, where: object, suffix: str) -> list[F]:
    """The daily files of `found` (local paths or store objects: anything with a ``name``) dated inside the
    window (undated names always are); none is a DataSourceError naming `where` and the days found."""
    inside = [f for f in found if _in_window(_file_day(f), start, end)]
    if not inside:
        days = [d for d in map(_file_day, found) if d]
        have = f" from {min(days)} to {max(days)}" if days else ""
        raise DataSourceError(
            f"{where}: no {suffix} files in the window {span(start, end)} (found {len(found)} file(s){have}); "
            f"check window_end and source.window_days, or that the upstream export ran for these days"
        )
    return inside


def _file_day(path: Named) -> dt.date | None:
    """The day in a daily file's name (``*_YYYY-MM-DD.csv``), else None."""
    match = DAILY_FILE.search(path.name)
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


def _in_window(day: dt.date | None, start: dt.date | None, end: dt.date | None) -> bool:
    """Undated files are always read (their rows are filtered by the date column)."""
    if day is None:
        return True
    return (start is None or day >= start) and (end is None or day <= end)


def format_of(path: SourceFile, *, shown: str | Path | None = None) -> str:
    """``csv`` or ``parquet`` by the file's name; a DataSourceError (naming `shown`, else `path`, and quoting
    nothing of the file) for any other name: a source is a data file, never a config, key or secrets file."""
    for fmt, suffix in SUFFIXES.items():
        if path.suffix.lower() == suffix:
            return fmt
    ends = f"its name ends in {path.suffix!r}" if path.suffix else "its name has no extension"
    raise DataSourceError(
        f"{shown or path}: not a CSV/Parquet data file ({ends}, not .csv or .parquet); it was not read. "
        f"Pass a CSV or Parquet export of the data (or a folder of them)"
    )
