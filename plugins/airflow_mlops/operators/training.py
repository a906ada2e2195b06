"""Training operators: list candidates, train one candidate, register the best as challenger."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlops.links import MlflowModelVersionLink, MlflowRunLink
from airflow_mlops.operators.base import MlopsBaseOperator, fail_on_bad_input

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_mlops.core.payloads import TrainingResult


class PipelineCandidatesOperator(MlopsBaseOperator):
    """Validate the pipeline config and return its candidate names (for dynamic task mapping)."""

    template_fields: Sequence[str] = ("config_path",)
    ui_color = "#f0f0f0"

    def execute(self, context: Context) -> list[str]:
        config = self.load_config()
        names = [c.name for c in config.candidates]
        self.log.info("Pipeline %r from %s: %d candidate(s): %s", config.name, self.config_path, len(names), names)
        return names


class TrainModelOperator(MlopsBaseOperator):
    """Fit one candidate on the snapshot's train rows, score it on the validation rows, and log it to
    MLflow (params, validation metrics, data, the record of the rows it saw, the model). The test
    rows are left for the gate.

    Returns {candidate, run_id, model_uri, metrics, primary_metric, primary_value}.

    :param snapshot: the dict returned by DataSnapshotOperator
    :param candidate: the candidate name from the config's model.candidates (map over several)
    """

    template_fields: Sequence[str] = ("config_path", "snapshot", "candidate")
    operator_extra_links = (MlflowRunLink(),)
    ui_color = "#fde8d7"

    def __init__(self, *, config_path: str, snapshot: Any, candidate: str, **kwargs: Any) -> None:
        super().__init__(config_path=config_path, **kwargs)
        self.snapshot = snapshot
        self.candidate = candidate

    def execute(self, context: Context) -> TrainingResult:
        from airflow_mlops.core import training
        from airflow_mlops.core.data import read_snapshot
        from airflow_mlops.core.errors import TrainingError
        from airflow_mlops.core.rows import split_roles

        config = self.load_config()
        with fail_on_bad_input():
            config.candidate(self.candidate)
            frame = read_snapshot(self.snapshot["uri"])
            try:
                training.check_training_data(frame, config)
                split = split_roles(frame, config)
            except TrainingError as exc:
                raise TrainingError(f"{exc} (the batch is kept for inspection at {self.snapshot['uri']})") from None
            self.log.info("Training %r: %s", self.candidate, split.describe())
            result = training.train_candidate(
                split,
                config,
                self.candidate,
                client=self.client,
                experiment=config.name,
                data_digest=self.snapshot["digest"],
                data_uri=self.snapshot["uri"],
                tags=self.run_tags(context, data__digest=self.snapshot["digest"], mlops__step="train"),
            )
        self.push_run(context, result["run_id"])
        self.log.info(
            "%s, validation: %s", self.candidate, ", ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items())
        )
        return result


class RegisterChallengerOperator(MlopsBaseOperator):
    """Pick the best trained candidate on the validation rows and register it as a new model version
    with alias `challenger`.

    A retry finds the version it already registered (same run, same data digest).

    :param results: the TrainModelOperator results (a mapped task's XComArg)
    :param snapshot: the dict returned by DataSnapshotOperator
    """

    template_fields: Sequence[str] = ("config_path", "results", "snapshot", "alias")
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())

    def __init__(
        self, *, config_path: str, results: Any, snapshot: Any, alias: str = "challenger", **kwargs: Any
    ) -> None:
        super().__init__(config_path=config_path, **kwargs)
        self.results = results
        self.snapshot = snapshot
        self.alias = alias

    def execute(self, context: Context) -> dict:
        from airflow_mlops.core import registry, training

        config = self.load_config()
        # Index, don't iterate: iterating a mapped XCom sequence probes one item past its end.
        results = [self.results[i] for i in range(len(self.results))]
        with fail_on_bad_input():
            best = training.select_best(results, config)
        for r in results:
            mark = "  <- best" if r["candidate"] == best["candidate"] else ""
            self.log.info(
                "%-28s validation %s=%.4f%s", r["candidate"], config.metrics.primary, r["primary_value"], mark
            )
        tags = self.run_tags(
            context,
            data__digest=self.snapshot["digest"],
            mlops__candidate=best["candidate"],
            mlops__primary_metric=config.metrics.primary,
            mlops__primary_value=f"{best['primary_value']:.6f}",
        )
        if self.snapshot.get("window_end"):  # lets the evaluation refuse a backfill over a newer champion
            tags[registry.WINDOW_END_TAG] = self.snapshot["window_end"]
        version = registry.register_challenger(
            self.client, config.model_name, best["model_uri"], best["run_id"], tags=tags, alias=self.alias
        )
        ti = context["ti"]
        ti.xcom_push(key="model_name", value=version["name"])
        ti.xcom_push(key="model_version", value=str(version["version"]))
        self.push_run(context, best["run_id"])
        self.log.info(
            "Registered %s version %s (%s, %s=%.4f) as @%s",
            version["name"],
            version["version"],
            best["candidate"],
            config.metrics.primary,
            best["primary_value"],
            self.alias,
        )
        return {**version, "candidate": best["candidate"], "run_id": best["run_id"], "metrics": best["metrics"]}
