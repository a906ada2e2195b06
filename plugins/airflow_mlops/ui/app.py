"""Routes of the Models page (mounted at /mlops in Airflow's API server). Thin: data from core.overview,
permissions and CSRF from ui.security, HTML from ui.render.

    GET  /models                        every model the user may see (HTML)
    GET  /models/{name}                 one model: aliases, verdict, evidence, versions, ledger (HTML)
    GET  /models/{name}/evidence/{run_id}/{path}?sig=   an evidence PNG (signed link from the page)
    GET  /runs/{dag_id}/{run_id}        the DAG run's "Models" tab: the versions it registered (HTML)
    GET  /api/models                    = `airflow-mlops status --json`, filtered to what the user may see
    GET  /api/models/{name}             the model page's data as JSON
    POST /api/models/{name}/rollback    {"reason": ..., "expected_champion": ..., "to_version"?: ...}
    POST /api/models/{name}/approvals   {"dag_id": ..., "run_id": ..., "decision": "approve"|"reject", "comment": ...}

Both POSTs are recorded in Airflow's audit log (events `mlops.rollback`, `mlops.approval`) with the user.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from airflow_mlops.airflow_internals import audit_log, login_url
from airflow_mlops.ui import render, security
from airflow_mlops.ui.requests import ApprovalAnswer, RollbackRequest  # noqa: TC001 (FastAPI reads them at runtime)

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: The MLflow client is re-made this often (a changed `mlflow_promoter`/`mlflow_default` connection is picked up).
CLIENT_TTL_S = 60.0
#: Headers of every page: no inline script runs, only this server frames it, nothing is cached.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

User = Annotated[BaseUser, Depends(get_user)]
#: Airflow audit-log events (table `log`, the Audit Log view) of the page's actions: Airflow's own action logging.
AUDIT_ROLLBACK, AUDIT_APPROVAL = "mlops.rollback", "mlops.approval"
_client_lock = threading.Lock()
_client_cache: dict[str, Any] = {}


def create_app() -> FastAPI:
    """The Models page's FastAPI app; every route needs an Airflow user (`get_user`: 401/403 without)."""
    app = FastAPI(title="airflow-mlops Models", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if _wants_html(request):
            login = _login_url(request) if exc.status_code == status.HTTP_401_UNAUTHORIZED else None
            return HTMLResponse(
                render.error_page(exc.status_code, str(exc.detail), login),
                exc.status_code,
                headers={**PAGE_HEADERS, **(exc.headers or {})},
            )
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, exc: RequestValidationError) -> Response:
        # one readable line naming each field (the page shows `detail` as text), the structured list beside it
        errors = [{"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "msg": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['msg']}" for e in errors)
        return JSONResponse({"detail": detail, "errors": errors}, status.HTTP_422_UNPROCESSABLE_ENTITY)

    @app.get("/models", response_class=HTMLResponse)
    def models_page(request: Request, user: User) -> HTMLResponse:
        rows = _visible_rows(user)
        return _html(request, "Models", render.models_index(rows, _urls(request), _pending_counts(rows)), user)

    @app.get("/models/{name}", response_class=HTMLResponse)
    def model_page(
        request: Request,
        name: str,
        user: User,
        versions_before: Annotated[int | None, Query(ge=1)] = None,
        ledger_page: Annotated[int, Query(ge=1)] = 1,
    ) -> HTMLResponse:
        detail, access = _detail(user, name, versions_before, ledger_page)
        for item in detail["evidence"]:
            item["src"] = _evidence_src(request, name, item["run_id"], item["path"])
        detail["pending_approvals"] = _pending(user, name)
        body = render.model_detail(detail, _urls(request), can_edit=access.edit)
        may_respond = any(p["can_respond"] for p in detail["pending_approvals"])
        return _html(request, f"{name} · Models", body, user, csrf=access.edit or may_respond)

    @app.get("/models/{name}/evidence/{run_id}/{path:path}")
    def evidence_png(name: str, run_id: str, path: str, user: User, sig: str = "") -> Response:
        if not sig or sig != security.sign("evidence", name, run_id, path) or not path.endswith(".png"):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such evidence plot")
        _require(user, name, "read")
        with tempfile.TemporaryDirectory(prefix="mlops-ui-") as tmp:
            data = Path(_client().download_artifacts(run_id, path, tmp)).read_bytes()
        return Response(
            data,
            media_type="image/png",
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse)
    def dag_run_tab(request: Request, dag_id: str, run_id: str, user: User) -> HTMLResponse:
        from airflow_mlops.core.overview import versions_of_dag_run

        if not security.can_read_dag(user, dag_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"you may not see DAG {dag_id}")
        versions = versions_of_dag_run(_client(), dag_id, run_id)
        return _html(
            request, "Models of this DAG run", render.dag_run_versions(dag_id, run_id, versions, _urls(request)), user
        )

    @app.get("/api/models")
    def models_json(user: User) -> list[dict]:
        return _visible_rows(user)

    @app.get("/api/models/{name}")
    def model_json(
        name: str,
        user: User,
        versions_before: Annotated[int | None, Query(ge=1)] = None,
        ledger_page: Annotated[int, Query(ge=1)] = 1,
    ) -> dict:
        detail, access = _detail(user, name, versions_before, ledger_page)
        return {**detail, "can_edit": access.edit, "pending_approvals": _pending(user, name)}

    # dependencies run before the body model: the audit log's ids are checked, then the action logged, then the CSRF
    # token (a forged POST is a 403 and recorded, whatever its body)
    @app.post(
        "/api/models/{name}/rollback",
        dependencies=[Depends(_audit_ids_are_strings), Depends(audit_log(AUDIT_ROLLBACK)), Depends(_checked_csrf)],
    )
    def rollback(name: str, user: User, body: RollbackRequest) -> dict:
        _require(user, name, "edit")
        return _rollback(name, user, body.model_dump())

    @app.post(
        "/api/models/{name}/approvals",
        dependencies=[Depends(_audit_ids_are_strings), Depends(audit_log(AUDIT_APPROVAL)), Depends(_checked_csrf)],
    )
    def answer_approval(name: str, user: User, body: ApprovalAnswer) -> dict:
        _require(user, name, "read")  # answering is then the auth manager's call on the request's DAG (respond)
        return _answer(name, user, body.model_dump())

    return app


# --------------------------------------------------------------------------- helpers


async def _audit_ids_are_strings(request: Request) -> None:
    """422 naming the field when the JSON body's dag_id/run_id/task_id is not a string: Airflow's action logging
    writes them into its `log` table's columns and answers 500 on anything else."""
    if "application/json" not in request.headers.get("content-type", "") or not await request.body():
        return
    try:
        body = await request.json()
    except ValueError:
        return  # not JSON: the body model refuses it
    if isinstance(body, dict):
        errors = [
            {"loc": ("body", key), "msg": "Input should be a valid string", "type": "string_type"}
            for key in ("dag_id", "run_id", "dag_run_id", "task_id")
            if body.get(key) is not None and not isinstance(body[key], str)
        ]
        if errors:
            raise RequestValidationError(errors)


def _checked_csrf(request: Request, user: User) -> None:
    """403 unless the POST comes from our own page with this user's token (security.check_csrf)."""
    security.check_csrf(request, user)


def _client() -> MlflowClient:
    """A configured MlflowClient, kept CLIENT_TTL_S: the promoter's (`mlflow_promoter`, else `mlflow_default`, else
    the local store), as rollbacks and stale approvals write the ledger. One identity: a process holds one login per
    MLflow server (core.mlflow_auth), so a second one would change the login of the first."""
    with _client_lock:
        cached = _client_cache.get("client")
        if cached is None or time.monotonic() - cached[1] > CLIENT_TTL_S:
            from airflow_mlops.hooks.mlflow import MlflowHook

            # = operators.base.PROMOTER_CONN_ID and its fallback, as the deploy task's
            cached = (MlflowHook("mlflow_promoter", fallback_conn_id="mlflow_default").get_conn(), time.monotonic())
            _client_cache["client"] = cached
        return cached[0]


def _configs() -> list:
    from airflow_mlops import settings
    from airflow_mlops.core.overview import configs_or_none

    return configs_or_none(settings.pipelines_folder())  # the catalog the DAGs are built from


def _pipeline_of(name: str, configs: list) -> str | None:
    from airflow_mlops.core.overview import config_for

    config = config_for(name, configs)
    return config.name if config is not None else None


def _access(user: BaseUser, name: str, configs: list) -> security.Access:
    return security.access(user, security.pipeline_dag_ids(_pipeline_of(name, configs)))


def _require(user: BaseUser, name: str, what: str) -> security.Access:
    access = _access(user, name, _configs())
    if not access.read:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"you may not see model {name}")
    if what == "edit" and not access.edit:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"acting on {name} needs edit access to its pipeline's DAGs; you have read access only",
        )
    return access


def _visible_rows(user: BaseUser) -> list[dict]:
    from airflow_mlops.core.overview import model_status

    configs = _configs()
    return [r for r in model_status(_client(), configs=configs) if _access(user, r["name"], configs).read]


def _detail(user: BaseUser, name: str, versions_before: int | None, ledger_page: int) -> tuple[dict, security.Access]:
    from airflow_mlops.core.overview import model_detail
    from airflow_mlops.core.registry import UnknownModelError

    configs = _configs()
    access = _access(user, name, configs)
    if not access.read:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"you may not see model {name}")
    try:
        detail = model_detail(
            _client(), name, configs=configs, versions_before=versions_before, ledger_page=ledger_page
        )
    except UnknownModelError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return detail, access


def _rollback(name: str, user: BaseUser, body: dict) -> dict:
    """registry.rollback with the Airflow user as actor; the rolled_back alert through the pipeline's routes."""
    from airflow_mlops.core import registry

    reason = str(body.get("reason") or "").strip()
    if not reason:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "a reason is required: it is recorded in the ledger")
    to_version = str(body.get("to_version") or "").strip() or None
    expected = str(body.get("expected_champion") or "").strip() or None
    if expected is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            "expected_champion is required: the champion version you decided against (the page sends "
            "the one it shows); the rollback is refused if the champion has moved since",
        )
    client = _client()
    who = security.user_name(user)
    actor = {"actor": f"airflow-ui:{who}", **security.user_ids(user), "via": "airflow-mlops Models page"}
    try:
        # compare-and-swap under the registry's promotion lock: of two rollbacks sent at once, one moves
        result = registry.rollback(
            client, name, to_version=to_version, expected_champion=expected, actor=actor, reason=reason[:2000]
        )
    except registry.UnknownModelError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except registry.ChampionMovedError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{exc} (reload the page)") from exc
    except registry.PromotionError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except registry.PromotionInProgressError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{exc}; try again in a minute") from exc
    log.info("%s rolled back %s to version %s: %s", who, name, result["champion"], reason)
    try:
        from airflow_mlops.alerting import send_rollback_alert

        send_rollback_alert(name, result, who=actor["actor"], reason=reason)
    except Exception as exc:  # the rollback is done and recorded; a failed alert must not hide that
        log.warning("%s: rolled_back alert not sent: %s", name, exc)
    return {k: v for k, v in result.items() if k != "before"} | {"by": actor["actor"]}


def _pending_counts(rows: list[dict]) -> dict[str, int]:
    """Waiting promotions per model, for the models in `rows` (one Airflow DB query, no MLflow call)."""
    from airflow_mlops.approval_requests import pending_approvals

    if not rows:
        return {}
    counts: dict[str, int] = {}
    try:
        for p in pending_approvals():
            counts[str(p["model"])] = counts.get(str(p["model"]), 0) + 1
    except Exception as exc:  # the page still shows the models
        log.warning("pending approvals not read: %s", exc)
    return counts


def _pending(user: BaseUser, name: str) -> list[dict]:
    """The model's waiting promotions, each with `can_respond` for `user` (the auth manager, once per DAG) and
    `panels`, its verdict's (core.overview.verdict_panels: slices, importance, robustness, fairness)."""
    from airflow_mlops.approval_requests import can_respond, pending_approvals
    from airflow_mlops.core.overview import verdict_panels

    requests = pending_approvals(model=name)
    allowed: dict[str, bool] = {}
    for p in requests:
        if p["dag_id"] not in allowed:
            allowed[p["dag_id"]] = can_respond(user, p["dag_id"])
        p["can_respond"] = allowed[p["dag_id"]]
        run_id = (p.get("evidence") or {}).get("evaluation_run_id")
        p["panels"] = verdict_panels(_client(), str(run_id)) if run_id else {}
    return requests


def _answer(name: str, user: BaseUser, body: dict) -> dict:
    """approval_requests.respond as the Airflow user: approve or reject one of this model's waiting promotions."""
    from airflow_mlops import approval_requests
    from airflow_mlops.core import approval

    dag_id, run_id = str(body.get("dag_id") or "").strip(), str(body.get("run_id") or "").strip()
    decision = str(body.get("decision") or "").strip().lower()
    comment = str(body.get("comment") or "").strip()
    if not dag_id or not run_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "dag_id and run_id of the request are required")
    if decision not in ("approve", "reject"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, 'decision must be "approve" or "reject"')
    if decision == "reject" and not comment:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            "a comment is required to reject: it is recorded on the version and in the ledger",
        )
    waiting = approval_requests.pending_approvals(dag_ids=[dag_id])
    mine = [p for p in waiting if p["run_id"] == run_id and p["model"] == name]
    if not mine and any(p["run_id"] == run_id for p in waiting):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{dag_id} run {run_id} waits for a promotion of another model")
    task_id = mine[0]["task_id"] if mine else approval.APPROVAL_TASK_ID
    map_index = mine[0]["map_index"] if mine else -1
    if decision == "approve" and mine:
        _refuse_stale(name, user, mine[0], comment)
    try:
        result = approval_requests.respond(
            dag_id=dag_id,
            run_id=run_id,
            approve=decision == "approve",
            user=user,
            comment=comment,
            task_id=task_id,
            map_index=map_index,
        )
    except approval.ApprovalError as exc:
        message = str(exc)
        if isinstance(exc, approval.ApprovalAlreadyDecided):
            message += " (someone answered first, or it timed out): reload the page"
        raise HTTPException(exc.status_code, message) from exc
    log.info("%s answered %s (%s run %s): %s", security.user_name(user), name, dag_id, run_id, decision)
    return {**result, "model": name, "version": mine[0]["version"] if mine else None, "decision": decision}


def _refuse_stale(name: str, user: BaseUser, request: dict, comment: str) -> None:
    """409 (and the stale approval on the version's tags and in the ledger) when the champion is no longer the one
    the request was judged against; the request stays waiting (reject it, or it times out)."""
    from airflow_mlops import approval_requests
    from airflow_mlops.core import approval

    if not approval_requests.can_respond(user, request["dag_id"]):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"Airflow user {security.user_name(user)!r} may not answer approval requests of DAG {request['dag_id']!r}",
        )
    ids = security.user_ids(user)
    task_tags = {
        "request.dag_id": request["dag_id"],
        "request.run_id": request["run_id"],
        "via": "airflow-mlops Models page",
    }
    stale = approval.refuse_if_stale(
        _client(),
        name,
        request["evidence"],
        comment=comment,
        task_tags=task_tags,
        user={"id": ids["user.id"], "name": ids["user.name"]},
    )
    if stale is not None:
        log.warning("%s: stale approval by %s refused: %s", name, ids["user.name"], stale["reason"])
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"Stale approval refused: {stale['reason']}. Nothing was approved or promoted; it is "
            f"recorded as stale on the version and in the ledger. Reject this request (or let it "
            f"time out)",
        )


def _evidence_src(request: Request, name: str, run_id: str, path: str) -> str:
    from urllib.parse import quote

    sig = security.sign("evidence", name, run_id, path)
    return f"{_mount(request)}/models/{quote(name, safe='')}/evidence/{quote(run_id, safe='')}/{quote(path)}?sig={sig}"


def _mount(request: Request) -> str:
    return str(request.scope.get("root_path") or "").rstrip("/")


def _urls(request: Request) -> render.Urls:
    from airflow.configuration import conf

    base = urlsplit(conf.get("api", "base_url", fallback="") or "").path
    return render.Urls(_mount(request), base)


def _html(request: Request, title: str, body: str, user: BaseUser, *, csrf: bool = False) -> HTMLResponse:
    token = security.csrf_token(user) if csrf else None
    return HTMLResponse(
        render.page(title, body, _urls(request), user=security.user_name(user), csrf=token), headers=PAGE_HEADERS
    )


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(f"{_mount(request)}/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def _login_url(request: Request) -> str | None:
    return login_url(str(request.url))
