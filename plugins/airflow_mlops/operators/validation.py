"""DataValidationOperator: a Great Expectations suite gate before any training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.links import MlflowRunLink
from airflow_mlops.operators.base import MlopsBaseOperator, fail_on_bad_input

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class DataValidationFailed(AirflowFailException):
    """The snapshot failed its expectation suite; `failures` lists every failed expectation."""

    def __init__(self, message: str, failures: list[dict]) -> None:
        super().__init__(message)
        self.failures = failures


class DataValidationOperator(MlopsBaseOperator):
    """Validate a snapshot with the pipeline's GX suite; log result JSON and Data Docs to MLflow.

    Fails the task (no retry) listing every failed expectation with column and observed
    value; the snapshot stays on disk for inspection. Returns a small summary dict.

    :param snapshot: the dict returned by DataSnapshotOperator (usually its XComArg)
    :param suite_path: overrides the config's expectation suite (templated)
    """

    template_fields: Sequence[str] = ("config_path", "snapshot", "suite_path")
    operator_extra_links = (MlflowRunLink(),)
    ui_color = "#e3f4e1"

    def __init__(self, *, config_path: str, snapshot: Any, suite_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(config_path=config_path, **kwargs)
        self.snapshot = snapshot
        self.suite_path = suite_path

    def execute(self, context: Context) -> dict:
        import tempfile
        from pathlib import Path

        from airflow_mlops.core import validation
        from airflow_mlops.core.data import read_snapshot

        config = self.load_config()
        suite = self.suite_path or str(config.resolve(config.expectation_suite))
        with fail_on_bad_input():
            frame = read_snapshot(self.snapshot["uri"])
            self.log.info("Validating %d rows of %s with suite %s", len(frame), self.snapshot["uri"], suite)
            report = validation.validate_frame(frame, suite, data_name=config.name)
        with tempfile.TemporaryDirectory(prefix="gx-docs-") as tmp:
            docs = validation.write_data_docs(report, Path(tmp))
            run_id = validation.log_validation_to_mlflow(
                report,
                docs.parent,
                client=self.client,
                experiment=config.name,
                run_name=f"validate-{self.snapshot['digest'][7:19]}",
                tags=self.run_tags(context, data__digest=self.snapshot["digest"], mlops__step="validate"),
            )
        self.push_run(context, run_id)
        failures = [f.as_dict() for f in report.failed]
        summary = {
            "success": report.success,
            "evaluated": report.evaluated,
            "failed": len(report.failed),
            "mlflow_run_id": run_id,
            "digest": self.snapshot["digest"],
        }
        if not report.success:
            context["ti"].xcom_push(key="validation_failures", value=failures)
            raise DataValidationFailed(
                f"Data validation failed for {self.snapshot['source']} (snapshot kept at {self.snapshot['uri']}):\n"
                + validation.describe_failures(report)
                + f"\nValidation result and Data Docs: MLflow run {run_id}.",
                failures,
            )
        self.log.info("All %d expectations passed (MLflow run %s)", report.evaluated, run_id)
        return summary
