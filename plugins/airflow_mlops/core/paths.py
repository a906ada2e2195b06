"""Which folders source data may come from (light: no pandas, the drift sensor checks this on every poke).

A source path is user input (the DAGs' ``source`` param): it is resolved (symlinks and ``..``
followed) and refused unless it lies inside an allowed data folder. The state folder
($AIRFLOW_MLOPS_HOME: snapshots, predictions, the MLflow store, Airflow's files and secrets.env in the
demo) is never a source, even when a data folder holds it or lies inside it: the code that owns
snapshots and predictions reads them itself, never through ``source``. Nothing is read before that.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_mlops import settings
from airflow_mlops.core.errors import DataSourceError

if TYPE_CHECKING:
    from airflow_mlops.core.config import PipelineConfig


def source_roots(config: PipelineConfig) -> list[Path]:
    """The data folders: the config's ``source.allowed_roots`` (relative to the project root; default
    ``data/``) and the folders in ``$AIRFLOW_MLOPS_DATA_ROOTS``. Never the state folder ($AIRFLOW_MLOPS_HOME)."""
    return [
        *(config.resolve(r) for r in config.source.allowed_roots),
        *settings.data_roots_from_env(),
    ]


#: Longer than any real path (Linux PATH_MAX is 4096): refused before any file-system call.
MAX_PATH_CHARS = 4096


def check_path_text(text: str, what: str = "source path") -> None:
    """A DataSourceError naming `what` when `text` cannot be a path: a NUL byte or another control
    character (a copy-paste accident or an injection attempt), or more than MAX_PATH_CHARS characters."""
    shown = repr(text if len(text) <= 80 else text[:77] + "...")
    if len(text) > MAX_PATH_CHARS:
        raise DataSourceError(
            f"{what} {shown} is {len(text):,} characters long (more than {MAX_PATH_CHARS:,}): not a usable path; "
            f"nothing was read. Pass the path of the file or folder"
        )
    bad = sorted({c for c in text if ord(c) < 32 or ord(c) == 127})
    if bad:
        names = ", ".join("NUL byte" if c == "\x00" else f"control character {c!r}" for c in bad)
        raise DataSourceError(
            f"{what} {shown} contains {names}: not a usable path; nothing was read. Pass the path as plain text "
            f"(check the trigger's conf or the upstream that wrote it)"
        )


def resolve_source(path: Path, allowed_roots: list[Path]) -> Path:
    """The real path of ``path``; a DataSourceError naming it when it is outside every allowed root
    (or cannot be a path at all: see check_path_text)."""
    check_path_text(str(path))
    real = _real_path(path)
    roots = [_real_path(Path(r)) for r in allowed_roots]
    _refuse_state(path, real, roots)
    if not any(real == r or real.is_relative_to(r) for r in roots):
        raise DataSourceError(
            f"{path}: source path is outside the allowed folders ({', '.join(map(str, roots))}); it resolves to "
            f"{real} and was not read. Move the data under an allowed folder, or allow its folder in the "
            f"config's source.allowed_roots or in ${settings.DATA_ROOTS_ENV}"
        )
    return real


def _refuse_state(path: Path, real: Path, roots: list[Path]) -> None:
    """A DataSourceError naming `path` when it, or what it resolves to, lies inside the state folder."""
    home = settings.mlops_home()
    state = _real_path(home)
    given = Path(os.path.abspath(path))
    if not any(p == s or p.is_relative_to(s) for p in (given, real) for s in (home, state)):
        return
    inside = [r for r in roots if r == state or r.is_relative_to(state)]
    note = (
        f" (the allowed folder(s) {', '.join(map(str, inside))} lie inside it: move the data to a folder outside "
        f"it and allow that one instead)"
        if inside
        else ""
    )
    raise DataSourceError(
        f"{path}: refused: the path lies inside the state folder ${settings.HOME_ENV} ({state}), which holds the "
        f"project's own state and secrets; a run's source is never read from there{note}, and nothing was read. "
        f"Pass a CSV or Parquet data file (or a folder of them) under a data folder: the config's "
        f"source.allowed_roots or ${settings.DATA_ROOTS_ENV}"
    )


def _real_path(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        return Path(os.path.realpath(path))  # does not exist (yet): resolved as far as it goes
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataSourceError(
                f"{path}: symbolic link loop (the link leads back to itself); nothing was read: fix or remove the link"
            ) from None
        raise DataSourceError(f"{path}: the path cannot be resolved ({exc.strerror}); nothing was read") from None
