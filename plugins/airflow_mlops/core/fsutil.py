"""Atomic, durable file writes: a reader never sees a partial file, a full disk leaves nothing behind, a
renamed file survives a power cut (its folder is fsynced), and the temp file of a killed writer is removed by
that writer's retry or, once stale, by any sweep."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from collections.abc import Callable

_WHAT_TO_DO = {
    errno.ENOSPC: "free space on that disk, or point AIRFLOW_MLOPS_HOME at a larger one",
    errno.EDQUOT: "raise the disk quota, or point AIRFLOW_MLOPS_HOME at another disk",
    errno.EROFS: "the file system is read-only: point AIRFLOW_MLOPS_HOME at a writable folder",
    errno.EACCES: "give the worker's user write permission on the folder",
}
log = logging.getLogger(__name__)

#: A temp file untouched this long is left over by a killed writer (a live one writes every few seconds).
STALE_TEMP_S = 3600.0
#: fsync of a folder is refused by some file systems (EINVAL): nothing more can be done there.
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EISDIR}


def writer_tag(writer: str) -> str:
    """The part of a temp file's name that says which writer made it: ``w`` + 12 hex digits of sha256(`writer`).

    `writer` is whatever names the task across its retries (e.g. ``dag/run/task/map_index``, no try number).
    """
    return "w" + hashlib.sha256(writer.encode()).hexdigest()[:12]


def temp_prefix(target: Path, writer: str | None = None) -> str:
    """``.<name>.`` then, for a named writer, ``<writer_tag>.``: the start of every temp file of `target`."""
    name = Path(target).name
    return f".{name}.{writer_tag(writer)}." if writer else f".{name}."


def write_atomically(
    target: Path, write: Callable[[BinaryIO], object], *, mode: int = 0o444, writer: str | None = None
) -> Path:
    """Write `target` through `write(file)` into a temp file of the same folder, fsync it, rename it, fsync the folder.

    On any failure the temp file is removed; an OSError (disk full, read-only, no permission) is
    raised again as an OSError naming the folder and what to do (still retryable: space can be freed).
    A writer killed outright (SIGKILL, lost node) cannot clean up: its temp file carries `writer`'s tag,
    so the retry of the same writer removes it first, whatever its age; temp files of other writers
    are removed once older than `STALE_TEMP_S` (they may still be written).
    """
    target = Path(target)
    folder = target.parent
    remove_temps(target, writer=writer)
    try:
        created = _mkdirs(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=temp_prefix(target, writer), suffix=".tmp")
    except OSError as exc:
        raise folder_error(exc, folder, target) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise folder_error(exc, folder, target) from exc
        raise
    try:
        for changed in (folder, *(d.parent for d in created)):  # the rename, and each new folder's entry
            fsync_dir(changed)
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"{target} was written but its folder could not be synced to disk ({exc.strerror or exc}): "
            f"a power cut could lose it; check the disk, then run the task again",
        ) from exc
    return target


def _mkdirs(folder: Path) -> list[Path]:
    """mkdir -p `folder`; the folders it created, outermost first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def fsync_dir(folder: Path) -> None:
    """Flush `folder`'s entries (a rename into it, a file created in it) to disk: os.open + os.fsync."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def remove_temps(target: Path, *, writer: str | None = None, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Remove the temp files of `target` that killed writers left: `writer`'s own at any age (its earlier try
    was killed; a try still running elsewhere then fails its rename), anyone's untouched for `older_than_s`."""
    target = Path(target)
    own = temp_prefix(target, writer) if writer else None
    removed = []
    for leftover in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if (own and leftover.name.startswith(own)) or time.time() - leftover.stat().st_mtime > older_than_s:
                leftover.unlink()
                removed.append(leftover)
        except FileNotFoundError:  # another writer finished or cleaned it meanwhile
            continue
    return removed


def sweep_temps(
    folder: Path, pattern: str, *, writer: str | None = None, older_than_s: float = STALE_TEMP_S
) -> list[tuple[Path, int]]:
    """Remove the temp files under `folder` matching `pattern` (a glob, e.g. ``day=*/.predictions.parquet.*.tmp``)
    that killed writers left: `writer`'s own at any age, anyone's untouched for `older_than_s` (a live writer
    touches its file every few seconds). Returns (path, bytes) of each removed; logs each and the total."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    own = writer_tag(writer) if writer else None
    removed: list[tuple[Path, int]] = []
    for leftover in folder.glob(pattern):
        if not leftover.name.endswith(".tmp"):
            continue
        try:
            info = leftover.lstat()
            mine = own is not None and f".{own}." in leftover.name
            if not stat.S_ISREG(info.st_mode) or not (mine or time.time() - info.st_mtime > older_than_s):
                continue
            leftover.unlink()
        except FileNotFoundError:  # its writer finished (renamed it) or another sweep took it
            continue
        removed.append((leftover, info.st_size))
        age_h = (time.time() - info.st_mtime) / 3600
        log.warning(
            "Removed %s (%s bytes, untouched for %.1f h): left by %s",
            leftover,
            f"{info.st_size:,}",
            age_h,
            "an earlier try of this task" if mine else "a writer that was killed mid-write",
        )
    if removed:
        log.warning(
            "Removed %d temp file(s) of interrupted writes under %s, %s bytes in all",
            len(removed),
            folder,
            f"{sum(size for _, size in removed):,}",
        )
    return removed


def folder_error(exc: OSError, folder: Path, target: Path) -> OSError:
    """`exc` restated: which file could not be written in which folder, why, and what to do."""
    what = _WHAT_TO_DO.get(exc.errno or 0, "check the folder")
    reason = exc.strerror or str(exc)
    return OSError(
        exc.errno, f"cannot write {target.name} in folder {folder}: {reason}; {what}. Nothing was left behind"
    )
