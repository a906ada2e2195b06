"""ChampionChallengerOperator: the gate a challenger must pass to reach production; PromotionBranchOperator follows
its verdict (or a person's answer); RecordRejectionOperator records a rejection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseBranchOperator, BaseOperator

from airflow_mlops.links import MlflowModelVersionLink, MlflowRunLink
from airflow_mlops.operators.base import (
    DEFAULT_MLFLOW_CONN_ID,
    PROMOTER_CONN_ID,
    MlopsBaseOperator,
    approval_record,
    fail_on_bad_input,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_mlops.core.payloads import VerdictPayload


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

    def execute(self, context: Context) -> VerdictPayload:
        from airflow_mlops.core import evaluation, registry
        from airflow_mlops.core.data import read_snapshot
        from airflow_mlops.core.rows import split_roles

        config = self.load_config()
        name, version = self.challenger["name"], str(self.challenger["version"])
        champion = registry.get_alias_version(self.client, name, registry.CHAMPION)
        champion_version = str(champion.version) if champion is not None else None
        self.log.info(
            "Challenger %s v%s vs champion %s",
            name,
            version,
            f"v{champion_version}" if champion_version else "(none yet)",
        )
        with fail_on_bad_input():
            test = split_roles(read_snapshot(self.snapshot["uri"]), config).test
            result = evaluation.evaluate(
                self.client,
                config,
                test,
                challenger_uri=f"models:/{name}/{version}",
                champion_uri=f"models:/{name}/{champion_version}" if champion_version else None,
                window_end=self.snapshot.get("window_end"),
                champion_window_end=champion.tags.get(registry.WINDOW_END_TAG) if champion is not None else None,
            )
        run_id = evaluation.log_evaluation(
            self.client,
            result,
            experiment=config.name,
            run_name=f"evaluate-v{version}",
            tags=self.run_tags(context, data__digest=self.snapshot["digest"], mlops__step="evaluate"),
            model_name=name,
            challenger_version=version,
            champion_version=champion_version,
        )
        self.push_run(context, run_id)
        context["ti"].xcom_push(key="model_name", value=name)
        context["ti"].xcom_push(key="model_version", value=version)
        verdict = result.verdict
        self.log.info("Verdict: %s\n  - %s", verdict.decision, "\n  - ".join(verdict.reasons))
        out: VerdictPayload = {
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
                "evidence": approval.evidence(
                    out, result.to_dict(), timeout_hours=config.evaluation.approval.timeout_hours
                ),
            }
            self.log.info(
                "A person decides (evaluation.approval: %s):\n  - %s",
                config.evaluation.approval.mode,
                "\n  - ".join(verdict.approval_reasons),
            )
        return out


class PromotionBranchOperator(BaseBranchOperator):
    """Follow the verdict: `deploy_task_id` when it says promote, else `reject_task_id`; when the verdict asks
    for a person (`evaluation.approval`), wait for one first.

    Waiting uses Airflow 3.3's human-in-the-loop primitive, as its HITLBranchOperator does: the request (the
    evidence, Approve / Reject, a comment) is written (airflow_internals.write_hitl_request) and the task parks in the
    awaiting-input state (Required Actions, and the Models page). Approve -> deploy, Reject -> record_rejection;
    no answer within `evaluation.approval.timeout_hours` -> Reject (the scheduler applies the default). The
    answer (who, when, the comment) is pushed as XCom `approval` for deploy / record_rejection to record.
    Airflow's HITL operator module is not imported: it would cost every parse of the DAG file 3-8 ms.

    :param verdict: the dict returned by ChampionChallengerOperator
    """

    template_fields: Sequence[str] = ("verdict",)
    ui_color = "#fdf0c8"

    def __init__(
        self, *, verdict: Any, deploy_task_id: str = "deploy", reject_task_id: str = "record_rejection", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.verdict = verdict
        self.deploy_task_id = deploy_task_id
        self.reject_task_id = reject_task_id

    def choose_branch(self, context: Context) -> str:
        if self.verdict.get("needs_approval"):
            self._wait_for_a_person(context)  # parks the task; Airflow resumes it in execute_complete
        chosen = self.deploy_task_id if self.verdict["promote"] else self.reject_task_id
        self.log.info("Verdict %s -> %s", self.verdict["decision"], chosen)
        return chosen

    def _wait_for_a_person(self, context: Context) -> NoReturn:
        from datetime import timedelta

        from airflow.sdk import Param

        from airflow_mlops.airflow_internals import await_input, write_hitl_request
        from airflow_mlops.core import approval as ap
        from airflow_mlops.dag_defaults import PipelineNotifier
        from airflow_mlops.links import model_version_url, run_url

        request = self.verdict["approval"]
        ev = request["evidence"]
        links = {
            "MLflow evaluation run": run_url(str(ev["evaluation_run_id"])),
            f"{ev['model_name']} v{ev['challenger_version']}": model_version_url(
                str(ev["model_name"]), str(ev["challenger_version"])
            ),
        }
        subject, body = ap.request_text(ev, links)
        comment = Param(
            None,
            type=["null", "string"],
            maxLength=ap.COMMENT_LIMIT,
            source="task",
            description="Why (recorded on the model version and in the ledger)",
        )
        context["ti"].xcom_push(key="approval_request", value=ev)  # what the Models page lists
        write_hitl_request(
            ti_id=context["task_instance"].id,
            options=[ap.APPROVE, ap.REJECT],
            subject=subject,
            body=body,
            defaults=[ap.REJECT],  # what the scheduler answers when the time is up
            params={ap.COMMENT: comment.serialize()},
        )
        PipelineNotifier("approval_waiting", request["config_path"])(context)
        self.log.info("Waiting up to %g h for a person:\n%s", ev["timeout_hours"], body)
        await_input(method_name="execute_complete", timeout=timedelta(hours=float(ev["timeout_hours"])))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resumed with the answer (Airflow's HITL resume event): record it and follow it."""
        from airflow_mlops.core import approval as ap

        ev = self.verdict["approval"]["evidence"]
        if event.get("timedout") or event.get("error_type") == "timeout":
            record = ap.outcome(ev, chosen=None, user=None, at=event.get("responded_at"), comment=None, timed_out=True)
        else:
            chosen, comment = event.get("chosen_options") or [], (event.get("params_input") or {}).get(ap.COMMENT)
            if len(chosen) != 1 or chosen[0] not in (ap.APPROVE, ap.REJECT):
                raise ValueError(f"The answer {chosen} is not one of {ap.APPROVE!r} or {ap.REJECT!r}")
            if comment is not None and (not isinstance(comment, str) or len(comment) > ap.COMMENT_LIMIT):
                raise ValueError(f"The comment must be text of at most {ap.COMMENT_LIMIT} characters")
            record = ap.outcome(
                ev, chosen=chosen[0], user=event.get("responded_by_user"), at=event.get("responded_at"), comment=comment
            )
        self.log.info("%s", record["reason"])
        context["ti"].xcom_push(key="approval", value=record)
        return self.do_branch(context, self.deploy_task_id if record["approved"] else self.reject_task_id)


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
            v["model_name"],
            v["challenger_version"],
            v["champion_version"],
            "\n  - ".join(v["reasons"]),
        )
        out = {
            "model_name": v["model_name"],
            "rejected_version": v["challenger_version"],
            "champion_version": v["champion_version"],
        }
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
            client,
            v["model_name"],
            str(v["challenger_version"]),
            record,
            gate_decision=v["decision"],
            task_tags=MlopsBaseOperator.run_tags(context),
        )
        return {**record, "ledger_at": entry["at"]}
