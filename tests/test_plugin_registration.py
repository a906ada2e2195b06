"""The airflow-mlops plugin is registered exactly once: pip-installed, deployed as a folder, or both.

Each case runs Airflow's plugin managers (core: scheduler / API server; Task SDK: workers) in a
fresh subprocess with its own AIRFLOW_HOME, so plugin caches and sys.modules do not leak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"

_PROBE = textwrap.dedent(
    """
    import json, sys

    if {hide_distribution!r}:
        # Simulate a plugins-folder deployment: the airflow-mlops distribution (and its entry
        # points) is not installed.
        import importlib.metadata, importlib_metadata

        def _without_us(original):
            def distributions(**kwargs):
                return [d for d in original(**kwargs) if (d.metadata["Name"] or "").lower() != "airflow-mlops"]
            return distributions

        importlib.metadata.distributions = _without_us(importlib.metadata.distributions)
        importlib_metadata.distributions = _without_us(importlib_metadata.distributions)

    from airflow import plugins_manager as core_pm
    from airflow.sdk import plugins_manager as sdk_pm

    out = {{}}
    for label, pm in (("core", core_pm), ("sdk", sdk_pm)):
        plugins, errors = pm._get_plugins()
        out[label] = [[p.name, str(p.source)] for p in plugins]
        out[label + "_errors"] = {{str(k): str(v) for k, v in errors.items()}}
    out["links"] = sorted(type(link).__name__ for link in core_pm.get_operator_extra_links())
    plugins_dir = {plugins_dir!r}
    out["top_level_from_plugins_dir"] = sorted(
        name for name, mod in list(sys.modules.items())
        if "." not in name and name != "airflow_mlops"
        and (getattr(mod, "__file__", None) or "").startswith(plugins_dir + "/airflow_mlops/")
    )
    print("PROBE:" + json.dumps(out))
    """
)


def _probe(tmp_path: Path, plugins_folder: Path, *, hide_distribution: bool, **airflow_env: str) -> dict:
    home = tmp_path / "airflow_home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder),
            "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            **airflow_env,
        }
    )
    env.pop("PYTHONPATH", None)
    code = _PROBE.format(hide_distribution=hide_distribution, plugins_dir=str(PLUGINS))
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBE:"))
    return json.loads(line.removeprefix("PROBE:"))


def _assert_registered_once(out: dict, source_contains: str) -> None:
    for label in ("core", "sdk"):
        ours = [source for name, source in out[label] if name == "airflow_mlops"]
        assert len(ours) == 1, f"{label} plugin manager registered airflow_mlops {len(ours)} times: {out[label]}"
        assert source_contains in ours[0], ours[0]
        assert out[label + "_errors"] == {}, out[label + "_errors"]
    assert out["links"].count("MlflowRunLink") == 1
    assert out["links"].count("MlflowModelVersionLink") == 1
    # The package's own modules were never imported as top-level plugin modules
    # (hooks/mlflow.py as a module named `mlflow` would shadow MLflow itself).
    assert out["top_level_from_plugins_dir"] == []


@pytest.fixture(scope="module")
def installed() -> None:
    from airflow_mlops.plugin import installed_as_entry_point

    if not installed_as_entry_point():
        pytest.skip("airflow-mlops is not pip-installed here: run `uv pip install --no-deps -e .`")


def test_pip_installed_with_an_empty_plugins_folder(tmp_path, installed):
    empty = tmp_path / "plugins"
    empty.mkdir()
    out = _probe(tmp_path, empty, hide_distribution=False)
    _assert_registered_once(out, "airflow-mlops==")


def test_plugins_folder_without_the_distribution(tmp_path):
    out = _probe(tmp_path, PLUGINS, hide_distribution=True)
    _assert_registered_once(out, "$PLUGINS_FOLDER/airflow_mlops_plugin.py")


def test_plugins_folder_with_regexp_ignore_syntax(tmp_path):
    out = _probe(tmp_path, PLUGINS, hide_distribution=True, AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX="regexp")
    _assert_registered_once(out, "$PLUGINS_FOLDER/airflow_mlops_plugin.py")


def test_pip_installed_and_plugins_folder_at_once(tmp_path, installed):
    out = _probe(tmp_path, PLUGINS, hide_distribution=False)
    _assert_registered_once(out, "airflow-mlops==")


def test_eager_provider_discovery_does_not_register_it_again(tmp_path, installed):
    out = _probe(tmp_path, PLUGINS, hide_distribution=False, AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS="False")
    _assert_registered_once(out, "airflow-mlops==")


def test_provider_info_is_valid_for_airflow(tmp_path, installed):
    code = textwrap.dedent(
        """
        import json
        from airflow.providers_manager import ProvidersManager
        pm = ProvidersManager()
        info = pm.providers["airflow-mlops"]
        hooks = pm.hooks
        print("PROBE:" + json.dumps({
            "version": info.version,
            "hook": hooks["mlflow"].hook_class_name,
            "hook_name": hooks["mlflow"].hook_name,
            "testable": hooks["mlflow"].connection_testable,
            "behaviour": pm.field_behaviours.get("mlflow"),
            "widgets": sorted(k for k in pm.connection_form_widgets if k.startswith("extra__mlflow__")),
            "links": sorted(c for c in pm.extra_links_class_names if c.startswith("airflow_mlops.")),
        }))
        """
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(next(x for x in result.stdout.splitlines() if x.startswith("PROBE:")).removeprefix("PROBE:"))

    from airflow_mlops import __version__

    assert out["version"] == __version__
    assert out["hook"] == "airflow_mlops.hooks.mlflow.MlflowHook"
    assert out["hook_name"] == "MLflow"
    assert out["testable"] is True
    assert out["behaviour"]["relabeling"]["host"] == "Tracking URI"
    assert out["widgets"] == ["extra__mlflow__registry_uri"]
    assert out["links"] == ["airflow_mlops.links.MlflowModelVersionLink", "airflow_mlops.links.MlflowRunLink"]


def test_links_point_at_the_mlflow_ui(monkeypatch):
    from airflow_mlops import links

    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_UI_URL", "https://mlflow.example.com/")
    assert links.run_url("abc123", "7") == "https://mlflow.example.com/#/experiments/7/runs/abc123"
    assert links.run_url("abc123") == "https://mlflow.example.com/#/runs/abc123"
    assert links.model_version_url("churn model", "3") == "https://mlflow.example.com/#/models/churn%20model/versions/3"


def test_links_read_the_operator_xcoms(monkeypatch):
    from types import SimpleNamespace

    from airflow_mlops import links

    xcoms = {"mlflow_run_id": "r1", "mlflow_experiment_id": "2", "model_name": "churn", "model_version": "5"}
    monkeypatch.setattr(links, "_xcom", lambda ti_key, key: xcoms.get(key))
    monkeypatch.delenv("AIRFLOW__MLOPS__MLFLOW_UI_URL", raising=False)
    key = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=-1, try_number=1)

    assert links.MlflowRunLink().get_link(None, ti_key=key) == "http://localhost:5000/#/experiments/2/runs/r1"
    assert (
        links.MlflowModelVersionLink().get_link(None, ti_key=key) == "http://localhost:5000/#/models/churn/versions/5"
    )

    xcoms.clear()
    assert links.MlflowRunLink().get_link(None, ti_key=key) == ""
    assert links.MlflowModelVersionLink().get_link(None, ti_key=key) == ""
