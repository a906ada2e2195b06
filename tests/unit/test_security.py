"""Security: no pickled model is loaded unless the config says so, sources stay in their folders, no shell."""

from __future__ import annotations

import ast
import datetime as dt
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CHURN_CONFIG, ROOT

from airflow_mlops.core.errors import DataSourceError

PACKAGE = ROOT / "plugins" / "airflow_mlops"
DAY = dt.date(2026, 1, 20)


# --------------------------------------------------------------------------- (a) pickled models


class _Payload:
    """What a malicious model file does when it is unpickled: here, create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _pickled_model(folder: Path) -> Path:
    """A real scikit-learn model logged by MLflow with cloudpickle instead of skops."""
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    mlflow.sklearn.save_model(model, str(folder), serialization_format="cloudpickle", pip_requirements=[])
    return folder


def test_pickled_model_is_refused_and_never_unpickled(tmp_path):
    from airflow_mlops.core.skops_types import UntrustedModelError
    from airflow_mlops.core.training import load_model

    model_dir = _pickled_model(tmp_path / "model")
    marker = tmp_path / "pwned"
    (model_dir / "model.pkl").write_bytes(pickle.dumps(_Payload(marker)))

    with pytest.raises(UntrustedModelError) as err:
        load_model(str(model_dir))
    message = str(err.value)
    assert "serialized with cloudpickle" in message and "security.allow_pickle_models: true" in message
    assert not marker.exists(), "the model file was unpickled"


def test_pickled_model_loads_only_when_the_config_allows_it(tmp_path):
    from airflow_mlops.core.training import load_model

    model = load_model(str(_pickled_model(tmp_path / "model")), allow_pickle=True)
    assert model.predict([[5.1, 3.5, 1.4, 0.2]]).tolist() == [0]


@pytest.mark.parametrize(("preset", "expected"), [(None, "False"), ("true", "True")])
def test_task_processes_refuse_pickle_deserialization_unless_told_otherwise(preset, expected):
    """Importing the package sets MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false when unset (MLflow's default is true)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"}
    if preset is not None:
        env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = preset
    env["PYTHONPATH"] = str(PACKAGE.parent)
    code = (
        "import airflow_mlops.settings\n"
        "from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION as flag\n"
        "print(flag.get())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == expected


# --------------------------------------------------------------------------- (b) data paths confined


def test_drift_window_outside_the_roots_is_refused_not_waited_for(churn_config, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops.core import monitoring
    from airflow_mlops.sensors.drift import DriftSensor

    for call in (monitoring.window_pattern, monitoring.snapshot_window):
        with pytest.raises(DataSourceError, match="/etc: source path is outside the allowed folders"):
            call(churn_config, DAY, source="/etc")
    sensor = DriftSensor(task_id="check_drift", config_path=str(CHURN_CONFIG), source="/etc", as_of=DAY.isoformat())
    with pytest.raises(AirflowFailException, match="outside the allowed folders"):
        sensor.poke({})


# --------------------------------------------------------------------------- (c) no shell


INJECTIONS = ["data/x; touch {m}", "$(touch {m})", "`touch {m}`", "data/x && touch {m}", "| touch {m}"]


@pytest.mark.parametrize("template", INJECTIONS)
def test_a_source_is_a_path_never_a_command(template, churn_config, tmp_path):
    from airflow_mlops.core.data import take_snapshot

    marker, literal = tmp_path / "pwned", Path("/tmp/pwned")
    literal_existed = literal.exists()
    for source in (template.format(m=marker), template.format(m=literal)):
        with pytest.raises(DataSourceError) as err:
            take_snapshot(churn_config, source=source, window_end=DAY, snapshot_root=tmp_path / "snapshots")
        assert source in str(err.value) and ("not found" in str(err.value) or "outside the allowed" in str(err.value))
    assert not marker.exists() and literal.exists() == literal_existed
    assert not (tmp_path / "snapshots").exists()


def test_templated_source_renders_to_a_literal_path_and_is_refused(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops.operators.data import DataSnapshotOperator

    marker = tmp_path / "pwned"
    op = DataSnapshotOperator(
        task_id="snapshot", config_path=str(CHURN_CONFIG), source="{{ params.source }}", window_end="{{ params.as_of }}"
    )
    op.render_template_fields({"params": {"source": f"$(touch {marker})", "as_of": DAY.isoformat()}})
    assert op.source == f"$(touch {marker})"
    with pytest.raises(AirflowFailException, match=r"\$\(touch .*pwned\): source path is outside the allowed folders"):
        op.execute({})
    assert not marker.exists()


def _shell_uses(tree: ast.AST) -> list[str]:
    """Calls that run a shell, or a subprocess given a command string instead of an argument list."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
            found.append(name)
        if any(
            k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
            for k in node.keywords
        ):
            found.append(f"{name}(shell=...)")
        if name.startswith("subprocess.") and node.args and isinstance(node.args[0], ast.Constant | ast.JoinedStr):
            found.append(f"{name}(<a command string>)")
    return found


def test_nothing_in_the_package_or_the_dags_runs_a_shell():
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "dags").rglob("*.py")]
    uses = {str(f.relative_to(ROOT)): u for f in files if (u := _shell_uses(ast.parse(f.read_text())))}
    assert uses == {}
    assert _shell_uses(ast.parse("import subprocess\nsubprocess.run(f'ls {x}', shell=True)")) == [
        "subprocess.run(shell=...)",
        "subprocess.run(<a command string>)",
    ]
