"""RequestRetrainOperator: turn a monitor's check that asked for a retrain into an Asset event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_mlops.core.payloads import RetrainRequest

#: What a check may add to the event besides the common keys (drift: features; performance: the realized metric).
OPTIONAL_KEYS = ("drifted", "drift_share", "day", "metric", "realized", "ci_low", "ci_high", "promised", "threshold")


class RequestRetrainOperator(BaseOperator):
    """Emit an event on the task's outlets (the retrain request) carrying the check's summary and its
    `trigger` (``drift`` unless the check says otherwise, e.g. ``performance``: the retrain run records it
    as ``mlops.trigger``), only when the check asked for a retrain; otherwise skip, saying why.

    :param check: the dict returned by DriftSensor or PerformanceCheckOperator
    """

    template_fields: Sequence[str] = ("check",)
    ui_color = "#fde2c8"

    def __init__(self, *, check: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def execute(self, context: Context) -> RetrainRequest:
        check = self.check
        if not check["requested"]:
            raise AirflowSkipException(f"No retrain requested: {check['reason']}")
        extra = {
            "trigger": check.get("trigger") or "drift",
            "summary": check["summary"],
            "reason": check["reason"],
            **{key: check[key] for key in OPTIONAL_KEYS if key in check},
            "model_name": check["model_name"],
            "reference_version": check["reference_version"],
            "as_of": check["as_of"],  # the retrain trains on the data up to this day ...
            "source": check.get("source", ""),  # ... from this source ("": the config's)
            "mlflow_run_id": check["run_id"],
        }
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        self.log.info(
            "Retrain requested (%s) for %s (champion v%s): %s; %s",
            extra["trigger"],
            check["model_name"],
            check["reference_version"],
            check["summary"],
            check["reason"],
        )
        return cast("RetrainRequest", extra)
