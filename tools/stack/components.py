"""What the stack runs: one `Component` per process, the same names and commands as docker-compose.yaml.

Two profiles:

* ``cluster``: the production shape without containers. PostgreSQL and Redis already run on
  loopback; Airflow (CeleryExecutor) with api-server, scheduler, dag-processor, triggerer and two
  Celery workers, and an MLflow tracking server (PostgreSQL store, served artifacts, basic auth with
  the promoter-only rules of `airflow_mlops.mlflow_server_auth`).
* ``local``: what `make demo` needs to let the real scheduler react to Asset events: the demo's
  SQLite metadata DB, LocalExecutor, api-server, scheduler, dag-processor and triggerer.

`tests/stack/test_compose.py` checks that docker-compose.yaml runs the same commands, so the
two cannot drift apart.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: The checkout (dags/, plugins/, include/, tools/): $AIRFLOW_MLOPS_PROJECT_ROOT, else this package's grandparent.
PROJECT_ROOT = Path(os.environ.get("AIRFLOW_MLOPS_PROJECT_ROOT") or Path(__file__).resolve().parents[2])

#: Loopback ports of the native stack (environment variable, default).
PORT_SETTINGS = {
    "airflow-apiserver": ("AIRFLOW_MLOPS_STACK_API_PORT", 28080),
    "mlflow": ("AIRFLOW_MLOPS_STACK_MLFLOW_PORT", 25000),
    "airflow-worker-1": ("AIRFLOW_MLOPS_STACK_WORKER1_LOG_PORT", 28793),
    "airflow-worker-2": ("AIRFLOW_MLOPS_STACK_WORKER2_LOG_PORT", 28795),
    "airflow-triggerer": ("AIRFLOW_MLOPS_STACK_TRIGGERER_LOG_PORT", 28794),
}

#: Secrets the stack needs; `.env` (git-ignored, see .env.example) provides them, else they are generated.
SECRET_NAMES = (
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_TRAINER_PASSWORD",
    "MLFLOW_PROMOTER_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)

AIRFLOW_ADMIN = "admin"
MLFLOW_ADMIN = "admin"
MLFLOW_TRAINER = "trainer"
MLFLOW_PROMOTER = "promoter"
MODEL_NAME = "churn_classifier"
PROMOTION_POOL = "mlops_promotion"


@dataclass(frozen=True)
class Component:
    """One long-running process of the stack."""

    name: str  # the docker-compose service name
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict, compare=False)
    port: int | None = None  # a loopback port it listens on (checked free before start)
    ready_line: str | None = None  # a log line that says it is up (when it has no HTTP health)


@dataclass(frozen=True)
class StackSettings:
    """Where the native stack keeps its state and how it reaches PostgreSQL and Redis."""

    profile: str = "cluster"
    home: Path = PROJECT_ROOT / ".stack"
    postgres_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432"
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_prefix: str = "airflow_mlops"
    ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls, profile: str = "cluster", home: Path | None = None) -> StackSettings:
        env = os.environ
        ports = {name: int(env.get(var, default)) for name, (var, default) in PORT_SETTINGS.items()}
        default_home = PROJECT_ROOT / (".stack" if profile == "cluster" else ".mlops")
        return cls(
            profile=profile,
            home=Path(home or env.get("AIRFLOW_MLOPS_STACK_HOME") or default_home).resolve(),
            postgres_url=env.get("AIRFLOW_MLOPS_STACK_POSTGRES", cls.postgres_url),
            redis_url=env.get("AIRFLOW_MLOPS_STACK_REDIS", cls.redis_url),
            ports=ports,
        )

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def mlops_home(self) -> Path:
        return self.home if self.profile == "local" else self.home / "mlops"

    @property
    def data_dir(self) -> Path:
        """Where the stack's sources may live: never inside the state folder (a run's `source` cannot read it)."""
        return PROJECT_ROOT / "data" if self.profile == "local" else self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    def database(self, purpose: str) -> str:
        """The PostgreSQL database name for `airflow`, `mlflow` or `mlflow_auth`."""
        return f"{self.database_prefix}_{purpose}"

    def database_url(self, purpose: str, driver: str = "postgresql+psycopg2") -> str:
        base = self.postgres_url.split("://", 1)[1]
        return f"{driver}://{base}/{self.database(purpose)}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['airflow-apiserver']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"


def load_secrets(stack: StackSettings, env_file: Path | None = None) -> dict[str, str]:
    """Secrets from `.env` at the project root when it has them, else generated once into the stack home."""
    values: dict[str, str] = {}
    for path in (env_file or PROJECT_ROOT / ".env", stack.home / "secrets.env"):
        if path.is_file():
            for key, value in _read_env_file(path).items():
                values.setdefault(key, value)
    missing = [name for name in SECRET_NAMES if not values.get(name)]
    if missing:
        generated = {name: _new_secret(name) for name in missing}
        stack.home.mkdir(parents=True, exist_ok=True)
        target = stack.home / "secrets.env"
        with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as out:
            out.writelines(f"{key}={value}\n" for key, value in generated.items())
        values.update(generated)
    return values


def _new_secret(name: str) -> str:
    if name == "AIRFLOW_FERNET_KEY":
        import base64

        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(24)


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip("'\"")
    return values


def airflow_env(stack: StackSettings, secret: dict[str, str]) -> dict[str, str]:
    """The environment every Airflow process of the stack shares (the x-airflow-common of compose)."""
    airflow_home = stack.airflow_home
    env = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW_MLOPS_HOME": str(stack.mlops_home),
        "AIRFLOW_MLOPS_DATA_ROOTS": str(stack.data_dir),  # sources may live here too
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__FERNET_KEY": secret["AIRFLOW_FERNET_KEY"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{stack.api_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / "simple_auth_manager_passwords.json"),
        "AIRFLOW__API__BASE_URL": stack.api_url,
        "AIRFLOW__API__SECRET_KEY": secret["AIRFLOW_API_SECRET_KEY"],
        "AIRFLOW__API_AUTH__JWT_SECRET": secret["AIRFLOW_JWT_SECRET"],
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(stack.ports["airflow-triggerer"]),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
        "GX_ANALYTICS_ENABLED": "False",
        "NO_PROXY": "*",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if stack.profile == "cluster":
        env |= {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": stack.database_url("airflow"),
            "AIRFLOW__CELERY__BROKER_URL": stack.redis_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": stack.database_url("airflow", driver="db+postgresql"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__MLOPS__MLFLOW_UI_URL": stack.mlflow_url,  # the extra links and alerts open the stack's server
        }
    else:
        env |= {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(stack.ports["airflow-worker-1"]),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        }
    return env


def mlflow_env(stack: StackSettings, secret: dict[str, str]) -> dict[str, str]:
    """The MLflow server's environment: its auth config and the admin password for the first start."""
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(stack.home / "mlflow" / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": secret["MLFLOW_ADMIN_PASSWORD"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret["MLFLOW_FLASK_SERVER_SECRET_KEY"],
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_PROXY": "*",
    }


def mlflow_auth_ini(database_uri: str) -> str:
    """MLflow's basic-auth config: nobody may do anything unless granted (NO_PERMISSIONS)."""
    return (
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {MLFLOW_ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


#: The MLflow server's app: MLflow's basic auth plus the promoter-only rules (airflow_mlops.mlflow_server_auth).
MLFLOW_APP = "airflow-mlops-auth"


def mlflow_server_argv(backend_uri: str, artifacts: str, host: str, port: int, workers: int = 2) -> tuple[str, ...]:
    return (
        "mlflow", "server",
        "--app-name", MLFLOW_APP,
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", artifacts,
        "--serve-artifacts",
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
    )  # fmt: skip


def components(stack: StackSettings, secret: dict[str, str]) -> list[Component]:
    """The processes of the stack, in start order."""
    env = airflow_env(stack, secret)
    api_port = stack.ports["airflow-apiserver"]
    parts: list[Component] = []
    if stack.profile == "cluster":
        parts.append(
            Component(
                "mlflow",
                mlflow_server_argv(
                    stack.database_url("mlflow"),
                    str(stack.home / "mlflow" / "artifacts"),
                    "127.0.0.1",
                    stack.ports["mlflow"],
                ),
                mlflow_env(stack, secret),
                port=stack.ports["mlflow"],
            )
        )
    parts += [
        Component(
            "airflow-apiserver",
            ("airflow", "api-server", "--host", "127.0.0.1", "--port", str(api_port)),
            env,
            api_port,
        ),
        Component("airflow-scheduler", ("airflow", "scheduler"), env),
        Component("airflow-dag-processor", ("airflow", "dag-processor"), env),
        Component(
            "airflow-triggerer",
            ("airflow", "triggerer"),
            env,
            stack.ports["airflow-triggerer"],
        ),
    ]
    if stack.profile == "cluster":
        for index in (1, 2):
            name = f"airflow-worker-{index}"
            port = stack.ports[name]
            parts.append(
                Component(
                    name,
                    ("airflow", "celery", "worker", "--celery-hostname", f"worker{index}@%h"),
                    env
                    | {
                        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port),
                        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tools.stack.hostname.worker_hostname",
                        # the hostname callable lives in tools/ (not in the wheel): the checkout on the path
                        "PYTHONPATH": os.pathsep.join(filter(None, (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")))),
                        "AIRFLOW_MLOPS_STACK_WORKER": f"worker{index}",
                    },
                    port,
                    ready_line=" ready.",
                )
            )
    return parts
