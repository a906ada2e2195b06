"""Bring the native stack up and down: databases, MLflow users, Airflow init, the processes, health."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from tools.stack import components as c
from tools.stack import processes
from tools.stack.processes import StackError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tools.stack.components import StackSettings

DATABASES = ("airflow", "mlflow", "mlflow_auth")
LEDGER_EXPERIMENT = "airflow-mlops-ledger"  # = core.registry.LEDGER_EXPERIMENT (core imports mlflow)


def up(stack: StackSettings, log: Callable[[str], None] = print, timeout: float = 300.0) -> dict[str, str]:
    """Start the whole stack and wait until every part is healthy; returns its URLs and users."""
    secret = c.load_secrets(stack)
    parts = c.components(stack, secret)
    if processes.running(stack.run_dir):
        raise StackError(f"The {stack.profile} stack in {stack.home} is already running: `make stack-down` first")
    processes.check_ports_free(parts)
    started = time.monotonic()
    try:
        if stack.profile == "cluster":
            _check_external_services(stack)
            create_databases(stack)
            _start_mlflow(stack, secret, parts[0], log, timeout)
            log("MLflow: creating users and permissions (admin, trainer, promoter)")
            setup_mlflow_users(stack.mlflow_url, secret)
        airflow = [p for p in parts if p.name.startswith("airflow-")]
        log("Airflow: migrating the metadata database, pool and connections")
        mlflow_url = stack.mlflow_url if stack.profile == "cluster" else None
        init_airflow(airflow[0].env, secret, stack.log_dir / "airflow-init.log", mlflow_url)
        for part in airflow:
            log(f"starting {part.name}: {' '.join(part.argv)}")
            processes.start(part, stack.run_dir, stack.log_dir, c.PROJECT_ROOT)
        wait_healthy(stack, airflow, timeout)
    except BaseException:
        log(f"The stack did not come up: stopping what started. Logs: {stack.log_dir}")
        processes.stop_all(stack.run_dir, log=log)
        raise
    summary = {
        "airflow": f"{stack.api_url}  (user {c.AIRFLOW_ADMIN}, password: AIRFLOW_ADMIN_PASSWORD in .env or {stack.home}/secrets.env)",
        "logs": str(stack.log_dir),
    }
    if stack.profile == "cluster":
        summary["mlflow"] = f"{stack.mlflow_url}  (users admin, trainer, promoter)"
    log(f"The {stack.profile} stack is up in {time.monotonic() - started:.0f}s:")
    for key, value in summary.items():
        log(f"  {key:8s} {value}")
    return summary


def down(stack: StackSettings, log: Callable[[str], None] = print) -> list[str]:
    """Stop exactly the processes this stack started (found by pid file and start time)."""
    stopped = processes.stop_all(stack.run_dir, log=log)
    log(f"stopped {len(stopped)} process(es)" if stopped else "nothing of this stack was running")
    return stopped


def status(stack: StackSettings) -> dict[str, int]:
    return processes.running(stack.run_dir)


# ------------------------------------------------------------------------------------ pieces


def _check_external_services(stack: StackSettings) -> None:
    pg = urlsplit(stack.postgres_url)
    processes.check_service(
        "PostgreSQL",
        pg.hostname or "127.0.0.1",
        pg.port or 5432,
        "Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    )
    redis = urlsplit(stack.redis_url)
    processes.check_service(
        "Redis",
        redis.hostname or "127.0.0.1",
        redis.port or 6379,
        'Start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
    )


def create_databases(stack: StackSettings) -> None:
    """CREATE DATABASE for Airflow, MLflow and MLflow's users, when missing."""
    with _postgres_admin(stack) as cur:
        for purpose in DATABASES:
            name = stack.database(purpose)
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')


def drop_databases(stack: StackSettings) -> None:
    """DROP the stack's databases (stack-test starts from nothing)."""
    with _postgres_admin(stack) as cur:
        for purpose in DATABASES:
            cur.execute(f'DROP DATABASE IF EXISTS "{stack.database(purpose)}" WITH (FORCE)')


@contextlib.contextmanager
def _postgres_admin(stack: StackSettings) -> Iterator[Any]:
    """An autocommit cursor on the server's `postgres` database (CREATE/DROP DATABASE need it)."""
    import psycopg2

    conn = psycopg2.connect(stack.postgres_url.replace("postgresql+psycopg2://", "postgresql://") + "/postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _start_mlflow(
    stack: StackSettings, secret: dict[str, str], part: c.Component, log: Callable[[str], None], timeout: float
) -> None:
    auth_ini = Path(part.env["MLFLOW_AUTH_CONFIG_PATH"])
    auth_ini.parent.mkdir(parents=True, exist_ok=True)
    auth_ini.write_text(c.mlflow_auth_ini(stack.database_url("mlflow_auth")))
    log(f"starting {part.name}: {' '.join(part.argv)}")
    processes.start(part, stack.run_dir, stack.log_dir, c.PROJECT_ROOT)
    _wait_http(f"{stack.mlflow_url}/health", timeout, "the MLflow server", stack, part.name)


def pipelines() -> list[tuple[str, str]]:
    """(pipeline name, registered model name) of every pipeline of the catalog (`[mlops] pipelines_folder`) that the
    DAGs are built from (a refused one has no DAGs, which name it in their import errors, so it needs no grants)."""
    from airflow_mlops import settings
    from airflow_mlops.core.catalog import read_catalog

    folder = settings.pipelines_folder()
    found = sorted({(config.name, config.model_name) for config in read_catalog(folder).configs})
    if not found:
        raise StackError(
            f"No pipeline configs in {folder}: set AIRFLOW_MLOPS_PROJECT_ROOT to the checkout, "
            f"or [mlops] pipelines_folder (AIRFLOW__MLOPS__PIPELINES_FOLDER) to the pipelines"
        )
    return found


def setup_mlflow_users(mlflow_url: str, secret: dict[str, str]) -> None:
    """Users, the ledger experiment, each pipeline's model and experiments, and grants (idempotent).

    trainer: EDIT on each pipeline's model (versions, their tags, the `challenger` alias) and its
    experiments, READ on the ledger. promoter: MANAGE on the model (every other alias: the server's
    `airflow-mlops-auth` app refuses those to anyone without MANAGE), EDIT on the ledger (its entries and
    its lock), READ on the training and monitoring experiments (the evidence the Models page shows).
    """
    admin = httpx.Client(base_url=mlflow_url, auth=(c.MLFLOW_ADMIN, secret["MLFLOW_ADMIN_PASSWORD"]), timeout=30)
    try:
        for user, key in (
            (c.MLFLOW_TRAINER, "MLFLOW_TRAINER_PASSWORD"),
            (c.MLFLOW_PROMOTER, "MLFLOW_PROMOTER_PASSWORD"),
        ):
            _ensure_user(admin, user, secret[key])
        ledger = _ensure_experiment(admin, LEDGER_EXPERIMENT)
        grants = [
            (c.MLFLOW_TRAINER, "experiment", ledger, "READ"),  # reads the first champion; writes nothing there
            (c.MLFLOW_PROMOTER, "experiment", ledger, "EDIT"),
        ]
        for pipeline, model in pipelines():
            _ensure_model(admin, model)
            training = _ensure_experiment(admin, pipeline)
            monitoring = _ensure_experiment(admin, f"{pipeline}-monitoring")
            grants += [
                (c.MLFLOW_TRAINER, "registered_model", model, "EDIT"),
                (c.MLFLOW_PROMOTER, "registered_model", model, "MANAGE"),
                (c.MLFLOW_TRAINER, "experiment", training, "EDIT"),
                (c.MLFLOW_PROMOTER, "experiment", training, "READ"),
                (c.MLFLOW_TRAINER, "experiment", monitoring, "EDIT"),
                (c.MLFLOW_PROMOTER, "experiment", monitoring, "READ"),
            ]
        for user, resource_type, resource_id, permission in grants:
            _grant(admin, user, resource_type, resource_id, permission)
    finally:
        admin.close()


def _grant(admin: httpx.Client, user: str, resource_type: str, resource_id: str, permission: str) -> None:
    """Grant (or re-grant, replacing an earlier level) a permission on one resource."""
    body = {"username": user, "resource_type": resource_type, "resource_id": resource_id}
    response = admin.post("/api/3.0/mlflow/users/permissions/grant", json={**body, "permission": permission})
    if "RESOURCE_ALREADY_EXISTS" in response.text:
        _call(admin, "POST", "/api/3.0/mlflow/users/permissions/revoke", json=body)
        response = admin.post("/api/3.0/mlflow/users/permissions/grant", json={**body, "permission": permission})
    if response.status_code >= 400:
        raise StackError(
            f"MLflow refused to grant {permission} on {resource_type} {resource_id} to {user}: "
            f"HTTP {response.status_code} {response.text[:300]}"
        )


def _ensure_user(admin: httpx.Client, username: str, password: str) -> None:
    response = admin.post("/api/2.0/mlflow/users/create", json={"username": username, "password": password})
    if response.status_code == 200:
        return
    if "RESOURCE_ALREADY_EXISTS" in response.text or response.status_code == 409:
        _call(
            admin, "PATCH", "/api/2.0/mlflow/users/update-password", json={"username": username, "password": password}
        )
        return
    raise StackError(f"MLflow refused to create user {username!r}: HTTP {response.status_code} {response.text[:300]}")


def _ensure_experiment(admin: httpx.Client, name: str) -> str:
    response = admin.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name})
    if response.status_code == 200:
        return response.json()["experiment"]["experiment_id"]
    return _call(admin, "POST", "/api/2.0/mlflow/experiments/create", json={"name": name})["experiment_id"]


def _ensure_model(admin: httpx.Client, name: str) -> None:
    response = admin.get("/api/2.0/mlflow/registered-models/get", params={"name": name})
    if response.status_code != 200:
        _call(admin, "POST", "/api/2.0/mlflow/registered-models/create", json={"name": name})


def _call(client: httpx.Client, method: str, path: str, **kwargs) -> dict:
    response = client.request(method, path, **kwargs)
    if response.status_code >= 400:
        raise StackError(f"MLflow {method} {path}: HTTP {response.status_code}: {response.text[:300]}")
    return response.json() if response.content else {}


def init_airflow(env: dict[str, str], secret: dict[str, str], log_path: Path, mlflow_url: str | None) -> None:
    """`airflow db migrate`, the promotion pool, the admin's password file and, given an MLflow
    server, the connections `mlflow_default` (trainer) and `mlflow_promoter` (promoter)."""
    airflow_home = Path(env["AIRFLOW_HOME"])
    airflow_home.mkdir(parents=True, exist_ok=True)
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    with open(os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        json.dump({c.AIRFLOW_ADMIN: secret["AIRFLOW_ADMIN_PASSWORD"]}, out)
    run = _airflow_cli(env, log_path)
    run("db", "migrate")
    run("pools", "set", c.PROMOTION_POOL, "1", "One promotion at a time (airflow-mlops)")
    if mlflow_url:
        for conn_id, user, key in (
            ("mlflow_default", c.MLFLOW_TRAINER, "MLFLOW_TRAINER_PASSWORD"),
            ("mlflow_promoter", c.MLFLOW_PROMOTER, "MLFLOW_PROMOTER_PASSWORD"),
        ):
            conn = {"conn_type": "mlflow", "host": mlflow_url, "login": user, "password": secret[key]}
            run("connections", "delete", conn_id, check=False)
            run("connections", "add", conn_id, "--conn-json", json.dumps(conn), secret_args=True)


def _airflow_cli(env: dict[str, str], log_path: Path) -> Callable[..., None]:
    """Run `airflow ...` with the stack's environment; output to the init log, never to the terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def run(*args: str, check: bool = True, secret_args: bool = False) -> None:
        shown = " ".join(args[:3]) + " <connection json>" if secret_args else " ".join(args)
        with open(log_path, "a") as out:
            out.write(f"$ airflow {shown}\n")
            out.flush()
            result = subprocess.run(
                ["airflow", *args],
                env={**os.environ, **env},
                cwd=c.PROJECT_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if check and result.returncode != 0:
            raise StackError(f"`airflow {shown}` failed (exit {result.returncode}): see {log_path}")

    return run


def init_from_env(log: Callable[[str], None] = print, timeout: float = 300.0) -> None:
    """The compose stack's `airflow-init`: everything from the container's environment."""
    secret = {name: os.environ.get(name, "") for name in c.SECRET_NAMES}
    missing = [name for name, value in secret.items() if not value]
    if missing:
        raise StackError(f"Set {', '.join(missing)} in .env (copy .env.example and fill it in)")
    mlflow_url = os.environ.get("AIRFLOW_MLOPS_MLFLOW_URL", "http://mlflow:5000")
    log(f"waiting for MLflow at {mlflow_url}")
    processes.wait_until(lambda: httpx.get(f"{mlflow_url}/health", timeout=5).status_code == 200, timeout, mlflow_url)
    setup_mlflow_users(mlflow_url, secret)
    log_path = Path(os.environ.get("AIRFLOW_HOME", "/opt/airflow")) / "logs" / "airflow-init.log"
    init_airflow(dict(os.environ), secret, log_path, mlflow_url)
    log("airflow-init done: database migrated, pool, connections mlflow_default/mlflow_promoter, MLflow users")


def wait_healthy(stack: StackSettings, airflow: list[c.Component], timeout: float) -> None:
    """API server health says scheduler, triggerer and dag-processor are healthy; workers said 'ready'."""
    _wait_http(f"{stack.api_url}/api/v2/monitor/health", timeout, "the Airflow API server", stack, "airflow-apiserver")

    def all_healthy() -> bool:
        health = httpx.get(f"{stack.api_url}/api/v2/monitor/health", timeout=5).json()
        return all(
            health.get(part, {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    processes.wait_until(all_healthy, timeout, "scheduler, triggerer and dag-processor to report healthy")
    for part in airflow:
        if part.ready_line:
            name, line = part.name, part.ready_line
            processes.wait_until(
                lambda: processes.log_has(stack.log_dir, name, line),  # noqa: B023 - called right here
                timeout,
                f"{name} to be ready (log: {stack.log_dir / (name + '.log')})",
            )
    _fail_if_exited(stack, [p.name for p in airflow])


def _wait_http(url: str, timeout: float, what: str, stack: StackSettings, name: str) -> None:
    def answers() -> bool:
        _fail_if_exited(stack, [name])
        return httpx.get(url, timeout=5).status_code == 200

    try:
        processes.wait_until(answers, timeout, f"{what} at {url}")
    except StackError as exc:
        raise StackError(
            f"{exc}\n--- last lines of {name}.log ---\n{processes.log_tail(stack.log_dir, name)}"
        ) from None


def _fail_if_exited(stack: StackSettings, names: list[str]) -> None:
    alive = processes.running(stack.run_dir)
    for name in names:
        if name not in alive:
            raise StackError(
                f"{name} exited right after it started.\n--- last lines of {stack.log_dir / (name + '.log')} ---\n"
                f"{processes.log_tail(stack.log_dir, name)}"
            )
