"""Atomic file writes: a reader never sees a partial file, and a full disk leaves nothing behind."""

from __future__ import annotations

import errno
import os
import tempfile
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


def write_atomically(target: Path, write: Callable[[BinaryIO], object], *, mode: int = 0o444) -> Path:
    """Write `target` through `write(file)` into a temp file of the same folder, fsync it, then rename it.

    On any failure the temp file is removed; an OSError (disk full, read-only, no permission) is
    raised again as an OSError naming the folder and what to do (still retryable: space can be freed).
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
    return Path(target)


def folder_error(exc: OSError, folder: Path, target: Path) -> OSError:
    """`exc` restated: which file could not be written in which folder, why, and what to do."""
    what = _WHAT_TO_DO.get(exc.errno or 0, "check the folder")
    reason = exc.strerror or str(exc)
    return OSError(exc.errno, f"cannot write {target.name} in folder {folder}: {reason}; {what}. Nothing was left behind")
