"""An object-store source (``s3://CONN_ID@bucket/prefix/``): its files in the window, fetched through an fsspec
filesystem, then read by the same readers and checks as local files.

core imports no Airflow: the snapshot task hands in `open_store`, which turns a confined URI into the filesystem
holding the credentials of the Airflow connection it names (hooks.objects, through ``ObjectStoragePath``). The URI
is confined to the allowed prefixes (core.paths) before that is called. Sizes come from the listing and are
checked (``source.max_file_mb``) before anything is downloaded; the window's files are then fetched together
(concurrently where the store's filesystem is asynchronous, as s3fs is), a bounded number of bytes at a time.
"""

from __future__ import annotations

import contextlib
import io
import types
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.data.files import SUFFIXES, format_of, in_window
from airflow_mlops.core.errors import DataSourceError, exception_chain
from airflow_mlops.core.paths import ObjectURI, confine_uri, object_prefixes

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Iterator

    import pandas as pd

    from airflow_mlops.core.config import PipelineConfig

#: Bytes fetched at a time: the window's files are downloaded together up to this much, then read.
FETCH_BATCH_BYTES = 256 * 1024 * 1024
#: What the store's error codes mean for the person reading the error.
BUCKET_MISSING = ("NoSuchBucket",)


class ObjectStoreUnavailableError(Exception):
    """The store cannot be reached (connection refused, timeout, 5xx after the client's retries); names the URI.

    Not an MlopsError on purpose: a retry can fix it, so Airflow retries the task.
    """


class ObjectFile:
    """One object of a store as the readers take a file: a name and suffix, its size from the listing (checked
    before any download), and its bytes, fetched once and released once read."""

    def __init__(self, fs: Any, uri: ObjectURI, size: int) -> None:
        self.fs, self.uri, self.size = fs, uri, size
        self.data: bytes | None = None

    @property
    def name(self) -> str:
        return self.uri.segments[-1] if self.uri.segments else self.uri.bucket

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def __str__(self) -> str:
        return str(self.uri)

    def stat(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(st_size=self.size)

    def read_bytes(self) -> bytes:
        if self.data is None:
            with store_errors(self.uri):  # never more than the listing said (+1 byte: it grew, refused below)
                self.data = bytes(self.fs.cat_file(self.uri.fs_path, start=0, end=self.size + 1))
        if len(self.data) != self.size:
            raise DataSourceError(
                f"{self}: the object changed while it was read ({self.size} bytes listed, {len(self.data)} "
                f"fetched); re-run the task once the upstream export has finished writing"
            )
        return self.data

    def open(self, mode: str = "rb") -> io.BytesIO:
        return io.BytesIO(self.read_bytes())


def read_object_source(
    config: PipelineConfig,
    given: str,
    start: dt.date | None,
    end: dt.date | None,
    *,
    open_store: Callable[[ObjectURI], Any] | None,
    allowed_prefixes: list[str] | None = None,
) -> tuple[ObjectURI, list[ObjectFile], list[pd.DataFrame]]:
    """The source URI (confined to `allowed_prefixes`, by default the config's and $AIRFLOW_MLOPS_DATA_ROOTS'
    URI entries), its files in the window, and each read and checked as a frame."""
    from airflow_mlops.core.data.readers import read_file

    uri = confine_uri(given, object_prefixes(config, allowed_prefixes))
    if open_store is None:
        raise DataSourceError(
            f"{uri}: an object-store source is read through its Airflow connection: take the snapshot in "
            f"the pipeline's snapshot task (DataSnapshotOperator), or copy the files to a local data folder"
        )
    fs = open_store(uri)
    files = object_files(fs, uri, config.source.format, start, end, config_file=config.path)
    limit = config.source.max_file_mb * 1024 * 1024
    for file in files:  # every size before any download
        if file.size > limit:
            raise DataSourceError(
                f"{file}: object is too large ({file.size / 1024 / 1024:.1f} MB > source.max_file_mb "
                f"{config.source.max_file_mb:g}); nothing was downloaded. Split it into daily files or raise "
                f"source.max_file_mb"
            )
    frames = []
    for batch in _batches(files):
        fetch(fs, batch)
        for file in batch:
            frames.append(read_file(file, config, shown=str(file)))
            file.data = None  # the frame holds the rows now
    return uri, files, frames


def object_files(
    fs: Any, uri: ObjectURI, fmt: str, start: dt.date | None, end: dt.date | None, *, config_file: str = ""
) -> list[ObjectFile]:
    """The object `uri` names (a .csv or .parquet object), or the objects of this format directly under the
    prefix inside the window (by the date in their names, as local daily files), sorted by name."""
    suffix = SUFFIXES[fmt]
    with store_errors(uri):
        fs.invalidate_cache(uri.fs_path)  # a long-lived worker must see today's new files
        listing = fs.ls(uri.fs_path, detail=True)
    if not uri.key.endswith("/") and len(listing) == 1 and _is_the_object(listing[0], uri):
        file = ObjectFile(fs, uri, int(listing[0].get("size") or 0))
        format_of(file)
        return [file]
    base = uri.fs_path + "/"
    found = []
    for entry in listing:
        name = str(entry.get("name", ""))
        leaf = name[len(base) :] if name.startswith(base) else ""
        if entry.get("type") == "file" and leaf.endswith(suffix) and "/" not in leaf and not leaf.startswith("."):
            found.append(ObjectFile(fs, uri.child(leaf), int(entry.get("size") or 0)))
    found.sort(key=lambda f: f.name)
    if not found:
        raise DataSourceError(
            f"{uri}: no {suffix} objects under this prefix (it holds {len(listing)} other entries); check "
            f"source.path in {config_file or 'the pipeline config'} and source.format ({fmt}), or that the "
            f"upstream export ran"
        )
    return in_window(found, start, end, where=uri, suffix=suffix)


def fetch(fs: Any, files: list[ObjectFile]) -> None:
    """Download `files` together (fsspec's ``cat`` runs them concurrently on an asynchronous store)."""
    wanted = [f for f in files if f.data is None]
    if len(wanted) < 2:
        return  # one file: read_bytes fetches it
    with store_errors(wanted[0].uri):
        got = fs.cat([f.uri.fs_path for f in wanted], on_error="return")
    for file in wanted:
        data = got.get(file.uri.fs_path)
        if isinstance(data, BaseException):
            with store_errors(file.uri):
                raise data
        if data is not None and len(data) == file.size:
            file.data = bytes(data)  # else read_bytes fetches it again and names what changed


@contextlib.contextmanager
def store_errors(uri: ObjectURI) -> Iterator[None]:
    """The store's errors as ours: a missing bucket or object and refused credentials are DataSourceErrors
    (a retry cannot fix them); anything else (unreachable, 5xx) is ObjectStoreUnavailableError. Each names the
    URI, the connection and what to do, and quotes the store's error code, never a credential."""
    try:
        yield
    except DataSourceError:
        raise
    except FileNotFoundError as exc:
        code = error_code(exc)
        if code in BUCKET_MISSING or "bucket does not exist" in str(exc).lower():
            raise DataSourceError(
                f"{uri}: bucket {uri.bucket!r} does not exist ({code or 'not found'}); check the bucket in "
                f"source.path, and that connection {uri.conn_id!r} points at the right endpoint and account"
            ) from None
        raise DataSourceError(
            f"{uri}: no such object or prefix in bucket {uri.bucket!r}; check source.path, or that the "
            f"upstream export ran"
        ) from None
    except PermissionError as exc:
        code = error_code(exc) or "AccessDenied"
        raise DataSourceError(
            f"{uri}: the store refused the credentials of Airflow connection {uri.conn_id!r} ({code}); "
            f"check the connection's access key and secret, and that they may list and read "
            f"{uri.scheme}://{uri.bucket}/{uri.key}"
        ) from None
    except Exception as exc:
        raise ObjectStoreUnavailableError(
            f"{uri}: the store cannot be reached through connection {uri.conn_id!r} "
            f"({type(exc).__name__}: {_first_line(exc)}); check the connection's endpoint and that the store is "
            f"up (the task is retried)"
        ) from exc


def error_code(exc: BaseException) -> str:
    """The store's error code (e.g. NoSuchBucket, InvalidAccessKeyId) in `exc`'s chain, else ''."""
    for cause in exception_chain(exc):
        response = getattr(cause, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:300]


def _is_the_object(entry: dict[str, Any], uri: ObjectURI) -> bool:
    return entry.get("type") == "file" and str(entry.get("name", "")).rstrip("/") == uri.fs_path


def _batches(files: list[ObjectFile]) -> Iterator[list[ObjectFile]]:
    """`files` in runs of at most FETCH_BATCH_BYTES (a larger file alone)."""
    batch: list[ObjectFile] = []
    size = 0
    for file in files:
        if batch and size + file.size > FETCH_BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(file)
        size += file.size
    if batch:
        yield batch
