"""RequestRetrainOperator: turn a drift check that asked for a retrain into an Asset event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class RequestRetrainOperator(BaseOperator):
    """Emit an event on the task's outlets (the retrain request) carrying the drift summary,
    only when the drift check asked for a retrain; otherwise skip, saying why.

    :param check: the dict returned by DriftSensor
    """

    template_fields: Sequence[str] = ("check",)
    ui_color = "#fde2c8"

    def __init__(self, *, check: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def execute(self, context: Context) -> dict:
        check = self.check
        if not check["requested"]:
            raise AirflowSkipException(f"No retrain requested: {check['reason']}")
        extra = {
            "summary": check["summary"],
            "reason": check["reason"],
            "drifted": check["drifted"],
            "drift_share": check["drift_share"],
            "model_name": check["model_name"],
            "reference_version": check["reference_version"],
            "as_of": check["as_of"],  # the retrain trains on the data up to this day ...
            "source": check.get("source", ""),  # ... from this source ("": the config's)
            "mlflow_run_id": check["run_id"],
        }
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        self.log.info(
            "Retrain requested for %s (champion v%s): %s; %s",
            check["model_name"], check["reference_version"], check["summary"], check["reason"],
        )
        return extra
