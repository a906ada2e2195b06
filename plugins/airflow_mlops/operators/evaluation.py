"""ChampionChallengerOperator: the gate a challenger must pass to reach production."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseBranchOperator, BaseOperator

from airflow_mlops.links import MlflowModelVersionLink, MlflowRunLink
from airflow_mlops.operators.base import DEFAULT_MLFLOW_CONN_ID, MlopsBaseOperator, fail_on_bad_input
from airflow_mlops.operators.deploy import PROMOTER_CONN_ID

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class ChampionChallengerOperator(MlopsBaseOperator):
    """Score champion and challenger on the same test rows and decide: PROMOTE, REJECT or NO_BASELINE_PROMOTE.

    The test rows are the challenger's test split of its snapshot (out of time with a date
    column) minus every row the champion was trained or selected on. The verdict, its reasons and
    evidence (metric table, plots, bootstrap, the test rows' hashes) go to an MLflow evaluation
    run and onto the challenger version's tags. Returns a small dict for the branch.

    :param snapshot: the dict returned by DataSnapshotOperator
    :param challenger: the dict returned by RegisterChallengerOperator (name, version)
    """

    template_fields: Sequence[str] = ("config_path", "snapshot", "challenger")
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#fff3c4"

    def __init__(self, *, config_path: str, snapshot: Any, challenger: Any, **kwargs: Any) -> None:
        super().__init__(config_path=config_path, **kwargs)
        self.snapshot = snapshot
        self.challenger = challenger

    def execute(self, context: Context) -> dict:
        from airflow_mlops.core import evaluation, registry
        from airflow_mlops.core.data import read_snapshot
        from airflow_mlops.core.rows import split_roles

        config = self.load_config()
        name, version = self.challenger["name"], str(self.challenger["version"])
        champion = registry.get_alias_version(self.client, name, registry.CHAMPION)
        champion_version = str(champion.version) if champion is not None else None
        self.log.info(
            "Challenger %s v%s vs champion %s", name, version, f"v{champion_version}" if champion_version else "(none yet)"
        )
        with fail_on_bad_input():
            test = split_roles(read_snapshot(self.snapshot["uri"]), config).test
            result = evaluation.evaluate(
                self.client, config, test,
                challenger_uri=f"models:/{name}/{version}",
                champion_uri=f"models:/{name}/{champion_version}" if champion_version else None,
                window_end=self.snapshot.get("window_end"),
                champion_window_end=champion.tags.get(registry.WINDOW_END_TAG) if champion is not None else None,
            )
        run_id = evaluation.log_evaluation(
            self.client, result, experiment=config.name, run_name=f"evaluate-v{version}",
            tags=self.run_tags(context, data__digest=self.snapshot["digest"], mlops__step="evaluate"),
            model_name=name, challenger_version=version, champion_version=champion_version,
        )
        self.push_run(context, run_id)
        context["ti"].xcom_push(key="model_name", value=name)
        context["ti"].xcom_push(key="model_version", value=version)
        verdict = result.verdict
        self.log.info("Verdict: %s\n  - %s", verdict.decision, "\n  - ".join(verdict.reasons))
        out = {
            "decision": verdict.decision,
            "promote": verdict.promote,
            "reasons": list(verdict.reasons),
            "model_name": name,
            "challenger_version": version,
            "champion_version": champion_version,
            "evaluation_run_id": run_id,
            "test_rows": None if result.test_rows is None else result.test_rows.summary(),
            "needs_approval": verdict.needs_approval,
        }
        if verdict.needs_approval:
            from airflow_mlops.core import approval

            out["approval_reasons"] = list(verdict.approval_reasons)
            out["approval"] = {
                "config_path": self.config_path,
                "evidence": approval.evidence(out, result.to_dict(), timeout_hours=config.evaluation.approval.timeout_hours),
            }
            self.log.info("A person decides (evaluation.approval: %s):\n  - %s", config.evaluation.approval.mode,
                          "\n  - ".join(verdict.approval_reasons))
        return out


class PromotionBranchOperator(BaseBranchOperator):
    """Follow the verdict: `deploy_task_id` when it says promote, else `reject_task_id`.

    A pipeline whose config asks for approval gets PromotionApprovalOperator instead (operators/approval.py).
    A verdict that asks for a person reaching this light branch (the config changed after the DAG was
    parsed) is rejected, saying so: never promoted unapproved.
    """

    template_fields: Sequence[str] = ("verdict",)

    def __init__(
        self, *, verdict: Any, deploy_task_id: str = "deploy", reject_task_id: str = "record_rejection", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.verdict = verdict
        self.deploy_task_id = deploy_task_id
        self.reject_task_id = reject_task_id

    def choose_branch(self, context: Context) -> str:
        if self.verdict.get("needs_approval"):
            from airflow_mlops.core import approval

            why = ("evaluation.approval asks a person, but this DAG was parsed without the approval step (its config "
                   "changed since): rejected; the next run waits for a person")
            ev = self.verdict["approval"]["evidence"]
            record = {**approval.outcome(ev, chosen=approval.REJECT, user=None, at=None, comment=why), "by": None,
                      "reason": why}
            context["ti"].xcom_push(key="approval", value=record)
            self.log.warning(why)
            return self.reject_task_id
        chosen = self.deploy_task_id if self.verdict["promote"] else self.reject_task_id
        self.log.info("Verdict %s -> %s", self.verdict["decision"], chosen)
        return chosen


class RecordRejectionOperator(BaseOperator):
    """Say why the challenger was rejected. The champion stays; the gate's reasons are already on the
    challenger version's tags and in the evaluation run. A rejection by a person (or by the approval's
    timeout), read from `approval_from`'s XCom `approval`, goes onto the version's tags and into the ledger.
    """

    template_fields: Sequence[str] = ("verdict",)
    ui_color = "#f6dcdc"

    def __init__(
        self, *, verdict: Any, approval_from: str | None = None, mlflow_conn_id: str = PROMOTER_CONN_ID, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.verdict = verdict
        self.approval_from = approval_from
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict:
        v = self.verdict
        self.log.info(
            "%s v%s rejected; champion stays v%s. Reasons:\n  - %s",
            v["model_name"], v["challenger_version"], v["champion_version"], "\n  - ".join(v["reasons"]),
        )
        out = {"model_name": v["model_name"], "rejected_version": v["challenger_version"],
               "champion_version": v["champion_version"]}
        record = approval_record(context, self.approval_from)
        if record is not None:
            self.log.info("The approval step: %s", record["reason"])
            out["approval"] = self._record(context, record)
        return out

    def _record(self, context: Context, record: dict) -> dict:
        from airflow_mlops.core import approval
        from airflow_mlops.core.tracking import configure
        from airflow_mlops.hooks.mlflow import MlflowHook

        # The promoter's identity, as deploy's: the ledger is written by promoters only.
        client = MlflowHook(mlflow_conn_id=self.mlflow_conn_id, fallback_conn_id=DEFAULT_MLFLOW_CONN_ID).get_conn()
        configure(client)
        v = self.verdict
        entry = approval.record_rejection(
            client, v["model_name"], str(v["challenger_version"]), record, gate_decision=v["decision"],
            task_tags=MlopsBaseOperator.run_tags(context),
        )
        return {**record, "ledger_at": entry["at"]}


def approval_record(context: Context, task_id: str | None) -> dict | None:
    """The answer the approval step pushed (XCom `approval` of `task_id`), or None when nobody was asked."""
    if not task_id:
        return None
    record = context["ti"].xcom_pull(task_ids=task_id, key="approval")
    return record if isinstance(record, dict) and record.get("decision") else None
