"""Which folders source data may come from (light: no pandas, the drift sensor checks this on every poke).

A source path is user input (the DAGs' ``source`` param): it is resolved (symlinks and ``..``
followed) and refused unless it lies inside an allowed data folder. The state folder
($AIRFLOW_MLOPS_HOME: snapshots, predictions, the MLflow store, Airflow's files and secrets.env in the
demo) is never a source, even when a data folder holds it or lies inside it: the code that owns
snapshots and predictions reads them itself, never through ``source``. Nothing is read before that.

A source may also be a URI: ``file:///...`` is a local path (the same rules), and an object-store URI
(``s3://CONN_ID@bucket/prefix/``) must lie under an allowed URI prefix (an entry of ``source.allowed_roots`` or
$AIRFLOW_MLOPS_DATA_ROOTS that is a URI): same scheme, same connection, same bucket, and whole key segments.
A URI that could mean something else to the store (``.``/``..`` or empty segments, ``%``-escapes, a query, a
password, a scheme in capitals, ``local://``) is refused before any connection is looked up.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote, urlsplit

from airflow_mlops import settings
from airflow_mlops.core.errors import DataSourceError

if TYPE_CHECKING:
    from airflow_mlops.core.config import PipelineConfig


def source_roots(config: PipelineConfig) -> list[Path]:
    """The data folders: the config's ``source.allowed_roots`` (relative to the project root; default
    ``data/``) and the folders in ``$AIRFLOW_MLOPS_DATA_ROOTS``. Never the state folder ($AIRFLOW_MLOPS_HOME).
    ``file://`` entries are folders too; object-store URIs are `object_prefixes`."""
    return [
        *(source_path(config, r) for r in config.source.allowed_roots if not is_object_uri(r)),
        *(file_uri_path(e) if is_uri(e) else Path(e) for e in settings.data_root_entries() if not is_object_uri(e)),
    ]


def source_path(config: PipelineConfig, given: str) -> Path:
    """A local source as a path: a ``file://`` URI's path, else `given` relative to the project root."""
    return file_uri_path(given) if is_uri(given) else config.resolve(given)


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


# --------------------------------------------------------------------------- URIs: file:// and object stores

URI_SCHEME = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
CONN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}")
BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,253}[a-z0-9]")  # S3, GCS and Azure container names fit
#: Schemes that would read the local disk by another name: a local source is a path or a file:// URI.
LOCAL_SCHEMES = ("file", "local")
#: How errors spell the syntax (a space in the user part, so that the log's redaction of URL users keeps it).
URI_SYNTAX = "s3://<connection id>@<bucket>/<prefix>/"


class ObjectURI(NamedTuple):
    """An object-store URI, checked and in one canonical spelling: ``scheme://conn_id@bucket/key``."""

    scheme: str
    conn_id: str
    bucket: str
    key: str  # no leading '/'; '' for the whole bucket; a trailing '/' names a folder

    def __str__(self) -> str:
        """How messages name it: the URI without its user part (which the log's redaction would hide), and the
        connection by name."""
        return f"{self.scheme}://{self.bucket}/{self.key} (Airflow connection {self.conn_id!r})"

    @property
    def uri(self) -> str:
        """The URI itself, as ``ObjectStoragePath`` takes it."""
        return f"{self.scheme}://{self.conn_id}@{self.bucket}/{self.key}"

    @property
    def fs_path(self) -> str:
        """The path an fsspec filesystem of this scheme takes: ``bucket/key`` without a trailing '/'."""
        return f"{self.bucket}/{self.key}".rstrip("/")

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(s for s in self.key.split("/") if s)

    def child(self, name: str) -> ObjectURI:
        """The object `name` directly inside this folder."""
        return self._replace(key="/".join((*self.segments, name)))

    def within(self, prefix: ObjectURI) -> bool:
        """Same scheme, connection and bucket, and the prefix's key segments begin this one's."""
        same_store = (self.scheme, self.conn_id, self.bucket) == (prefix.scheme, prefix.conn_id, prefix.bucket)
        return same_store and self.segments[: len(prefix.segments)] == prefix.segments


def is_uri(text: str) -> bool:
    """Whether `text` begins with ``scheme://`` (a URI, not a path)."""
    return bool(URI_SCHEME.match(str(text)))


def is_object_uri(text: str) -> bool:
    """A URI of an object store: any scheme but ``file://`` (``local://`` is one, refused by `parse_object_uri`)."""
    match = URI_SCHEME.match(str(text))
    return match is not None and match.group("scheme").lower() != "file"


def file_uri_path(text: str, what: str = "source path") -> Path:
    """The absolute path of a ``file:///path`` (or ``file://localhost/path``) URI; `%`-escapes decoded (the
    path is then confined as any path is). Another host, or a relative path, is a DataSourceError."""
    check_path_text(text, what)
    parts = urlsplit(text)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise DataSourceError(
            f"{what} {text!r}: not a local file URI; write file:///absolute/path (no host, query or fragment), "
            f"or the plain path; nothing was read"
        )
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise DataSourceError(f"{what} {text!r}: a file URI names an absolute path (file:///srv/data/...)")
    return path


def parse_object_uri(text: str, what: str = "source path") -> ObjectURI:
    """`text` as an ObjectURI; a DataSourceError naming `what` for anything the store might read differently
    from how it is confined here. A password in the URI is refused without being quoted."""
    match = URI_SCHEME.match(text)
    if not match:
        raise DataSourceError(f"{what} {text!r} is not an object-store URI; write {URI_SYNTAX}")
    scheme, rest = match.group("scheme"), text[match.end() :]
    netloc, slash, key = rest.partition("/")
    conn_id, at, bucket = netloc.rpartition("@")
    if ":" in conn_id:  # checked first: nothing below may quote it
        raise DataSourceError(
            f"{what} {scheme}://...@{bucket}/...: a password in the URI is refused (it would be logged); keep "
            f"the credentials in the Airflow connection and write {URI_SYNTAX}; nothing was read"
        )
    check_path_text(text, what)

    def refuse(problem: str) -> DataSourceError:
        return DataSourceError(f"{what} {text!r}: {problem}; write {URI_SYNTAX}. Nothing was read")

    if scheme != scheme.lower():
        raise refuse(f"write the scheme in lower case ({scheme.lower()}://)")
    if scheme in LOCAL_SCHEMES:
        raise refuse(f"{scheme}:// reads the local disk: give a local source as a path or a file:/// URI")
    if not at or not CONN_ID.fullmatch(conn_id):
        raise refuse("name the Airflow connection whose credentials read it (its id before '@')")
    if not BUCKET.fullmatch(bucket) or ".." in bucket:
        raise refuse(f"{bucket!r} is not a bucket name (lower-case letters, digits, '.', '-', '_')")
    if any(c in text for c in "%?#\\"):
        raise refuse("'%'-escapes, '?', '#' and '\\' are not allowed in an object-store URI")
    segments = key.split("/")
    if any(s in (".", "..") for s in segments) or "" in segments[:-1]:
        raise refuse("'.', '..' and empty ('//') segments are not allowed: name the prefix as it is stored")
    return ObjectURI(scheme=scheme, conn_id=conn_id, bucket=bucket, key=key if slash else "")


def uri_problem(text: str) -> str | None:
    """Why `text`, when it is a URI, can be neither a source nor an allowed prefix (checked when a config is
    parsed); None for a good URI or a plain path."""
    if not is_uri(text):
        return None
    try:
        parse_object_uri(text, "URI") if is_object_uri(text) else file_uri_path(text, "URI")
    except DataSourceError as exc:
        return str(exc)
    return None


def object_prefixes(config: PipelineConfig, allowed: list[str] | None = None) -> list[ObjectURI]:
    """The URI prefixes object-store sources may live under: the URI entries of `allowed` (a task's
    `allowed_roots`), by default those of ``source.allowed_roots`` and $AIRFLOW_MLOPS_DATA_ROOTS."""
    entries = allowed if allowed is not None else [*config.source.allowed_roots, *settings.data_root_entries()]
    where = "allowed_roots" if allowed is not None else f"source.allowed_roots or ${settings.DATA_ROOTS_ENV}"
    return [parse_object_uri(e, f"allowed prefix ({where})") for e in map(str, entries) if is_object_uri(e)]


def confine_uri(text: str, prefixes: list[ObjectURI]) -> ObjectURI:
    """`text` as an ObjectURI lying under one of `prefixes`; else a DataSourceError naming it and the setting,
    raised before any connection is looked up or anything read."""
    uri = parse_object_uri(text)
    if not any(uri.within(p) for p in prefixes):
        allowed = ", ".join(map(str, prefixes)) or "none is set"
        raise DataSourceError(
            f"{uri}: source URI is outside the allowed URI prefixes ({allowed}); it was not read. Allow a prefix "
            f"of it ({uri.scheme}://<connection id>@<bucket>/<prefix>, with connection {uri.conn_id!r} and bucket "
            f"{uri.bucket!r}) in the config's source.allowed_roots or in ${settings.DATA_ROOTS_ENV}, or move the "
            f"data under an allowed prefix"
        )
    return uri
