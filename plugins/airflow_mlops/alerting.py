"""Pipeline alerts through Airflow, routed by the pipeline YAML's `alerts:` section.

Every alert is written to the log (the task's, or the CLI's stderr); the channels its event is
routed to get it too: e-mail through an Airflow SMTP connection (the smtp provider's
SmtpNotifier), a JSON or Slack webhook through an Airflow HTTP connection. Sending never fails
a task and never hides its error: a channel that cannot be reached is logged, naming the
pipeline, the channel, the connection and why.

The callbacks that call it from the DAGs (`PipelineNotifier`, `RunFailureCallback`) are in
`airflow_mlops.dag_defaults`, which every DAG parse imports: this module is imported only when an alert is sent.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Context

    from airflow_mlops.core.alerts import Alert
    from airflow_mlops.core.config import AlertChannel, PipelineConfig
    from airflow_mlops.core.payloads import PromotionResult

log = logging.getLogger("airflow_mlops.alerts")
WEBHOOK_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- delivery


def send_alert(alert: Alert, config: PipelineConfig) -> dict[str, str]:
    """Log `alert`, then send it to each channel its event is routed to. Never raises.

    Returns {channel: "sent" or why it was not}.
    """
    from airflow_mlops.core.alerts import first_line
    from airflow_mlops.operators.base import redacted

    for text in (alert.summary, alert.meaning, *alert.details, *alert.links.values()):
        redacted(text)  # what the alert hides, Airflow's log masker hides in the rest of the log too
    level = logging.ERROR if alert.event in ("run_failed", "rolled_back") else logging.INFO
    log.log(level, "[airflow-mlops alert] %s\n%s", alert.subject(), alert.text())
    outcomes: dict[str, str] = {}
    for channel in config.alerts.channels_for(alert.event):
        try:
            if channel.type == "email":
                _send_email(channel, alert)
            else:
                _post_webhook(channel, alert)
        except Exception as exc:  # a notifier never fails the task or hides its error
            why = redacted(first_line(str(exc)) or type(exc).__name__)
            outcomes[channel.name] = why
            log.error(
                "pipeline %r: the %s alert was NOT sent to channel %r (%s through connection %r): %s. "
                "The task is not affected; the alert is in the log above",
                config.name,
                alert.event,
                channel.name,
                channel.type,
                channel.conn_id,
                why,
            )
        else:
            outcomes[channel.name] = "sent"
            log.info(
                "pipeline %r: %s alert sent to channel %r (%s)", config.name, alert.event, channel.name, channel.type
            )
    return outcomes


def _connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise LookupError(
            f"Airflow connection {conn_id!r} does not exist: define it (Admin > Connections, or the environment "
            f"variable AIRFLOW_CONN_{conn_id.upper()})"
        ) from None


def _send_email(channel: AlertChannel, alert: Alert) -> None:
    import socket

    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    conn = _connection(channel.conn_id)
    sender = (
        channel.from_email or (conn.extra_dejson or {}).get("from_email") or f"airflow-mlops@{socket.gethostname()}"
    )
    notifier = SmtpNotifier(
        to=list(channel.to),
        from_email=sender,
        subject=alert.subject(),
        html_content=alert.html(),
        smtp_conn_id=channel.conn_id,
    )
    # notify(), not __call__: our text is final and must not be rendered as a Jinja template.
    notifier.notify({})


def webhook_url(conn: Any) -> str:
    """The URL of an HTTP connection: its host when that is a full URL, else schema://host[:port]/endpoint."""
    extra = conn.extra_dejson or {}
    endpoint = str(extra.get("endpoint", "")).lstrip("/")
    host = (conn.host or "").rstrip("/")
    if host.startswith(("http://", "https://")):
        base = host
    else:
        port = f":{conn.port}" if conn.port else ""
        base = f"{conn.schema or 'https'}://{host}{port}"
    return f"{base}/{endpoint}" if endpoint else base


def _no_redirects_opener() -> Any:
    """A urllib opener that follows no redirect: a 3xx comes back as an HTTPError (the POST, its Authorization
    and the connection's headers go to the configured host only, never to where a redirect points)."""
    import urllib.request

    class _Refuse(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
            return None  # urllib then raises HTTPError(code) with the response's headers

    return urllib.request.build_opener(_Refuse)


def _post_webhook(channel: AlertChannel, alert: Alert) -> None:
    import base64
    import urllib.error
    import urllib.request

    conn = _connection(channel.conn_id)
    if not conn.host:
        raise ValueError(f"connection {channel.conn_id!r} has no host: put the webhook URL in its host field")
    headers = {"Content-Type": "application/json", **(conn.extra_dejson or {}).get("headers", {})}
    if conn.login:
        token = base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    url = webhook_url(conn)
    if not url.startswith(("http://", "https://")):
        raise ValueError(
            f"connection {channel.conn_id!r} does not name an http(s) URL; webhooks are POSTed over HTTP(S)"
        )
    request = urllib.request.Request(url, data=alert.to_json(channel.format), headers=headers, method="POST")
    try:
        with _no_redirects_opener().open(request, timeout=WEBHOOK_TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            from airflow_mlops.core.alerts import redact

            location = redact(str(exc.headers.get("Location") or "no Location")) if exc.headers else "no Location"
            raise ConnectionError(
                f"the webhook answered HTTP {exc.code} {exc.reason}, a redirect to {location}: redirects are not followed "
                f"(they would send the connection's credentials elsewhere); put the final URL in connection "
                f"{channel.conn_id!r}"
            ) from None
        raise ConnectionError(f"the webhook answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"the webhook cannot be reached ({reason})") from None
    if not 200 <= status < 300:
        raise ConnectionError(f"the webhook answered HTTP {status}")


# --------------------------------------------------------------------------- alerts from an Airflow context


def airflow_run_url(dag_id: str, run_id: str) -> str:
    from urllib.parse import quote

    from airflow.sdk import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/") or "http://localhost:8080/"
    return f"{base.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _xcom(context: Context | Mapping[str, Any], task_id: str, key: str = "return_value") -> Any:
    try:
        return context["ti"].xcom_pull(task_ids=task_id, key=key)
    except Exception:  # a missing XCom only makes the message shorter
        return None


def _hours(value: Any) -> str:
    return (
        f"{value:g} h" if isinstance(value, int | float) else "the configured time (evaluation.approval.timeout_hours)"
    )


def alert_from_context(event: str, context: Context | Mapping[str, Any], config: PipelineConfig) -> Alert:
    """The alert for `event` from a task callback's context (facts from the task's XComs)."""
    from airflow_mlops.core.alerts import Alert, failing_checks, first_line
    from airflow_mlops.links import model_version_url, run_url
    from airflow_mlops.operators.base import run_trigger

    ti = context["ti"]
    dag_id, run_id, task_id = ti.dag_id, ti.run_id, ti.task_id
    links = {"Airflow run": airflow_run_url(dag_id, run_id)}
    trigger = run_trigger(context)  # type: ignore[arg-type]
    started_by = trigger.get("mlops.trigger", "unknown")
    if trigger.get("mlops.trigger.summary"):
        started_by += f" ({trigger['mlops.trigger.summary']})"
    pipeline = config.name

    if event == "run_failed":
        error = context.get("exception")
        links["Task log"] = ti.log_url
        mlflow_run = _xcom(context, task_id, "mlflow_run_id")
        if mlflow_run:
            links["MLflow run"] = run_url(str(mlflow_run))
        return Alert(
            event=event,
            pipeline=pipeline,
            summary=f"{dag_id} run {run_id} failed at task {task_id!r} (try {ti.try_number}).",
            meaning="The serving champion was not changed by this run; the tasks after the failure did not run. "
            "Read the task log, fix the cause, then clear the task or wait for the next run.",
            details=[f"error: {first_line(str(error)) if error else 'see the task log'}", f"started by: {started_by}"],
            links=links,
        )
    if event in ("promoted", "rejected"):
        verdict = _xcom(context, "evaluate") or {}
        name, version = verdict.get("model_name", config.model_name), verdict.get("challenger_version", "?")
        champion = verdict.get("champion_version")
        if verdict.get("evaluation_run_id"):
            links["MLflow evaluation run"] = run_url(str(verdict["evaluation_run_id"]))
        links["Model version"] = model_version_url(str(name), str(version))
        test_rows = verdict.get("test_rows") or {}
        judged = (
            f"judged on {test_rows.get('test_rows')} test rows ({test_rows.get('first_day')}..{test_rows.get('last_day')}), "
            f"{test_rows.get('excluded_seen_by_champion')} excluded as the champion's"
            if test_rows
            else "test rows: see the evaluation run"
        )
        primary = next((r for r in verdict.get("reasons", []) if config.metrics.primary in r and "margin" in r), "")
        answer = _xcom(context, "branch", "approval") if verdict.get("needs_approval") else None
        person = [str(answer["reason"])] if isinstance(answer, dict) and answer.get("reason") else []  # who decided
        if event == "promoted":
            return Alert(
                event=event,
                pipeline=pipeline,
                summary=f"{name} v{version} is the new champion (was {'v' + str(champion) if champion else 'none'}), "
                f"{verdict.get('decision', 'PROMOTE')}.",
                meaning=f"models:/{name}@champion now serves v{version}; it passed the smoke test. To undo: "
                f"airflow-mlops rollback {name} --reason '...'.",
                details=[
                    d for d in (*person, primary.removeprefix("PASS: "), judged, f"started by: {started_by}") if d
                ],
                links=links,
            )
        fails = failing_checks(list(verdict.get("reasons", [])))
        return Alert(
            event=event,
            pipeline=pipeline,
            summary=f"{name} v{version} was rejected; the champion stays {'v' + str(champion) if champion else 'unset'}.",
            meaning="Nothing changed in production. The failing checks say why; the evidence is in the evaluation run.",
            details=[*person, *(f"failed: {f}" for f in fails[:5]), judged, f"started by: {started_by}"],
            links=links,
        )
    if event == "approval_waiting":
        verdict = _xcom(context, "evaluate") or {}
        ev = (verdict.get("approval") or {}).get("evidence") or {}
        name, version = ev.get("model_name", config.model_name), ev.get("challenger_version", "?")
        champion = ev.get("champion_version")
        links["Required action"] = f"{links['Airflow run']}/tasks/{ti.task_id}/required_actions"
        if ev.get("evaluation_run_id"):
            links["MLflow evaluation run"] = run_url(str(ev["evaluation_run_id"]))
        links["Model version"] = model_version_url(str(name), str(version))
        return Alert(
            event=event,
            pipeline=pipeline,
            summary=f"{name} v{version} waits for a person: promote it over {'v' + str(champion) if champion else 'no champion'}?",
            meaning=f"Nothing changes until someone answers (Airflow's Required Actions, or the Models page). No answer "
            f"within {_hours(ev.get('timeout_hours'))} rejects it; the champion stays.",
            details=[
                *(f"why: {w}" for w in ev.get("why", [])[:5]),
                f"the gate said: {ev.get('decision')}",
                f"started by: {started_by}",
            ],
            links=links,
        )
    if event == "drift_confirmed":
        request = _xcom(context, task_id) or {}
        if request.get("mlflow_run_id"):
            links["MLflow drift check"] = run_url(str(request["mlflow_run_id"]))
        return Alert(
            event=event,
            pipeline=pipeline,
            summary=f"Drift confirmed for {request.get('model_name', config.model_name)} "
            f"(champion v{request.get('reference_version', '?')}): a retrain was requested.",
            meaning="The retraining DAG starts from this request; its new model is promoted only if it beats the "
            "champion on fresh rows.",
            details=[str(request.get("summary", "")), str(request.get("reason", ""))],
            links=links,
        )
    if event == "performance_decay":
        request = _xcom(context, task_id) or {}
        if request.get("mlflow_run_id"):
            links["MLflow performance check"] = run_url(str(request["mlflow_run_id"]))
        name, version = request.get("model_name", config.model_name), request.get("reference_version", "?")
        links["Model version"] = model_version_url(str(name), str(version))
        metric = request.get("metric") or config.metrics.primary
        realized, promised = request.get("realized"), request.get("promised")
        figures = (
            f"realized {metric} {realized:.4f} [{request.get('ci_low'):.4f}, {request.get('ci_high'):.4f}] on the "
            f"labels of {request.get('day')}, promised {promised:.4f} at promotion"
            if isinstance(realized, float)
            and isinstance(promised, float)
            and isinstance(request.get("ci_low"), float)
            and isinstance(request.get("ci_high"), float)
            else ""
        )
        return Alert(
            event=event,
            pipeline=pipeline,
            summary=f"Performance decay confirmed for {name} (champion v{version}): a retrain was requested.",
            meaning="The champion's predictions come true less often than its test set promised (its inputs may look "
            "unchanged: a new reason behind the outcomes). The retraining DAG starts from this request; its new "
            "model is promoted only if it beats the champion on fresh rows.",
            details=[d for d in (figures, str(request.get("summary", "")), str(request.get("reason", ""))) if d],
            links=links,
        )
    raise ValueError(f"no alert is built from a task context for event {event!r}")


def rollback_alert(config: PipelineConfig, result: PromotionResult, *, who: str, reason: str, automatic: bool) -> Alert:
    """The alert for a champion put back (a rollback by a person, or the deploy's undo after a failed smoke test)."""
    from airflow_mlops.core.alerts import Alert
    from airflow_mlops.links import model_version_url

    name = result.get("name", config.model_name)
    champion = result.get("champion")
    return Alert(
        event="rolled_back",
        pipeline=config.name,
        summary=f"{name}: the champion is v{champion} again ({'automatic undo' if automatic else 'rollback'} by {who}).",
        meaning=f"models:/{name}@champion serves v{champion}; the version it replaced no longer serves.",
        details=[f"reason: {reason}", f"previous_champion: v{result.get('previous_champion')}"],
        links={"Model version": model_version_url(str(name), str(champion))},
    )


def send_rollback_alert(
    model: str, result: PromotionResult, *, who: str, reason: str, config_path: str | None = None
) -> dict[str, str] | None:
    """The rolled_back alert of a rollback by a person (CLI, Models page), through the routes of the pipeline
    serving `model` in the pipeline catalog (or of `config_path`); None, logged, when no pipeline there serves it
    (or the one that claims it was refused, as the DAGs refuse it)."""
    from airflow_mlops import settings
    from airflow_mlops.core.catalog import read_catalog
    from airflow_mlops.core.config import load_config

    config: PipelineConfig | None
    if config_path:
        config = load_config(config_path, check_estimators=False)
    else:
        catalog = read_catalog(settings.pipelines_folder())
        config = catalog.serving(model)
        if config is None:
            why = catalog.refused_models.get(model) or f"no pipeline in {catalog.folder} serves it"
            log.warning("no rolled_back alert sent for %s: %s", model, why)
            return None
    return send_alert(rollback_alert(config, result, who=who, reason=reason, automatic=False), config)
