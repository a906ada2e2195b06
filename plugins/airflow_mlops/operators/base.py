"""What every airflow-mlops operator shares: the MLflow hook, run tags, error translation."""

from __future__ import annotations

import contextlib
import functools
import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.airflow_internals import share_operator_serialized_fields

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow.sdk import Context
    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.hooks.mlflow import MlflowHook

DEFAULT_MLFLOW_CONN_ID = "mlflow_default"  # MlflowHook.default_conn_name, without importing the hook at parse time
PROMOTER_CONN_ID = "mlflow_promoter"  # the identity allowed to move `champion` (MANAGE on the model)
#: What a retrain request's `trigger` may say (a monitor's name); anything else is recorded as drift.
#: (A pattern, compiled at run time: a DAG parse never needs it.)
RETRAIN_REASON = r"[a-z][a-z_]{0,31}"


class MlopsBaseOperator(BaseOperator):
    """Base for the pipeline operators: a dumb constructor, a lazily built hook.

    A subclass's own `execute` and `execute_complete` run inside `mlflow_errors()`.
    """

    ui_color = "#e8f1fb"
    #: The connection used when `mlflow_conn_id` is not defined (None: it must exist, or be mlflow_default).
    mlflow_fallback_conn_id: str | None = None

    def __init__(self, *, config_path: str, mlflow_conn_id: str = DEFAULT_MLFLOW_CONN_ID, **kwargs: Any):
        super().__init__(**kwargs)
        self.config_path = config_path
        self.mlflow_conn_id = mlflow_conn_id

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("execute", "execute_complete"):
            if callable(vars(cls).get(name)):
                setattr(cls, name, _in_mlflow_errors(vars(cls)[name]))

    @contextlib.contextmanager
    def mlflow_errors(self) -> Iterator[None]:
        """One clear exception for a failed MLflow call (see `MlflowHook.explain_error`), others as they are.

        401/403 -> AirflowFailException naming the connection, URI, user and what to fix (no retry);
        an unreachable server -> MlflowUnavailableError naming the URI (Airflow retries it).
        """
        try:
            yield
        except Exception as exc:
            hook = self.__dict__.get("hook")  # not built yet: no MLflow call was made
            config = self.__dict__.get("_pipeline_config")
            names = {"experiment": config.name, "model": config.model_name} if config is not None else {}
            clear = hook.explain_error(exc, **names) if hook is not None else None
            if clear is None:
                raise
            raise clear from None

    @cached_property
    def hook(self) -> MlflowHook:
        from airflow_mlops.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id, fallback_conn_id=self.mlflow_fallback_conn_id)

    @cached_property
    def client(self) -> MlflowClient:
        """The MlflowClient for this task, built once from the connection.

        MLflow's fluent API (log_model, `models:/` URIs, even the registry's own lookups of logged
        models) reads process-wide URIs: point them at the same server, or a task that runs in a
        fresh process (any real executor) would talk to ./mlflow.db.
        """
        from airflow_mlops.core import tracking

        client = self.hook.get_conn()
        tracking.configure(client)
        return client

    def load_config(self) -> PipelineConfig:
        from airflow_mlops.core.config import load_config

        with fail_on_bad_input():
            self._pipeline_config = load_config(self.config_path)
        return self._pipeline_config

    def push_run(self, context: Context, run_id: str) -> None:
        """Push the MLflow run (and its experiment) to XCom for the 'MLflow run' link."""
        context["ti"].xcom_push(key="mlflow_run_id", value=run_id)
        experiment_id = self.client.get_run(run_id).info.experiment_id
        context["ti"].xcom_push(key="mlflow_experiment_id", value=experiment_id)

    @staticmethod
    def run_tags(context: Context, **extra: str) -> dict[str, str]:
        """Tags that trace an MLflow run or model version back to the Airflow task that made it, and why it ran."""
        ti = context["ti"]
        tags = {
            "airflow.dag_id": ti.dag_id,
            "airflow.run_id": ti.run_id,
            "airflow.task_id": ti.task_id,
            "airflow.try_number": str(ti.try_number),
            **run_trigger(context),
        }
        if getattr(ti, "map_index", -1) not in (-1, None):
            tags["airflow.map_index"] = str(ti.map_index)
        tags.update({k.replace("__", "."): v for k, v in extra.items()})
        return tags


def run_trigger(context: Context) -> dict[str, str]:
    """What started this DAG run: the schedule, a person, or an Asset event (e.g. a drift retrain request).

    Returns tags `mlops.trigger` (schedule | manual | asset | drift | performance | backfill) and, for
    Asset events, `mlops.trigger.assets` and the `summary` the event carried in its extra. A retrain
    request names its reason in the extra's `trigger` (a monitor: drift, performance); requests
    without one are the drift monitor's. Several reasons at once read e.g. ``drift+performance``.
    """
    dag_run = context.get("dag_run")
    run_type = str(getattr(getattr(dag_run, "run_type", None), "value", getattr(dag_run, "run_type", "")) or "")
    trigger = {"scheduled": "schedule", "asset_triggered": "asset"}.get(run_type, run_type or "unknown")
    tags = {"mlops.trigger": trigger}
    uris, summaries, reasons = [], [], set()
    events = context.get("triggering_asset_events") or {}
    for asset in events:
        uris.append(asset.uri)
        for event in events[asset]:
            extra = event.extra or {}
            summary = extra.get("summary")
            if summary:
                summaries.append(str(summary))
            if asset.uri.endswith("/retrain-request"):
                reason = str(extra.get("trigger") or "drift")
                reasons.add(reason if re.fullmatch(RETRAIN_REASON, reason) else "drift")
    if uris:
        tags["mlops.trigger.assets"] = ", ".join(sorted(set(uris)))[:500]
        if reasons or any(u.endswith("/retrain-request") for u in uris):
            tags["mlops.trigger"] = "+".join(sorted(reasons)) or "drift"
    if summaries:
        tags["mlops.trigger.summary"] = " | ".join(summaries)[:1000]
    return tags


def requested_window(context: Context) -> dict[str, str]:
    """`as_of` and `source` named by the newest triggering Asset event (a drift retrain request), if any."""
    newest: dict[str, str] = {}
    newest_at = None
    events = context.get("triggering_asset_events") or {}
    for asset in events:
        for event in events[asset]:
            extra = event.extra or {}
            if extra.get("as_of") and (newest_at is None or event.timestamp > newest_at):
                newest_at = event.timestamp
                newest = {"as_of": str(extra["as_of"]), "source": str(extra.get("source") or "")}
    return newest


def _in_mlflow_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: MlopsBaseOperator, *args: Any, **kwargs: Any) -> Any:
        with self.mlflow_errors():
            return method(self, *args, **kwargs)

    return wrapper


@contextlib.contextmanager
def fail_on_bad_input() -> Iterator[None]:
    """Turn core's bad-input errors into AirflowFailException: retrying cannot fix bad input."""
    from airflow_mlops.core.errors import MlopsError

    try:
        yield
    except AirflowFailException:
        raise
    except MlopsError as exc:
        raise AirflowFailException(redacted(str(exc))) from exc


def redacted(text: str) -> str:
    """`text` through the one redaction (core.redaction); each value it hides is also handed to Airflow's
    secrets masker, so the rest of the task log (the traceback quoting the original error) hides it too."""
    from airflow.sdk.log import mask_secret

    from airflow_mlops.core.redaction import redact

    return redact(text, on_secret=mask_secret)


# Serializing a DAG asks each operator class for its serialized fields (the same set for every class: the attributes
# of a bare BaseOperator), which Airflow computes by building a BaseOperator and caches on the class asked. Asked once
# of BaseOperator here, every class inherits the answer: one computation per DAG parse instead of one per class.
share_operator_serialized_fields()


def task_identity(context: Context) -> str | None:
    """``dag_id/run_id/task_id/map_index``: the same for every try of one task instance (its retries); None when
    called outside a task instance (``execute({})``), where a temp file carries no writer."""
    ti = context.get("ti")
    if ti is None:
        return None
    map_index = getattr(ti, "map_index", None)
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{-1 if map_index is None else map_index}"


def approval_record(context: Context, task_id: str | None) -> dict | None:
    """The answer the approval step pushed (XCom `approval` of `task_id`), or None when nobody was asked."""
    if not task_id:
        return None
    record = context["ti"].xcom_pull(task_ids=task_id, key="approval")
    return record if isinstance(record, dict) and record.get("decision") else None
