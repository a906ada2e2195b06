"""The wheel holds what a production worker runs and nothing else.

Built here with uv (the build backend, hatchling, from uv's cache when offline). The stack supervisor and the
demo are development tools in tools/: the demo deletes the MLflow store, artifacts, snapshots and predictions
under $AIRFLOW_MLOPS_HOME, and the supervisor needs httpx; neither belongs on a worker.
"""

from __future__ import annotations

import ast
import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "plugins" / "airflow_mlops"
#: Where development tooling lives now; none of it may come back into the package.
TOOLING = ("airflow_mlops/stack/", "airflow_mlops/demo.py")
#: Project folders that are not the package.
NOT_PACKAGED = ("tests/", "tools/", "dags/", "include/", "benchmarks/", "docker/", "plugins/")
#: Modules a wheel module must not import: the tooling, and what only the tooling needs (not runtime dependencies).
FORBIDDEN_IMPORTS = {"tools", "airflow_mlops.stack", "airflow_mlops.demo", "httpx", "aiosmtpd"}


def _uv() -> str:
    uv = Path(sys.executable).with_name("uv")
    if uv.is_file():
        return str(uv)
    found = shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed: it is in the dev extra (make install)")
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    command = [_uv(), "build", "--wheel", "--out-dir", str(out), str(ROOT)]
    # offline first (hatchling from uv's cache: well under a second), else with the index
    built = subprocess.run([*command, "--offline"], capture_output=True, text=True, timeout=120)
    if built.returncode != 0:
        built = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, f"uv build --wheel failed:\n{built.stdout}{built.stderr}"
    (path,) = out.glob("airflow_mlops-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def _package_files() -> set[str]:
    """Every file of plugins/airflow_mlops as the wheel names it (compiled files left out)."""
    return {
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_wheel_holds_the_runtime_package(wheel):
    names = set(wheel.namelist())
    for module in (
        "airflow_mlops/__init__.py", "airflow_mlops/plugin.py", "airflow_mlops/provider.py",
        "airflow_mlops/cli.py", "airflow_mlops/mlflow_server_auth.py", "airflow_mlops/hooks/mlflow.py",
        "airflow_mlops/core/__init__.py", "airflow_mlops/core/registry/__init__.py",
        "airflow_mlops/operators/__init__.py",
    ):  # fmt: skip
        assert module in names, f"the wheel lacks {module}"
    missing = _package_files() - names
    assert not missing, f"files of plugins/airflow_mlops missing from the wheel: {sorted(missing)}"


def test_wheel_holds_no_tooling_tests_or_project_folders(wheel):
    names = wheel.namelist()
    tooling = [n for n in names if n.startswith(TOOLING)]
    assert not tooling, f"development tooling in the wheel (move it to tools/): {tooling}"
    outside = [n for n in names if n.startswith(NOT_PACKAGED)]
    assert not outside, f"project folders in the wheel: {outside}"
    stray = [n for n in names if not n.startswith(("airflow_mlops/", "airflow_mlops-"))]
    assert not stray, f"files outside the package in the wheel: {stray}"
    compiled = [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not compiled, f"compiled files in the wheel: {compiled[:5]}"


def _forbidden(module: str) -> bool:
    parts = module.split(".")
    return any(".".join(parts[:i]) in FORBIDDEN_IMPORTS for i in range(1, len(parts) + 1))


def test_wheel_modules_do_not_import_the_tooling(wheel):
    """A wheel module that imports tools/ (or the supervisor's httpx client) fails on a worker without the checkout."""
    offenders = []
    for name in wheel.namelist():
        if not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(wheel.read(name), filename=name)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            else:
                continue
            offenders += [f"{name}:{node.lineno} imports {t}" for t in targets if _forbidden(t)]
    assert not offenders, offenders


def test_wheel_registers_the_entry_points(wheel):
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    entry_points = configparser.ConfigParser(delimiters=("=",))
    entry_points.optionxform = str  # type: ignore[assignment,method-assign]
    entry_points.read_string(wheel.read(name).decode())
    assert entry_points["airflow.plugins"]["airflow_mlops"].strip() == "airflow_mlops.plugin:AirflowMlopsPlugin"
    assert (
        entry_points["apache_airflow_provider"]["provider_info"].strip() == "airflow_mlops.provider:get_provider_info"
    )
    assert entry_points["mlflow.app"]["airflow-mlops-auth"].strip() == "airflow_mlops.mlflow_server_auth:create_app"
    assert entry_points["console_scripts"]["airflow-mlops"].strip() == "airflow_mlops.cli:main"
