"""PromotionApprovalOperator: the retrain DAG's branch when a person may have to approve (evaluation.approval).

Imported only for pipelines whose config (or a variant's) asks for approval: Airflow's HITL module
costs ~10-15 ms at every DAG parse, which pipelines that never ask do not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator, HITLOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class PromotionApprovalOperator(HITLBranchOperator):
    """Follow the verdict, or, when it asks for a person, wait for one (Airflow's human-in-the-loop branch).

    Without `needs_approval` in the verdict it branches at once like PromotionBranchOperator. With it,
    the task waits in Airflow's awaiting-input state (Required Actions, and the Models page) with the
    evidence in the request: Approve -> `deploy_task_id`, Reject -> `reject_task_id`; no answer within
    `evaluation.approval.timeout_hours` -> Reject (the scheduler applies the default). The answer
    (who, when, the comment) is pushed as XCom `approval` for deploy / record_rejection to record.

    :param verdict: the dict returned by ChampionChallengerOperator
    """

    template_fields: Sequence[str] = ("verdict",)
    ui_color = "#fdf0c8"

    def __init__(
        self, *, verdict: Any, deploy_task_id: str = "deploy", reject_task_id: str = "record_rejection", **kwargs: Any
    ) -> None:
        from airflow_mlops.core import approval as ap

        params = kwargs.pop("params", None)  # the DAG's, merged in by Airflow (HITLOperator keeps the task's only)
        params = params if isinstance(params, ParamsDict) else ParamsDict(params or {})
        params[ap.COMMENT] = Param(None, type=["null", "string"], maxLength=ap.COMMENT_LIMIT,
                                   description="Why (recorded on the model version and in the ledger)")
        super().__init__(
            subject="Promote the challenger?",  # the real subject and body are written when the task waits
            options=[ap.APPROVE, ap.REJECT],
            defaults=[ap.REJECT],  # what the scheduler answers when the time is up
            options_mapping={ap.APPROVE: deploy_task_id, ap.REJECT: reject_task_id},
            params=params,
            **kwargs,
        )
        self.verdict = verdict
        self.deploy_task_id = deploy_task_id
        self.reject_task_id = reject_task_id

    def execute(self, context: Context) -> Any:
        if not self.verdict.get("needs_approval"):
            chosen = self.deploy_task_id if self.verdict["promote"] else self.reject_task_id
            self.log.info("Verdict %s -> %s", self.verdict["decision"], chosen)
            return self.do_branch(context, chosen)
        from datetime import timedelta

        from airflow_mlops.alerting import PipelineNotifier
        from airflow_mlops.core import approval as ap
        from airflow_mlops.links import model_version_url, run_url

        request = self.verdict["approval"]
        ev = request["evidence"]
        links = {"MLflow evaluation run": run_url(str(ev["evaluation_run_id"])),
                 f"{ev['model_name']} v{ev['challenger_version']}": model_version_url(str(ev["model_name"]),
                                                                                      str(ev["challenger_version"]))}
        self.subject, self.body = ap.request_text(ev, links)
        self.response_timeout = timedelta(hours=float(ev["timeout_hours"]))
        self.notifiers = [PipelineNotifier("approval_waiting", request["config_path"])]
        context["ti"].xcom_push(key="approval_request", value=ev)  # what the Models page lists
        self.log.info("Waiting up to %g h for a person:\n%s", ev["timeout_hours"], self.body)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from airflow_mlops.core import approval as ap

        ev = self.verdict["approval"]["evidence"]
        if event.get("error_type") == "timeout" or event.get("timedout"):
            record = ap.outcome(ev, chosen=None, user=None, at=event.get("responded_at"), comment=None, timed_out=True)
        else:
            answer = HITLOperator.execute_complete(self, context, event)  # Airflow's checks of the answer
            record = ap.outcome(
                ev, chosen=answer["chosen_options"][0], user=answer["responded_by_user"],
                at=answer["responded_at"], comment=(answer["params_input"] or {}).get(ap.COMMENT),
            )
        self.log.info("%s", record["reason"])
        context["ti"].xcom_push(key="approval", value=record)
        return self.do_branch(context, self.deploy_task_id if record["approved"] else self.reject_task_id)
