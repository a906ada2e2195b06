"""The native stack's supervisor: clear refusal of taken ports, stops exactly what it started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tools.stack import processes
from tools.stack.components import PORT_SETTINGS, Component, StackSettings, components, load_secrets
from tools.stack.processes import StackError


def _sleeper(name: str) -> Component:
    return Component(name, (sys.executable, "-c", "import time; time.sleep(120)"))


def test_a_taken_port_is_refused_with_its_number_and_owner():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StackError, match=rf"Port {port} on 127.0.0.1 \(needed by airflow-apiserver\)"):
            processes.check_ports_free([Component("airflow-apiserver", ("airflow",), port=port)])


def test_stack_up_checks_every_listening_component_port(tmp_path, monkeypatch):
    stack = StackSettings.from_env("cluster", home=tmp_path)
    ports = {part.name: part.port for part in components(stack, load_secrets(stack)) if part.port}
    assert set(ports) == set(PORT_SETTINGS)
    assert len(set(ports.values())) == len(ports), f"two components share a port: {ports}"


def test_stop_all_stops_exactly_the_processes_it_started(tmp_path):
    run_dir, log_dir = tmp_path / "run", tmp_path / "logs"
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        pids = [processes.start(_sleeper(name), run_dir, log_dir, tmp_path) for name in ("one", "two")]
        assert set(processes.running(run_dir)) == {"one", "two"}
        stopped = processes.stop_all(run_dir, timeout=10, log=lambda _: None)
        assert sorted(stopped) == ["one", "two"]
        for pid in pids:
            assert not processes._group_alive(pid)
        assert bystander.poll() is None, "a process the stack did not start was touched"
        assert processes.running(run_dir) == {}
    finally:
        bystander.kill()
        bystander.wait()


def test_a_recycled_pid_is_not_mistaken_for_a_stack_process(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # A pid file whose process has since exited and whose pid now belongs to someone else (this test).
    (run_dir / "ghost.json").write_text(f'{{"pid": {__import__("os").getpid()}, "start_time": 1, "argv": []}}')
    assert processes.running(run_dir) == {}


def test_secrets_are_generated_once_with_private_permissions(tmp_path):
    stack = StackSettings.from_env("cluster", home=tmp_path)
    first = load_secrets(stack, env_file=tmp_path / "absent.env")
    again = load_secrets(stack, env_file=tmp_path / "absent.env")
    assert first == again
    assert oct((tmp_path / "secrets.env").stat().st_mode & 0o777) == "0o600"
    # .env values win over generated ones
    (tmp_path / "team.env").write_text("AIRFLOW_ADMIN_PASSWORD=from-dot-env\n")
    assert load_secrets(stack, env_file=tmp_path / "team.env")["AIRFLOW_ADMIN_PASSWORD"] == "from-dot-env"


@pytest.mark.parametrize("profile", ["cluster", "local"])
def test_the_stacks_data_root_is_never_inside_the_state_folder(tmp_path, profile):
    """With --profile local the home is the state folder .mlops: its sources live in the project's data/ instead."""
    from tools.stack.components import airflow_env

    stack = StackSettings.from_env(profile, home=tmp_path / ".mlops")
    env = airflow_env(stack, load_secrets(stack))
    data_root, state = Path(env["AIRFLOW_MLOPS_DATA_ROOTS"]), Path(env["AIRFLOW_MLOPS_HOME"])
    assert not data_root.is_relative_to(state) and not state.is_relative_to(data_root)


def test_native_workers_load_their_hostname_callable_from_tools(tmp_path):
    """The hostname callable lives in tools/ (not in the wheel): a worker's environment must import it from any
    cwd, or Airflow refuses to start the worker ("The object could not be loaded ... hostname_callable")."""
    stack = StackSettings.from_env("cluster", home=tmp_path)
    workers = [part for part in components(stack, load_secrets(stack)) if part.name.startswith("airflow-worker-")]
    assert len({(p.env["AIRFLOW__CORE__HOSTNAME_CALLABLE"], p.env["PYTHONPATH"]) for p in workers}) == 1
    part = workers[-1]  # one Airflow import is enough: the workers differ only by name and port
    env = {**os.environ, **part.env, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    done = subprocess.run(
        [sys.executable, "-c", "from airflow.utils.net import get_hostname; print(get_hostname())"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith(f"{part.env['AIRFLOW_MLOPS_STACK_WORKER']}@"), done.stdout
