"""docker-compose.yaml runs what the native stack runs (tools.stack.components).

Same services, programs, subcommands and options; the same Airflow settings; a valid Compose file;
secrets only as ${...} references to .env; an image built from requirements.lock. Each test fails
when the compose stack and the native stack drift apart.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from tools.stack import components as c

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / "docker" / "Dockerfile.dockerignore"
POSTGRES_INIT = ROOT / "docker" / "postgres-init.sql"
MLFLOW_ENTRYPOINT = ROOT / "docker" / "mlflow-entrypoint.sh"
LOCK = ROOT / "requirements.lock"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

#: Compose services with no native component, and why.
COMPOSE_ONLY = {
    "postgres": "the native stack uses a PostgreSQL server already running on loopback",
    "redis": "the native stack uses a Redis server already running on loopback",
    "airflow-init": "the native `up` runs the same init in-process (manager.init_airflow)",
    "flower": "optional Celery monitor (profile flower)",
    "minio": "optional S3 artifact store (profile minio)",
    "minio-init": "creates the MinIO bucket (profile minio)",
}
#: Native settings a container does without: its own hostname already tells the workers apart (so it needs no
#: checkout on PYTHONPATH for the native workers' hostname callable in tools/).
NATIVE_ONLY_ENV = {"AIRFLOW__CORE__HOSTNAME_CALLABLE", "AIRFLOW_MLOPS_STACK_WORKER", "PATH", "PYTHONPATH"}
#: Settings whose values are site-specific (paths, URLs, ports, secrets): only their names must match.
SITE_SPECIFIC_ENV = {
    "AIRFLOW_HOME", "AIRFLOW_MLOPS_HOME", "AIRFLOW_MLOPS_DATA_ROOTS", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__API__BASE_URL", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    "MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "AIRFLOW__MLOPS__MLFLOW_UI_URL",
}  # fmt: skip
#: URL settings: host and port differ, scheme and path (the database, the API route) must not.
URL_ENV = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
}  # fmt: skip
#: Command-line options whose values are site-specific; the others must be equal.
SITE_SPECIFIC_OPTIONS = {"--host", "--port", "--artifacts-destination", "--backend-store-uri", "--celery-hostname"}

SECRET_SENTINEL = "<secret:{}>"
_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def _native_stack(home: Path) -> tuple[c.StackSettings, dict[str, str], dict[str, c.Component]]:
    stack = c.StackSettings.from_env("cluster", home=home)
    secret = {name: SECRET_SENTINEL.format(name) for name in c.SECRET_NAMES}
    return stack, secret, {part.name: part for part in c.components(stack, secret)}


NATIVE_NAMES = list(_native_stack(ROOT / ".stack-test-unused")[2])


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    return _native_stack(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def service_of(component: str) -> str:
    """airflow-worker-1 and airflow-worker-2 are replicas of the scaled compose service airflow-worker."""
    return re.sub(r"-\d+$", "", component)


def with_defaults(value: str) -> str:
    """The value compose uses when the optional ${NAME:-default} variables are not set."""
    return _REF.sub(lambda m: m["arg"] if m["op"] in {":-", "-"} else m.group(0), str(value))


def url_parts(value: str) -> tuple[str, str]:
    """(scheme, path) of a URL in the compose file: ${...} references stand for plain values."""
    parts = urlsplit(_REF.sub("ref", with_defaults(value)))
    return parts.scheme, parts.path


def command_shape(argv) -> tuple[list[str], dict[str, str | None]]:
    """(program and subcommands, {option: value or None for a flag}) of an argv."""
    argv = [str(a) for a in argv]
    first = next((i for i, token in enumerate(argv) if token.startswith("-")), len(argv))
    options: dict[str, str | None] = {}
    rest = argv[first:]
    i = 0
    while i < len(rest):
        assert rest[i].startswith("-"), f"positional argument {rest[i]!r} after the options in {argv}"
        if i + 1 < len(rest) and not rest[i + 1].startswith("-"):
            options[rest[i]] = rest[i + 1]
            i += 2
        else:
            options[rest[i]] = None
            i += 1
    return argv[:first], options


def mounts(service: dict) -> dict[str, str]:
    """{container path: source} of a service's short-syntax volumes."""
    found = {}
    for entry in service.get("volumes", []):
        source, target, *_ = with_defaults(entry).split(":")
        found[target] = source
    return found


def airflow_services(services: dict) -> list[str]:
    """The compose services that run an Airflow process or airflow-init (all built on x-airflow-common)."""
    return [
        name for name, svc in services.items()
        if name == "airflow-init" or str(svc.get("command", [""])[0]) == "airflow"
    ]  # fmt: skip


def native_env_for(service: str, native) -> dict[str, str]:
    stack, secret, parts = native
    matching = [part for name, part in parts.items() if service_of(name) == service]
    return matching[0].env if matching else c.airflow_env(stack, secret)


def env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """NAME=value lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: {line!r} is not NAME=value"
            values[key.strip()] = value.strip()
    return values


# ------------------------------------------------------------------------------------ (a) valid


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _compose_spec_schema() -> Path | None:
    """compose_spec.json as Debian's docker-compose package (or a pip-installed docker-compose) ships it."""
    candidates = [Path("/usr/lib/python3/dist-packages")] + [Path(p) for p in sys.path if p]
    for base in candidates:
        schema = base / "compose" / "config" / "compose_spec.json"
        if schema.is_file():
            return schema
    return None


def test_compose_file_is_valid(tmp_path):
    """`docker compose config` (v2, else Debian's docker-compose v1) accepts it with .env.example's
    values, every profile on; without the secrets it refuses to start and names the missing one."""
    cli = _compose_cli()
    if cli is None:
        schema = _compose_spec_schema()
        if schema is None:
            message = (
                "no Compose validator: neither `docker compose`, `docker-compose` nor compose_spec.json "
                "(apt-get install docker-compose; .ci/run installs it)"
            )
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        import jsonschema

        jsonschema.Draft201909Validator(json.loads(schema.read_text())).validate(
            yaml.safe_load(COMPOSE_FILE.read_text())
        )
        return
    base = [*cli, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]
    clean_env = {key: os.environ[key] for key in ("PATH", "HOME", "DOCKER_CONFIG") if key in os.environ}
    valid = subprocess.run(
        [*base, "--env-file", str(ENV_EXAMPLE), "--profile", "flower", "--profile", "minio", "config", "-q"],
        capture_output=True, text=True, env=clean_env, check=False, timeout=120,
    )  # fmt: skip
    assert valid.returncode == 0, f"{' '.join(cli)} config rejects docker-compose.yaml:\n{valid.stdout}{valid.stderr}"

    empty = tmp_path / "empty.env"
    empty.write_text("# no secrets\n")
    refused = subprocess.run(
        [*base, "--env-file", str(empty), "config", "-q"],
        capture_output=True, text=True, env=clean_env, check=False, timeout=120,
    )  # fmt: skip
    assert refused.returncode != 0, "docker-compose.yaml must refuse to start without the secrets of .env"
    assert "in .env" in refused.stdout + refused.stderr


def test_compose_file_is_compose_spec(compose):
    assert "version" not in compose, "Compose Specification: no `version:` key"
    assert {"x-airflow-common", "services", "volumes"} <= set(compose)
    common = compose["x-airflow-common"]
    assert {"image", "environment", "volumes"} <= set(common)


# ------------------------------------------------------------------ (b) same services and commands


@pytest.mark.parametrize("component", NATIVE_NAMES)
def test_native_component_has_compose_service_with_same_command(component, native, services):
    _, _, parts = native
    service = service_of(component)
    assert service in services, f"native component {component!r} has no compose service {service!r}"
    command = services[service].get("command")
    assert isinstance(command, list), f"{service}: write `command` as a list (exec form) so it can be compared"
    native_cmd, native_opts = command_shape(parts[component].argv)
    compose_cmd, compose_opts = command_shape(command)
    assert compose_cmd == native_cmd, f"{service}: program/subcommand {compose_cmd} != native {native_cmd}"
    assert set(compose_opts) == set(native_opts), (
        f"{service}: options {sorted(compose_opts)} != native {sorted(native_opts)}"
    )
    for option, value in native_opts.items():
        if option not in SITE_SPECIFIC_OPTIONS:
            ours = None if compose_opts[option] is None else with_defaults(compose_opts[option])
            assert ours == value, f"{service}: {option} {compose_opts[option]!r} != native {value!r}"
    if "--backend-store-uri" in native_opts:
        assert url_parts(compose_opts["--backend-store-uri"]) == url_parts(native_opts["--backend-store-uri"]), (
            f"{service}: another backend store than native"
        )
    if "--celery-hostname" in native_opts:
        assert compose_opts["--celery-hostname"].endswith("@%h"), "one Celery node name per replica: NAME@%h"


def test_every_compose_service_is_native_or_known(services):
    native_services = {service_of(name) for name in NATIVE_NAMES}
    unknown = set(services) - native_services - set(COMPOSE_ONLY)
    assert not unknown, f"compose services without a native component: {sorted(unknown)} (add them to components.py)"


def test_worker_scales(services):
    for name, svc in services.items():
        assert "container_name" not in svc, f"{name}: container_name prevents --scale"
    worker = services["airflow-worker"]
    assert "ports" not in worker and "hostname" not in worker, (
        "airflow-worker: a fixed host port or hostname prevents --scale"
    )
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_long_running_services_have_health_checks(services):
    for name in {service_of(n) for n in NATIVE_NAMES} | {"postgres", "redis"}:
        assert "healthcheck" in services[name], f"{name}: no healthcheck (depends_on service_healthy needs one)"


# ------------------------------------------------------------------------ (c) same Airflow settings


def test_airflow_services_share_native_airflow_settings(native, services):
    names = airflow_services(services)
    assert {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-worker"} <= set(names)
    for service in names:
        ours = {key: str(value) for key, value in services[service]["environment"].items()}
        theirs = native_env_for(service, native)
        expected_airflow = {k for k in theirs if k.startswith("AIRFLOW__")} - NATIVE_ONLY_ENV
        actual_airflow = {k for k in ours if k.startswith("AIRFLOW__")}
        assert actual_airflow == expected_airflow, (
            f"{service}: AIRFLOW__ settings differ from airflow_env(cluster): "
            f"missing {sorted(expected_airflow - actual_airflow)}, extra {sorted(actual_airflow - expected_airflow)}"
        )
        missing = set(theirs) - NATIVE_ONLY_ENV - set(ours)
        assert not missing, f"{service}: native settings missing in compose: {sorted(missing)}"
        for key in set(theirs) - NATIVE_ONLY_ENV - SITE_SPECIFIC_ENV:
            if key in URL_ENV:
                assert url_parts(ours[key]) == url_parts(theirs[key]), (
                    f"{service}: {key} {ours[key]!r} vs native {theirs[key]!r}"
                )
            else:
                assert with_defaults(ours[key]) == theirs[key], (
                    f"{service}: {key}={ours[key]!r} but native {theirs[key]!r} "
                    "(a site-specific value? add it to SITE_SPECIFIC_ENV)"
                )


def test_mlflow_service_has_native_mlflow_environment(native, services):
    stack, _, parts = native
    env = services["mlflow"]["environment"]
    missing = set(parts["mlflow"].env) - {"PATH"} - set(env)
    assert not missing, f"mlflow: settings of mlflow_env() missing in compose: {sorted(missing)}"
    assert url_parts(env["AIRFLOW_MLOPS_MLFLOW_AUTH_DATABASE_URI"]) == url_parts(stack.database_url("mlflow_auth"))


def test_mlflow_accepts_the_host_the_workers_call(services):
    """MLflow checks the Host header (--allowed-hosts / MLFLOW_SERVER_ALLOWED_HOSTS); the default lets only
    localhost and private IPs in, so `mlflow:5000` must be listed (same matching as mlflow.server.security_utils)."""
    allowed = [
        h.strip() for h in with_defaults(services["mlflow"]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"]).split(",")
    ]
    url = urlsplit(with_defaults(services["airflow-init"]["environment"]["AIRFLOW_MLOPS_MLFLOW_URL"]))
    _, options = command_shape(services["mlflow"]["command"])
    assert (url.hostname, url.port) == ("mlflow", int(options["--port"]))
    for host in (url.netloc, f"localhost:{options['--port']}"):
        assert any(fnmatch.fnmatch(host, a) if "*" in a else host == a for a in allowed), (
            f"MLflow would refuse Host {host}"
        )


def test_state_code_and_data_are_mounted_in_every_airflow_container(services, compose):
    for service in airflow_services(services):
        env = services[service]["environment"]
        root = PurePosixPath(env["AIRFLOW__CORE__DAGS_FOLDER"]).parent  # the project root: include/ beside dags/
        assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(root / "plugins")
        targets = mounts(services[service])
        for folder in ("dags", "include", "data"):
            assert str(root / folder) in targets, f"{service}: {root / folder} is not mounted"
        # Airflow appends the plugins folder to sys.path: the image's installed package would shadow a mount there
        assert str(root / "plugins") not in targets, f"{service}: plugins/ mounted, but the image's wheel is what runs"
        state = targets.get(env["AIRFLOW_MLOPS_HOME"])
        assert state in compose["volumes"], f"{service}: AIRFLOW_MLOPS_HOME must be the shared named volume"
    sources = {
        mounts(services[s])[services[s]["environment"]["AIRFLOW_MLOPS_HOME"]] for s in airflow_services(services)
    }
    assert len(sources) == 1, f"one state volume for all Airflow containers, not {sources}"


def test_admin_password_file_is_shared_by_init_and_apiserver(services):
    path = PurePosixPath(services["airflow-init"]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    for service in ("airflow-init", "airflow-apiserver"):
        assert str(path.parent) in mounts(services[service]), f"{service}: {path.parent} must be a shared volume"
    assert mounts(services["airflow-init"])[str(path.parent)] == mounts(services["airflow-apiserver"])[str(path.parent)]
    # SimpleAuthManager opens the file with "a+" at start and "r+" at each login: not a read-only mount
    volumes = [with_defaults(v) for v in services["airflow-apiserver"]["volumes"]]
    assert not [v for v in volumes if v.split(":")[1] == str(path.parent) and v.endswith(":ro")]


def test_postgres_init_creates_the_native_databases(native, services):
    stack, _, _ = native
    sql = POSTGRES_INIT.read_text()
    for purpose in ("airflow", "mlflow", "mlflow_auth"):
        assert f"CREATE DATABASE {stack.database(purpose)}'" in sql
    targets = mounts(services["postgres"])
    init = [t for t, s in targets.items() if t.startswith("/docker-entrypoint-initdb.d/")]
    assert init and targets[init[0]] == "./docker/postgres-init.sql"


# ---------------------------------------------------------------------------------- (d) airflow-init


def test_airflow_init_runs_the_stack_init(services, monkeypatch):
    from tools.stack import __main__ as cli
    from tools.stack import manager

    command = services["airflow-init"]["command"]
    assert command[:3] == ["python", "-m", "tools.stack"] and command[3:] == ["init"]
    called = []
    monkeypatch.setattr(manager, "init_from_env", lambda **kwargs: called.append(kwargs))
    assert cli.main(command[3:]) == 0
    assert called, "`python -m tools.stack init` must run manager.init_from_env()"
    deps = services["airflow-init"]["depends_on"]
    assert deps["mlflow"]["condition"] == "service_healthy" and deps["postgres"]["condition"] == "service_healthy"
    for service in airflow_services(services):
        if service != "airflow-init":
            condition = services[service]["depends_on"]["airflow-init"]["condition"]
            assert condition == "service_completed_successfully", service


def test_no_airflow_connections_in_the_environment(services):
    """mlflow_default / mlflow_promoter are created by airflow-init, with the MLflow users' passwords."""
    for name, svc in services.items():
        assert not [k for k in svc.get("environment", {}) if k.startswith("AIRFLOW_CONN_")], name


# --------------------------------------------------------------------------------------- (e) secrets


def test_airflow_init_gets_every_secret_from_env_file(services):
    env = services["airflow-init"]["environment"]
    for name in c.SECRET_NAMES:
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", str(env.get(name, ""))), (
            f"airflow-init: {name} must be ${{{name}:?...}} (init_from_env reads it)"
        )


def test_native_secrets_come_from_the_same_env_file_names(native, services):
    """Where the native stack puts secret X into setting Y, compose sets Y to ${X:?...}."""
    _, _, parts = native
    for component, part in parts.items():
        env = services[service_of(component)]["environment"]
        for key, value in part.env.items():
            for name in c.SECRET_NAMES:
                if value == SECRET_SENTINEL.format(name):
                    assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", str(env.get(key, ""))), (
                        f"{service_of(component)}: {key} must be ${{{name}:?...}} like the native {component}"
                    )


def test_no_secret_values_in_compose_file(services):
    secret_key = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY)$")
    for name, svc in services.items():
        for key, value in svc.get("environment", {}).items():
            if secret_key.search(key):
                ref = _REF.fullmatch(str(value))
                assert ref and not (ref["op"] in {":-", "-"} and ref["arg"]), (
                    f"{name}: {key} must be a ${{NAME:?...}} reference to .env, not a value"
                )
    text = COMPOSE_FILE.read_text()
    urls_with_password = list(re.finditer(r"://[^\s:/@]+:(\$\{[^}]*\}|[^\s@/]+)@", text))
    assert urls_with_password, "expected the PostgreSQL URLs with a password reference"
    for match in urls_with_password:
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", match[1]), f"a password in a URL: {match[0]}"
    local_env = ROOT / ".env"  # a developer's real secrets, when there are any: never copied into tracked files
    if local_env.is_file():
        real = {v for k, v in env_file(local_env).items() if len(v) >= 8 and v != "CHANGE_ME"}
        for path in (COMPOSE_FILE, ENV_EXAMPLE):
            leaked = [v[:3] + "..." for v in real if v in path.read_text()]
            assert not leaked, f"{path.name} holds values of .env: {leaked}"


def test_env_example_lists_every_secret(services):
    example = env_file()
    missing = [name for name in c.SECRET_NAMES if name not in example]
    assert not missing, f".env.example lacks {missing}"
    settings = "\n".join(line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", settings))
    assert required <= set(example), f".env.example lacks what compose requires: {sorted(required - set(example))}"
    real = {k: v for k, v in example.items() if v != "CHANGE_ME"}
    assert not real, f".env.example must hold placeholders only (CHANGE_ME), not {sorted(real)}"


def test_env_file_is_git_ignored_and_example_is_not():
    if not (ROOT / ".git").exists() or not shutil.which("git"):
        pytest.skip("not a git work tree")
    check = subprocess.run(["git", "check-ignore", ".env", ".env.example"], cwd=ROOT, capture_output=True, text=True)
    assert check.stdout.split() == [".env"]


# ------------------------------------------------------------------------------------- (f) the image


def test_dockerfile_installs_from_the_lock(compose):
    text = DOCKERFILE.read_text()
    instructions = [
        line.strip()
        for line in re.sub(r"\\\n", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    base = next(line.split()[1] for line in instructions if line.upper().startswith("FROM "))
    assert re.fullmatch(r"python:3\.11[-.\w]*|apache/airflow:[\d.]+-python3\.11", base), base
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", LOCK.read_text(), flags=re.M))
    if base.startswith("apache/airflow:"):
        assert base.split(":")[1].split("-")[0] == pins["apache-airflow"]
    assert any(line.startswith("COPY") and "requirements.lock" in line for line in instructions)
    runs = [line for line in instructions if line.startswith("RUN ")]
    lock_install = next(
        (i for i, line in enumerate(runs)
         if "requirements.lock" in line and ("uv pip sync" in line or ("--no-deps" in line and "-r" in line))),
        None,
    )  # fmt: skip
    assert lock_install is not None, (
        "install the dependencies from requirements.lock (uv pip sync / pip install --no-deps -r)"
    )
    project = next(
        (
            i
            for i, line in enumerate(runs)
            if re.search(r"pip install\b.*--no-deps", line) and "requirements.lock" not in line
        ),
        None,
    )
    assert project is not None and project > lock_install, "then the project itself with --no-deps"
    uv_arg = re.search(r"ARG UV_VERSION=(\S+)", text)
    if uv_arg:
        assert uv_arg[1] == pins["uv"], f"Dockerfile UV_VERSION {uv_arg[1]} != the lock's uv {pins['uv']}"
    common = compose["x-airflow-mlops-image"]["build"]
    assert (ROOT / common["context"] / common["dockerfile"]).resolve() == DOCKERFILE


def test_image_installs_the_package_once(services):
    """The wheel is the one copy of airflow_mlops in the image: no second copy of plugins/ shadowing it
    (PYTHONPATH), include/ found through AIRFLOW_MLOPS_PROJECT_ROOT, and tools/ there for airflow-init."""
    text = DOCKERFILE.read_text()
    instructions = [
        line.strip() for line in re.sub(r"\\\n", " ", text).splitlines() if line.strip()[:1] not in {"", "#"}
    ]
    installs = [line for line in instructions if re.search(r"pip install\b.*--no-deps", line)]
    assert len(installs) == 1, f"install the project once, not {installs}"
    assert "PYTHONPATH" not in "\n".join(instructions), "no PYTHONPATH: a copy of plugins/ on it shadows the wheel"
    plugin_copies = [line for line in instructions if line.startswith("COPY") and line.split()[1] == "plugins"]
    assert [line.split()[-1] for line in plugin_copies] == ["/tmp/airflow-mlops/plugins"], (
        f"plugins/ is copied only as the source of the one install, not {plugin_copies}"
    )
    env = services["airflow-init"]["environment"]
    root = str(PurePosixPath(env["AIRFLOW__CORE__DAGS_FOLDER"]).parent)
    assert re.search(rf"AIRFLOW_MLOPS_PROJECT_ROOT={re.escape(root)}(\s|$)", text), (
        f"the installed package finds include/pipelines through AIRFLOW_MLOPS_PROJECT_ROOT={root}"
    )
    workdir = [line.split()[1] for line in instructions if line.startswith("WORKDIR")]
    assert workdir[-1:] == [root], "`python -m tools.stack init` (airflow-init) imports tools/ from the WORKDIR"
    assert f"COPY tools {root}/tools" in instructions, "airflow-init runs tools.stack: the image needs tools/"


def test_docker_build_context_lets_the_copied_files_through():
    """Every COPY source passes docker/Dockerfile.dockerignore (ignore all, then !allow)."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    assert "*" in lines, "the build context starts from nothing (not .venv, .env, data, .stack)"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                if source.startswith("--"):
                    continue
                assert any(source == a or source.startswith(a + "/") for a in allowed), (
                    f"{source} is excluded from the build context"
                )
                assert (ROOT / source).exists(), source


def test_mlflow_entrypoint_writes_the_native_auth_config(tmp_path, services):
    """The image's MLflow entry point writes mlflow_auth_ini(auth DB) to MLFLOW_AUTH_CONFIG_PATH (0600), then execs."""
    assert services["mlflow"]["entrypoint"] == ["/usr/local/bin/mlflow-entrypoint"]
    assert "COPY docker/mlflow-entrypoint.sh /usr/local/bin/mlflow-entrypoint" in DOCKERFILE.read_text()
    ini = tmp_path / "auth" / "basic_auth.ini"
    uri = "postgresql+psycopg2://u:p@postgres:5432/airflow_mlops_mlflow_auth"
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_MLOPS_PROJECT_ROOT": str(ROOT),  # the image's /opt/airflow, where tools/ is
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "AIRFLOW_MLOPS_MLFLOW_AUTH_DATABASE_URI": uri,
    }
    done = subprocess.run(
        ["sh", str(MLFLOW_ENTRYPOINT), "sh", "-c", 'echo "exec:${AIRFLOW_MLOPS_MLFLOW_AUTH_DATABASE_URI:-unset}"'],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exec:unset"
    assert ini.read_text() == c.mlflow_auth_ini(uri)
    assert stat.S_IMODE(ini.stat().st_mode) == 0o600
