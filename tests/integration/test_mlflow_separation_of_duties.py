"""Separation of duties on the stack's MLflow server: the trainer trains, only the promoter moves aliases and writes
the ledger. A real `mlflow server` started with the stack's own command, auth config and grants
(`components.mlflow_server_argv`, `mlflow_auth_ini`, `manager.setup_mlflow_users`), on SQLite, no mocks.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from airflow_mlops.core import mlflow_auth, registry
from airflow_mlops.hooks import mlflow as mlflow_hook
from tools.stack import components as c
from tools.stack import manager

pytestmark = pytest.mark.timeout(300)

MLFLOW_ENV = (mlflow_auth.AUTH_ENV, mlflow_hook.HTTP_MAX_RETRIES_ENV, mlflow_hook.HTTP_TIMEOUT_ENV)
PASSWORD_OF = {c.MLFLOW_TRAINER: "MLFLOW_TRAINER_PASSWORD", c.MLFLOW_PROMOTER: "MLFLOW_PROMOTER_PASSWORD"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StackMlflow:
    """The stack's MLflow server component (its argv, environment and auth config) on SQLite stores in `root`."""

    def __init__(self, root: Path) -> None:
        self.settings = c.StackSettings(home=root, ports={"mlflow": _free_port()})
        self.url = self.settings.mlflow_url
        self.secret = {name: secrets.token_urlsafe(16) for name in c.SECRET_NAMES}
        self.argv = c.mlflow_server_argv(
            f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"), "127.0.0.1", self.settings.ports["mlflow"]
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            **c.mlflow_env(self.settings, self.secret),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job-runner processes: a faster start
        }
        ini = Path(self.env["MLFLOW_AUTH_CONFIG_PATH"])
        ini.parent.mkdir(parents=True, exist_ok=True)
        # + a login cache: each request would otherwise hash the password again (~0.3 s on a busy machine)
        ini.write_text(c.mlflow_auth_ini(f"sqlite:///{root / 'auth.db'}") + "auth_cache_ttl_seconds = 600\n")
        self.log = root / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                if response.status == 200:
                    return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            f"mlflow server did not answer within 180 s:\n{self.log.read_text(errors='replace')[-3000:]}"
        )

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def client(self, user: str) -> MlflowClient:
        """A client acting as `user` (the hook's way: credentials for this server in the process-wide table)."""
        mlflow_auth.set_basic_auth([self.url], user, self.secret[PASSWORD_OF[user]])
        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)

    def auth(self, user: str) -> tuple[str, str]:
        return user, self.secret[PASSWORD_OF[user]]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    saved = {name: os.environ.get(name) for name in MLFLOW_ENV}
    os.environ[mlflow_hook.HTTP_MAX_RETRIES_ENV] = "0"
    os.environ[mlflow_hook.HTTP_TIMEOUT_ENV] = "30"
    server = StackMlflow(tmp_path_factory.mktemp("mlflow-sod"))
    server.start()
    try:
        manager.setup_mlflow_users(server.url, server.secret)
        yield server
    finally:
        server.stop()
        mlflow_auth.clear_basic_auth()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def pipeline():
    """(training experiment, registered model) of a pipeline the stack grants."""
    return manager.pipelines()[0]


def _train_and_register(server: StackMlflow, pipeline: tuple[str, str], digest: str) -> str:
    """As the trainer: a run in the pipeline's experiment with a param and an artifact, registered as `challenger`."""
    experiment, model = pipeline
    trainer = server.client(c.MLFLOW_TRAINER)
    run_id = trainer.create_run(trainer.get_experiment_by_name(experiment).experiment_id).info.run_id
    trainer.log_param(run_id, "alpha", "0.1")
    trainer.log_text(run_id, "flavor: test\n", "model/MLmodel")
    trainer.set_terminated(run_id)
    registered = registry.register_challenger(
        trainer, model, f"runs:/{run_id}/model", run_id, tags={"data.digest": digest}
    )
    assert registered["alias"] == registry.CHALLENGER
    return registered["version"]


@pytest.fixture(scope="module")
def promoted(server, pipeline):
    """The first champion, promoted by the promoter (the ledger run is made then)."""
    _, model = pipeline
    version = _train_and_register(server, pipeline, "digest-1")
    result = registry.promote(
        server.client(c.MLFLOW_PROMOTER), model, version, expected_champion=None,
        actor={"actor": "test:promoter"}, reason="first champion",
    )  # fmt: skip
    return version, result


def _refused(call, *args) -> str:
    """Run an MLflow client call that must be refused with HTTP 403 (an artifact upload raises requests' error)."""
    with pytest.raises((MlflowException, requests.HTTPError)) as caught:
        call(*args)
    error = caught.value
    if isinstance(error, requests.HTTPError):
        assert error.response.status_code == 403, error
        return error.response.text
    assert error.get_http_status_code() == 403, error.message
    return error.message


def test_the_trainer_logs_runs_registers_versions_and_sets_challenger(server, pipeline):
    _, model = pipeline
    version = _train_and_register(server, pipeline, "digest-trainer")
    trainer = server.client(c.MLFLOW_TRAINER)
    trainer.set_model_version_tag(model, version, "decision", "REJECT")  # the gate's verdict tags
    assert trainer.get_model_version_by_alias(model, registry.CHALLENGER).version == version


def test_the_trainer_cannot_move_champion_nor_redirect_the_ledger(server, pipeline, promoted):
    _, model = pipeline
    champion, _ = promoted
    other = _train_and_register(server, pipeline, "digest-rival")
    trainer = server.client(c.MLFLOW_TRAINER)
    message = _refused(trainer.set_registered_model_alias, model, registry.CHAMPION, other)
    assert "trainer" in message and model in message and "MANAGE" in message
    _refused(trainer.set_registered_model_alias, model, registry.PREVIOUS_CHAMPION, other)
    _refused(trainer.delete_registered_model_alias, model, registry.CHAMPION)
    _refused(trainer.set_registered_model_tag, model, registry.LEDGER_RUN_TAG, "a-run-of-mine")
    _refused(trainer.delete_registered_model_tag, model, registry.LEDGER_RUN_TAG)
    _refused(trainer.rename_registered_model, model, f"{model}_gone")
    _refused(trainer.create_registered_model, "a_model_the_trainer_would_own")
    promoter = server.client(c.MLFLOW_PROMOTER)
    assert promoter.get_model_version_by_alias(model, registry.CHAMPION).version == champion


def test_an_alias_named_twice_in_one_request_is_judged_by_both(server, pipeline, promoted):
    """The query says `challenger`, the body `champion`: the rule sees both and refuses."""
    _, model = pipeline
    champion, _ = promoted
    response = requests.post(
        f"{server.url}/api/2.0/mlflow/registered-models/alias", params={"alias": registry.CHALLENGER},
        json={"name": model, "alias": registry.CHAMPION, "version": "1"}, auth=server.auth(c.MLFLOW_TRAINER),
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 403, response.text
    assert server.client(c.MLFLOW_PROMOTER).get_model_version_by_alias(model, registry.CHAMPION).version == champion


def test_the_trainer_reads_the_ledger_but_cannot_write_it_nor_take_its_lock(server, pipeline, promoted):
    _, model = pipeline
    trainer = server.client(c.MLFLOW_TRAINER)
    before = registry.history(trainer, model)  # READ: the gate's baseline guard reads the first champion here
    assert "first champion" in [e["reason"] for e in before]
    ledger_run = trainer.get_registered_model(model).tags[registry.LEDGER_RUN_TAG]
    _refused(trainer.log_text, ledger_run, "[]", registry.LEDGER_ARTIFACT)
    _refused(trainer.log_param, ledger_run, "lock.999", json.dumps({"by": "trainer", "t": time.time(), "at": "now"}))
    _refused(trainer.set_tag, ledger_run, registry.LEDGER_MODEL_TAG, "someone_else")
    _refused(trainer.delete_run, ledger_run)
    with pytest.raises(MlflowException) as caught:
        registry.record_decision(trainer, model, "1", action="reject", actor={"actor": "trainer"}, reason="erase")
    assert caught.value.get_http_status_code() == 403
    assert registry.history(trainer, model) == before


def test_the_promoter_moves_aliases_and_writes_the_ledger(server, pipeline, promoted):
    _, model = pipeline
    champion, result = promoted
    assert result["champion"] == champion
    challenger = _train_and_register(server, pipeline, "digest-2")
    promoter = server.client(c.MLFLOW_PROMOTER)
    registry.promote(promoter, model, challenger, expected_champion=champion, actor={"actor": "test:promoter"},
                     reason="second champion")  # fmt: skip
    entry = registry.record_decision(promoter, model, challenger, action="reject", actor={"actor": "test:promoter"},
                                     reason="recorded by the promoter")  # fmt: skip
    assert registry.read_aliases(promoter, model) == {"champion": challenger, "previous_champion": champion}
    history = registry.history(server.client(c.MLFLOW_TRAINER), model)
    assert [e["reason"] for e in history][-1] == entry["reason"]
    assert {"first champion", "second champion"} <= {e["reason"] for e in history}


def test_a_rollback_on_the_models_page_goes_through_the_promoter(server, pipeline, promoted, monkeypatch):
    """The api-server holds `mlflow_default` (trainer) and `mlflow_promoter`: the page's rollback is a promoter's."""
    from airflow_mlops.ui import app as ui

    _, model = pipeline
    for conn_id, user in (("mlflow_default", c.MLFLOW_TRAINER), ("mlflow_promoter", c.MLFLOW_PROMOTER)):
        login, password = server.auth(user)
        conn = {"conn_type": "mlflow", "host": server.url, "login": login, "password": password}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    monkeypatch.setattr(ui, "_client_cache", {})
    promoter = server.client(c.MLFLOW_PROMOTER)
    aliases = registry.read_aliases(promoter, model)
    if aliases["previous_champion"] is None:  # this test alone: make a second champion to roll back from
        version = _train_and_register(server, pipeline, "digest-rollback")
        registry.promote(promoter, model, version, expected_champion=aliases["champion"], actor={"actor": "test"},
                         reason="to roll back")  # fmt: skip
        aliases = registry.read_aliases(promoter, model)
    user = SimpleNamespace(get_name=lambda: "alice", get_id=lambda: "alice")
    result = ui._rollback(model, user, {"reason": "bad day", "expected_champion": aliases["champion"]})
    assert result["champion"] == aliases["previous_champion"]
    assert registry.history(promoter, model)[-1]["actor"]["user"] == "alice"


def test_the_cli_rollback_goes_through_the_promoter_by_default(server, pipeline, promoted, monkeypatch):
    """`airflow-mlops rollback` without --conn-id uses `mlflow_promoter` (the trainer's `mlflow_default` is refused)."""
    from airflow_mlops import cli

    _, model = pipeline
    for conn_id, user in (("mlflow_default", c.MLFLOW_TRAINER), ("mlflow_promoter", c.MLFLOW_PROMOTER)):
        login, password = server.auth(user)
        conn = {"conn_type": "mlflow", "host": server.url, "login": login, "password": password}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    promoter = server.client(c.MLFLOW_PROMOTER)
    aliases = registry.read_aliases(promoter, model)
    if aliases["previous_champion"] is None:  # this test alone: make a second champion to roll back from
        version = _train_and_register(server, pipeline, "digest-cli-rollback")
        registry.promote(promoter, model, version, expected_champion=aliases["champion"], actor={"actor": "test"},
                         reason="to roll back")  # fmt: skip
        aliases = registry.read_aliases(promoter, model)
    code = cli.main(["rollback", model, "--expect", str(aliases["champion"]), "--reason", "bad night"])
    assert code == cli.EXIT_OK
    assert registry.read_aliases(promoter, model)["champion"] == aliases["previous_champion"]
    assert registry.history(promoter, model)[-1]["reason"] == "bad night"


def test_a_task_refused_by_the_rule_is_told_the_rule_not_to_ask_for_a_grant(server, pipeline, promoted, monkeypatch):
    """A trainer-identity task moving `champion` fails once, naming the separation-of-duties rule."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops.hooks.mlflow import MlflowHook

    _, model = pipeline
    login, password = server.auth(c.MLFLOW_TRAINER)
    conn = {"conn_type": "mlflow", "host": server.url, "login": login, "password": password}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(conn))
    hook = MlflowHook()
    trainer = hook.get_conn()
    other = _train_and_register(server, pipeline, "digest-told")
    with pytest.raises(Exception) as refused:
        trainer.set_registered_model_alias(model, registry.CHAMPION, other)
    explained = hook.explain_error(refused.value, model=model)
    assert isinstance(explained, AirflowFailException)
    assert "refused user 'trainer' (HTTP 403): user 'trainer' may not set alias 'champion'" in str(explained)
    assert "need MANAGE on the model" in str(explained) and "grant user" not in str(explained)
