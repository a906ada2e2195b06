"""Atomic file writes: a reader never sees a partial file, and a full disk leaves nothing behind."""

from __future__ import annotations

import errno
import os
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
#: A temp file untouched this long is left over by a killed writer (a live one writes every few seconds).
STALE_TEMP_S = 3600.0


def write_atomically(target: Path, write: Callable[[BinaryIO], object], *, mode: int = 0o444) -> Path:
    """Write `target` through `write(file)` into a temp file of the same folder, fsync it, then rename it.

    On any failure the temp file is removed; an OSError (disk full, read-only, no permission) is
    raised again as an OSError naming the folder and what to do (still retryable: space can be freed).
    A writer killed outright (SIGKILL, lost node) cannot clean up: the next write of the same target
    removes such leftovers once they are older than `STALE_TEMP_S`.
    """
    folder = Path(target).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{Path(target).name}.", suffix=".tmp")
    except OSError as exc:
        raise folder_error(exc, folder, Path(target)) from exc
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
            raise folder_error(exc, folder, Path(target)) from exc
        raise
    remove_stale_temps(Path(target))
    return Path(target)


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temp files of `target` that killed writers left behind (untouched for `STALE_TEMP_S`)."""
    removed = []
    for leftover in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if time.time() - leftover.stat().st_mtime > STALE_TEMP_S:
                leftover.unlink()
                removed.append(leftover)
        except FileNotFoundError:  # another writer finished or cleaned it meanwhile
            continue
    return removed


def folder_error(exc: OSError, folder: Path, target: Path) -> OSError:
    """`exc` restated: which file could not be written in which folder, why, and what to do."""
    what = _WHAT_TO_DO.get(exc.errno or 0, "check the folder")
    reason = exc.strerror or str(exc)
    return OSError(exc.errno, f"cannot write {target.name} in folder {folder}: {reason}; {what}. Nothing was left behind")
