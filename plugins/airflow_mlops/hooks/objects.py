"""An object-store URI -> the fsspec filesystem holding the credentials of the Airflow connection it names.

Through Airflow's ``ObjectStoragePath`` (the provider registered for the scheme builds the filesystem: the amazon
provider's s3fs for ``s3://``). The connection must exist: a missing one would otherwise fall back to whatever
credentials the worker's environment holds (the provider logs a warning and goes on), or to anonymous access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mlops.core.paths import ObjectURI

#: What installs the filesystem of a scheme (pip extras), for the error naming it.
PROVIDERS = {
    "s3": "apache-airflow-providers-amazon[s3fs] (airflow-mlops[s3])",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "wasb": "apache-airflow-providers-microsoft-azure",
}


def object_filesystem(uri: ObjectURI) -> Any:
    """The filesystem of `uri`'s scheme with the credentials of its connection; a DataSourceError naming the URI
    and the connection when the connection does not exist or no installed provider serves the scheme."""
    from airflow.sdk import BaseHook, ObjectStoragePath
    from airflow.sdk.exceptions import AirflowNotFoundException

    from airflow_mlops.core.errors import DataSourceError

    try:
        BaseHook.get_connection(uri.conn_id)
    except AirflowNotFoundException:
        raise DataSourceError(
            f"{uri}: Airflow connection {uri.conn_id!r} does not exist; create it with the store's credentials "
            f"(Admin > Connections, `airflow connections add`, or AIRFLOW_CONN_{uri.conn_id.upper()}; for S3 or "
            f"MinIO: type aws, login = access key id, password = secret key, extra endpoint_url for MinIO), or fix "
            f"the id before '@' in the URI; nothing was read"
        ) from None
    try:
        return ObjectStoragePath(uri.uri).fs
    except (ValueError, ImportError) as exc:
        if "registered" not in str(exc) and "s3fs" not in str(exc):
            raise
        needs = PROVIDERS.get(uri.scheme, f"the Airflow provider that serves {uri.scheme}://")
        raise DataSourceError(
            f"{uri}: no filesystem serves {uri.scheme}:// in this Airflow installation; install {needs} on every "
            f"worker; nothing was read"
        ) from None
