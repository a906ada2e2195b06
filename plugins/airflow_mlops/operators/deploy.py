"""DeployModelOperator: move `champion` to the challenger, smoke-test it as served, undo on failure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.links import MlflowModelVersionLink
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

    from airflow_mlops.core.payloads import PromotionResult

PROMOTION_POOL = "mlops_promotion"


class DeployModelOperator(MlopsBaseOperator):
    """Promote the evaluated challenger with a compare-and-swap on `champion`, then smoke-test it.

    Refuses to overwrite a champion someone else moved since the evaluation. Moves
    `previous_champion` to the old version, records both moves in the ledger, loads
    `models:/NAME@champion` and checks its predictions on a snapshot sample (and over HTTP
    when the config says `deployment.serve`). A failing smoke test puts the aliases back and
    fails the task. Emits an event on the task's outlets with the new version in its extra.

    A promotion a person approved (XCom `approval` of the `approval_from` task) is recorded with
    that person as the ledger's actor, and their answer on the version's tags.

    :param verdict: the dict returned by ChampionChallengerOperator
    :param snapshot: the dict returned by DataSnapshotOperator (the smoke-test sample comes from it)
    :param approval_from: the task that may have asked a person (the retrain DAG's `branch`)
    :param mlflow_conn_id: default `mlflow_promoter`; when that connection is not defined, `mlflow_default`
    """

    template_fields: Sequence[str] = ("config_path", "verdict", "snapshot")
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#d7f0dd"
    mlflow_fallback_conn_id = DEFAULT_MLFLOW_CONN_ID

    def __init__(
        self, *, config_path: str, verdict: Any, snapshot: Any, approval_from: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("pool", PROMOTION_POOL)
        kwargs.setdefault("mlflow_conn_id", PROMOTER_CONN_ID)
        super().__init__(config_path=config_path, **kwargs)
        self.verdict = verdict
        self.snapshot = snapshot
        self.approval_from = approval_from

    def execute(self, context: Context) -> dict:
        from airflow_mlops.core import approval, deploy, registry
        from airflow_mlops.core.data import read_snapshot

        config = self.load_config()
        name, version = self.verdict["model_name"], str(self.verdict["challenger_version"])
        approved = approval_record(context, self.approval_from)
        if self.verdict.get("needs_approval") and not (approved and approved.get("approved")):
            raise AirflowFailException(f"{name} v{version} needs a person's approval and has none: not deploying")
        if not self.verdict.get("promote") and not (approved and approved.get("approved")):
            raise AirflowFailException(
                f"{name} v{version} was not approved ({self.verdict.get('decision')}): not deploying"
            )
        task_tags = self.run_tags(context)
        actor = task_tags
        reason = f"{self.verdict['decision']}: " + "; ".join(self.verdict.get("reasons", []))
        if approved:
            actor = approval.actor(approved, task_tags)
            reason = f"{approved['reason']}; the gate said {reason}"
        with fail_on_bad_input():
            # A retry of a promotion this run already made is recognised and moves nothing.
            try:
                promotion = registry.promote(
                    self.client,
                    name,
                    version,
                    expected_champion=self.verdict.get("champion_version"),
                    actor=actor,
                    reason=reason,
                )
            except registry.ChampionMovedError as exc:
                if approved:  # the person approved against a champion that has changed: record it as stale
                    stale = approval.stale(approved, version, expected=exc.expected, found=exc.found)
                    approval.record_stale(
                        self.client, name, version, stale, gate_decision=self.verdict["decision"], task_tags=task_tags
                    )
                raise
        if approved:  # the answer's tags only once the move is made (a refused move must not read as a promotion)
            approval.tag_version(self.client, name, version, approved, self.verdict["decision"])
        self.log.info("champion -> v%s, previous_champion -> %s", version, promotion.get("previous_champion"))
        sample = read_snapshot(self.snapshot["uri"]).head(config.deployment.smoke_rows)
        try:
            smoke = deploy.smoke_test(
                self.client,
                name,
                sample,
                config,
                serve=config.deployment.serve,
                timeout_s=config.deployment.serve_timeout_s,
            )
        except deploy.SmokeTestFailed as exc:
            why = f"smoke test of v{version} failed: {exc}"
            restored = registry.restore(self.client, name, promotion, actor=actor, reason=why)
            self._alert_rollback(config, restored, context, why)
            raise AirflowFailException(
                f"Smoke test of {name}@champion (v{version}) failed, aliases put back as they were: {exc}"
            ) from exc
        except Exception:
            # Could not finish the smoke test (e.g. MLflow unreachable): never leave an unverified
            # champion serving. Put the aliases back if we can; a retry promotes and tests again.
            try:
                registry.restore(self.client, name, promotion, actor=actor, reason="smoke test could not run")
            except Exception as undo_exc:
                self.log.error("Could not put the aliases back yet (%s); the retry will finish the job", undo_exc)
            raise
        self.log.info("Smoke test passed: %s", smoke)
        ti = context["ti"]
        ti.xcom_push(key="model_name", value=name)
        ti.xcom_push(key="model_version", value=version)
        extra = {"model": name, "version": version, "previous_version": promotion.get("previous_champion")}
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        return {**promotion, "smoke_test": smoke}

    @staticmethod
    def _alert_rollback(config: Any, restored: PromotionResult, context: Context, why: str) -> None:
        from airflow_mlops.alerting import rollback_alert, send_alert

        ti = context["ti"]
        who = f"the deploy task of {ti.dag_id} run {ti.run_id}"
        send_alert(rollback_alert(config, restored, who=who, reason=why, automatic=True), config)
