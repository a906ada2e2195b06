"""Faults and retries on the real components: MLflow (SQLite store), the operators, Airflow's dag.test(), GX.

Only the fault itself is injected: MLflow going away from a given call on (every MlflowClient call
then raises requests' ConnectionError, as a dead tracking server does), a task process killed
with SIGKILL at a chosen point, an artifact upload or a file write hitting a full disk, two
promotions racing. Every test ends with `assert_registry_consistent`.

Idempotency already covered elsewhere, not repeated here:
- tests/unit/test_data.py::test_rerun_is_idempotent_and_does_not_rewrite (same window: same digest, same file);
- tests/unit/test_registry.py::test_register_challenger_sets_alias_and_is_idempotent and
  ::test_rerun_training_in_the_same_dag_run_reuses_the_version (core-level registration retries);
- tests/unit/test_promotion.py::test_second_promotion_moves_previous_champion (a repeated promotion moves
  nothing), ::test_write_failing_half_way_leaves_aliases_as_before, ::test_ledger_failure_undoes_the_move.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import inspect
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import yaml
from conftest import CHURN_CONFIG, ROOT, churn_stream

from airflow_mlops.core import registry

DAG_ID = "churn_retrain"
AS_OF = "2026-01-28"
CANDIDATE = "logistic_regression"
SETUP = {"actor": "test-setup"}


# --------------------------------------------------------------------------- the consistency check


def assert_registry_consistent(client, model_name: str) -> None:
    """The registry, its ledger and the tracking store agree after a task finished or failed.

    - at most one version holds `champion`, and every alias points at an existing READY version;
    - every move of `champion` / `previous_champion` is in the ledger (`registry.history`): each move
      starts where the one before ended, the last ends at the alias's current version (no move means
      no alias: never promoted), and the champion's promotion tags are those of its last move;
    - the promotion lock is free, and no MLflow run is left RUNNING.
    """
    found = client.search_model_versions(f"name='{model_name}'")
    versions = {str(mv.version): client.get_model_version(model_name, mv.version) for mv in found}  # with aliases
    aliases = {str(a): str(v) for a, v in client.get_registered_model(model_name).aliases.items()}
    for alias, version in aliases.items():
        assert version in versions, f"{model_name}@{alias} points at version {version}, which does not exist"
        assert versions[version].status == "READY", f"{model_name}@{alias} -> v{version} is {versions[version].status}"
    assert len([v for v, mv in versions.items() if registry.CHAMPION in mv.aliases]) <= 1
    moves = registry.history(client, model_name)
    for alias in registry.MOVED_ALIASES:
        chain = [m for m in moves if m["alias"] == alias]
        for before, after in zip(chain, chain[1:], strict=False):
            assert after["from"] == before["to"], (
                f"{alias}: a move is missing from the ledger between {before} and {after}"
            )
        recorded = chain[-1]["to"] if chain else None
        assert recorded == aliases.get(alias), f"ledger: {alias} -> {recorded}; registry: {aliases.get(alias)}"
    champion = aliases.get(registry.CHAMPION)
    if champion is not None:
        last = [m for m in moves if m["alias"] == registry.CHAMPION][-1]
        assert versions[champion].tags.get("champion.promoted_at") == last["at"]
    assert registry.lock_holder(client, model_name) is None
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'")
    assert not running, [(r.info.run_name, r.data.tags.get("airflow.task_id")) for r in running]


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One MLOps home for the module (MLflow store, artifacts, snapshots, churn data); each test has its own model."""
    path = tmp_path_factory.mktemp("mlops")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_MLOPS_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def client(home):
    from mlflow import MlflowClient

    from airflow_mlops import settings
    from airflow_mlops.core import tracking

    uri = settings.default_tracking_uri()
    mlflow_client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    tracking.configure(mlflow_client)
    return mlflow_client


@pytest.fixture(scope="module")
def source(home, tmp_path_factory) -> Path:
    """28 clean daily churn files (2026-01-01 .. 2026-01-28) in a data folder beside the MLOps home (the state
    folder is never a source)."""
    out = tmp_path_factory.mktemp("faults-data") / "churn"
    churn_stream.write_stream(out, dt.date(2026, 1, 1), 28, rows=200)  # 3 test days hold 600 rows (>= min_test_rows)
    return out


def write_config(folder: Path, model: str, source: Path, pipeline: str = "faults") -> str:
    """include/pipelines/churn.yaml for `model`: one candidate, a lighter bootstrap."""
    raw = yaml.safe_load(CHURN_CONFIG.read_text())
    raw["pipeline"] = pipeline
    raw["source"]["path"] = str(source)
    raw["validation"]["suite"] = str(ROOT / raw["validation"]["suite"])
    raw["model"] = {"name": model, "candidates": raw["model"]["candidates"][:1]}
    raw["evaluation"]["bootstrap_samples"] = 200
    path = folder / f"{model}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture(scope="module")
def snapshot(home, source, tmp_path_factory) -> dict:
    from airflow_mlops.core.config import load_config
    from airflow_mlops.core.data import take_snapshot

    config = load_config(write_config(tmp_path_factory.mktemp("config"), "faults_model", source))
    return take_snapshot(config, window_end=dt.date.fromisoformat(AS_OF))


@pytest.fixture(scope="module")
def logged_model(client, snapshot, tmp_path_factory, source) -> dict:
    """One trained and logged model, registered cheaply as versions of any test's model."""
    from airflow_mlops.core import training
    from airflow_mlops.core.config import load_config
    from airflow_mlops.core.data import read_snapshot
    from airflow_mlops.core.rows import split_roles

    config = load_config(write_config(tmp_path_factory.mktemp("config"), "faults_model", source))
    split = split_roles(read_snapshot(snapshot["uri"]), config)
    return training.train_candidate(
        split, config, CANDIDATE, client=client, experiment="faults-setup",
        data_digest=snapshot["digest"], data_uri=snapshot["uri"], tags={},
    )  # fmt: skip


def register_versions(client, model: str, logged_model: dict, count: int, *, champion: str | None = None) -> None:
    """`count` READY versions of `model` (one logged model, a data digest each); `champion` promoted."""
    for i in range(1, count + 1):
        registry.register_challenger(
            client, model, logged_model["model_uri"], logged_model["run_id"],
            tags={registry.DIGEST_TAG: f"sha256:{model}-{i}", registry.WINDOW_END_TAG: AS_OF},
        )  # fmt: skip
    if champion is not None:
        registry.promote(client, model, champion, expected_champion=None, actor=SETUP, reason="first champion")


def approved(model: str, version: str, champion: str | None) -> dict:
    """What ChampionChallengerOperator returns for a challenger it approved."""
    return {"decision": "PROMOTE", "promote": True, "reasons": ["PASS: test"], "model_name": model,
            "challenger_version": version, "champion_version": champion}  # fmt: skip


class DagRun:
    """The tasks of one churn_retrain DAG run, each called as Airflow's task runner calls it: execute(context)."""

    def __init__(self, config: str, snapshot: dict, run_id: str) -> None:
        self.config, self.snapshot, self.run_id = config, snapshot, run_id

    def context(self, task_id: str, try_number: int) -> dict:
        ti = SimpleNamespace(dag_id=DAG_ID, run_id=self.run_id, task_id=task_id, try_number=try_number, map_index=-1,
                             xcom_push=lambda key, value: None)  # fmt: skip
        return {"ti": ti, "dag_run": SimpleNamespace(run_type="manual"), "outlet_events": {}}

    def train(self, try_number: int = 1) -> dict:
        from airflow_mlops.operators.training import TrainModelOperator

        op = TrainModelOperator(task_id="train", config_path=self.config, snapshot=self.snapshot, candidate=CANDIDATE)
        return op.execute(self.context("train", try_number))

    def register(self, results: list[dict], try_number: int = 1) -> dict:
        from airflow_mlops.operators.training import RegisterChallengerOperator

        op = RegisterChallengerOperator(
            task_id="register_challenger", config_path=self.config, results=results, snapshot=self.snapshot
        )
        return op.execute(self.context("register_challenger", try_number))

    def evaluate(self, challenger: dict, try_number: int = 1) -> dict:
        from airflow_mlops.operators.evaluation import ChampionChallengerOperator

        op = ChampionChallengerOperator(
            task_id="evaluate", config_path=self.config, snapshot=self.snapshot, challenger=challenger
        )
        return op.execute(self.context("evaluate", try_number))

    def deploy(self, verdict: dict, try_number: int = 1) -> dict:
        from airflow_mlops.operators.deploy import DeployModelOperator

        op = DeployModelOperator(task_id="deploy", config_path=self.config, verdict=verdict, snapshot=self.snapshot)
        return op.execute(self.context("deploy", try_number))


class MlflowOutage:
    """MLflow unreachable from the first MlflowClient call `starts(method, args)` accepts until the block ends.

    Every MlflowClient method (ours, and the fresh clients of MLflow's fluent API) then raises
    requests' ConnectionError, as calls to a tracking server that went away do.
    """

    def __init__(self, starts) -> None:
        self.starts, self.down, self.failed = starts, False, []

    def __enter__(self) -> MlflowOutage:
        from mlflow import MlflowClient

        self._patch = pytest.MonkeyPatch()
        for name, method in vars(MlflowClient).items():
            if inspect.isfunction(method) and not name.startswith("_"):
                self._patch.setattr(MlflowClient, name, self._wrap(name, method))
        return self

    def __exit__(self, *exc) -> None:
        self._patch.undo()

    def _wrap(self, name, method):
        @functools.wraps(method)
        def call(client, *args, **kwargs):
            self.down = self.down or self.starts(name, args)
            if self.down:
                self.failed.append(name)
                raise requests.exceptions.ConnectionError(f"injected: the MLflow server is unreachable ({name})")
            return method(client, *args, **kwargs)

        return call


def between_the_alias_moves(method: str, args: tuple) -> bool:
    """A fault point of a promotion: `champion` has moved, `previous_champion` has not yet."""
    return method == "set_registered_model_alias" and args[1] == registry.PREVIOUS_CHAMPION


def before_the_ledger(method: str, args: tuple) -> bool:
    """A fault point of a promotion: both aliases moved, the ledger not written yet."""
    return method == "log_text"


def runs_of(client, run_id: str, task_id: str) -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(
        experiments, filter_string=f"tags.`airflow.run_id` = '{run_id}' and tags.`airflow.task_id` = '{task_id}'",
        order_by=["attributes.start_time ASC"],
    )  # fmt: skip


def assert_retryable(exc: BaseException) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops.core.errors import MlflowUnavailableError

    assert not isinstance(exc, AirflowFailException), f"a retry can fix this, Airflow must retry it: {exc}"
    assert isinstance(exc, MlflowUnavailableError), f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- 1. idempotency


def test_retried_training_and_registration_reuse_the_registered_version(client, snapshot, source, tmp_path):
    model = "faults_retry"
    run = DagRun(write_config(tmp_path, model, source), snapshot, "manual__retry")
    first = run.register([run.train()])

    # A cleared train task trains again (a new MLflow run, same seed and data) and registration runs again.
    retrained = run.train(try_number=2)
    again = run.register([retrained], try_number=2)
    # And a registration retried on the same training result.
    same_run = run.register([retrained], try_number=3)

    assert again["version"] == same_run["version"] == first["version"] == "1"
    assert again["run_id"] != first["run_id"]
    (found,) = client.search_model_versions(f"name='{model}'")
    version = client.get_model_version(model, found.version)
    assert version.aliases == [registry.CHALLENGER]
    assert version.tags[registry.DIGEST_TAG] == snapshot["digest"]
    assert version.tags[registry.WINDOW_END_TAG] == AS_OF
    assert version.tags["airflow.run_id"] == "manual__retry"
    assert_registry_consistent(client, model)


# --------------------------------------------------------------------------- 2. MLflow unreachable


def test_mlflow_down_during_training_fails_retryable_and_the_retry_closes_the_dangling_run(
    client, snapshot, source, logged_model, tmp_path
):
    model = "faults_down_train"
    register_versions(client, model, logged_model, 1, champion="1")
    run = DagRun(write_config(tmp_path, model, source), snapshot, "manual__down_train")

    with MlflowOutage(lambda method, args: method == "log_batch"), pytest.raises(Exception) as down:
        run.train()  # dies inside its MLflow run, which nobody can close while MLflow is down

    assert_retryable(down.value)
    (dangling,) = runs_of(client, "manual__down_train", "train")
    assert dangling.info.status == "RUNNING"
    assert registry.read_aliases(client, model) == {"champion": "1", "previous_champion": None}

    result = run.train(try_number=2)
    run.register([result], try_number=1)

    closed = client.get_run(dangling.info.run_id)
    assert closed.info.status == "FAILED"
    assert "try 1 of this task ended without closing its run" in closed.data.tags["mlops.abandoned"]
    assert client.get_run(result["run_id"]).info.status == "FINISHED"
    assert registry.read_aliases(client, model) == {"champion": "1", "previous_champion": None}
    assert_registry_consistent(client, model)


def test_mlflow_down_during_evaluation_leaves_the_champion_and_the_retry_decides(
    client, snapshot, source, logged_model, tmp_path
):
    model = "faults_down_eval"
    register_versions(client, model, logged_model, 2, champion="1")
    run = DagRun(write_config(tmp_path, model, source), snapshot, "manual__down_eval")
    challenger = {"name": model, "version": "2"}

    with MlflowOutage(lambda method, args: method == "log_batch"), pytest.raises(Exception) as down:
        run.evaluate(challenger)

    assert_retryable(down.value)
    (dangling,) = runs_of(client, "manual__down_eval", "evaluate")
    assert dangling.info.status == "RUNNING"
    assert "decision" not in client.get_model_version(model, "2").tags

    verdict = run.evaluate(challenger, try_number=2)

    assert client.get_run(dangling.info.run_id).info.status == "FAILED"
    assert client.get_model_version(model, "2").tags["evaluation.run_id"] == verdict["evaluation_run_id"]
    assert registry.read_aliases(client, model)["champion"] == "1"
    assert_registry_consistent(client, model)


@pytest.mark.parametrize(
    "fault",
    [
        # champion moved to v2, previous_champion not yet (and the undo fails too): the retry undoes, then redoes it
        pytest.param(between_the_alias_moves, id="between-the-two-alias-moves"),
        # both aliases moved, the ledger not written (the undo fails): the retry records the move and finishes
        pytest.param(before_the_ledger, id="after-the-moves-before-the-ledger"),
    ],
)
def test_mlflow_down_in_the_middle_of_a_deploy_is_completed_or_undone_by_the_retry(
    client, snapshot, source, logged_model, tmp_path, request, fault
):
    model = f"faults_down_deploy_{request.node.callspec.id.replace('-', '_')}"
    register_versions(client, model, logged_model, 2, champion="1")
    run = DagRun(write_config(tmp_path, model, source), snapshot, f"manual__{model}")
    verdict = approved(model, "2", champion="1")

    with MlflowOutage(fault), pytest.raises(Exception) as down:
        run.deploy(verdict)

    assert_retryable(down.value)
    assert registry.lock_holder(client, model)["by"] == f"airflow:{DAG_ID}/manual__{model}/deploy"

    result = run.deploy(verdict, try_number=2)

    assert result["smoke_test"]["version"] == "2"
    assert registry.read_aliases(client, model) == {"champion": "2", "previous_champion": "1"}
    assert [(m["alias"], m["to"]) for m in registry.history(client, model)] == [
        ("champion", "1"), ("champion", "2"), ("previous_champion", "1"),
    ]  # fmt: skip
    assert_registry_consistent(client, model)


# --------------------------------------------------------------------------- 3. the task process killed

CHILD = r"""
import json, os, sys, time
from pathlib import Path
from types import SimpleNamespace

spec = json.loads(sys.argv[1])
marker = Path(spec["marker"])


def pause(*args, **kwargs):
    marker.write_text(str(os.getpid()))
    time.sleep(600)  # killed here


if spec["task_id"] == "train":
    from airflow_mlops.core.training import fit
    from airflow_mlops.operators.training import TrainModelOperator

    fit.log_sklearn_model = pause  # where train_candidate reads it, inside the MLflow run: it is RUNNING
    op = TrainModelOperator(task_id="train", **spec["kwargs"])
else:
    from mlflow import MlflowClient
    from airflow_mlops.operators.deploy import DeployModelOperator

    set_alias = MlflowClient.set_registered_model_alias

    def between_the_moves(self, name, alias, version):
        if alias == "previous_champion":  # champion already moved
            pause()
        return set_alias(self, name, alias, version)

    MlflowClient.set_registered_model_alias = between_the_moves
    op = DeployModelOperator(task_id="deploy", **spec["kwargs"])
ti = SimpleNamespace(dag_id=spec["dag_id"], run_id=spec["run_id"], task_id=spec["task_id"], try_number=1,
                     map_index=-1, xcom_push=lambda key, value: None)
op.execute({"ti": ti, "dag_run": SimpleNamespace(run_type="manual"), "outlet_events": {}})
"""


def kill_when_paused(tmp_path: Path, run: DagRun, task_id: str, **kwargs) -> None:
    """Run try 1 of `task_id` in a child process, SIGKILL it where CHILD pauses it."""
    marker, log = tmp_path / "paused", tmp_path / "child.log"
    spec = {"marker": str(marker), "dag_id": DAG_ID, "run_id": run.run_id, "task_id": task_id,
            "kwargs": {"config_path": run.config, "snapshot": run.snapshot, **kwargs}}  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")])}
    with open(log, "wb") as out:
        child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(spec)], stdout=out, stderr=subprocess.STDOUT,
                                 env=env)  # fmt: skip
    deadline = time.monotonic() + 240
    while not marker.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            child.wait()
            pytest.fail(f"the child never reached the kill point:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL


def test_training_killed_inside_its_mlflow_run_is_closed_by_the_retry(client, snapshot, source, tmp_path):
    model = "faults_kill_train"
    run = DagRun(write_config(tmp_path, model, source), snapshot, "manual__kill_train")

    kill_when_paused(tmp_path, run, "train", candidate=CANDIDATE)

    (dangling,) = runs_of(client, run.run_id, "train")
    assert dangling.info.status == "RUNNING" and dangling.data.tags["airflow.try_number"] == "1"

    result = run.train(try_number=2)
    run.register([result])

    closed = client.get_run(dangling.info.run_id)
    assert closed.info.status == "FAILED"
    assert "marked FAILED by try 2" in closed.data.tags["mlops.abandoned"]
    assert_registry_consistent(client, model)


def test_deploy_killed_between_the_two_alias_moves_is_recovered_by_the_retry(
    client, snapshot, source, logged_model, tmp_path
):
    model = "faults_kill_deploy"
    register_versions(client, model, logged_model, 2, champion="1")
    run = DagRun(write_config(tmp_path, model, source), snapshot, "manual__kill_deploy")
    verdict = approved(model, "2", champion="1")

    kill_when_paused(tmp_path, run, "deploy", verdict=verdict)

    assert registry.read_aliases(client, model) == {"champion": "2", "previous_champion": None}  # half-done
    assert registry.lock_holder(client, model)["by"] == f"airflow:{DAG_ID}/manual__kill_deploy/deploy"

    result = run.deploy(verdict, try_number=2)

    assert result["champion"] == "2" and result["smoke_test"]["version"] == "2"
    assert registry.read_aliases(client, model) == {"champion": "2", "previous_champion": "1"}
    assert_registry_consistent(client, model)


# --------------------------------------------------------------------------- 4. artifact upload failing half-way


def test_model_upload_failing_half_way_registers_nothing_and_the_retry_is_clean(
    client, snapshot, source, tmp_path, monkeypatch
):
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    from airflow_mlops.core import training

    model = "faults_upload"
    run = DagRun(write_config(tmp_path, model, source), snapshot, "manual__upload")

    def disk_full_half_way(repo, local_dir, artifact_path=None):
        files = sorted(p for p in Path(local_dir).rglob("*") if p.is_file())
        for file in files[: len(files) // 2]:
            target = Path(repo.artifact_dir, artifact_path or "", file.relative_to(local_dir))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(LocalArtifactRepository, "log_artifacts", disk_full_half_way)
        with pytest.raises(OSError, match="No space left on device"):
            run.train()

    (failed,) = runs_of(client, run.run_id, "train")
    assert failed.info.status == "FAILED"
    assert client.search_model_versions(f"name='{model}'") == []

    version = run.register([run.train(try_number=2)])

    mv = client.get_model_version(model, version["version"])
    assert mv.status == "READY" and mv.run_id != failed.info.run_id and mv.aliases == [registry.CHALLENGER]
    assert hasattr(training.load_model(f"models:/{model}@challenger"), "predict_proba")
    assert_registry_consistent(client, model)


# --------------------------------------------------------------------------- 5. two promotions at once


@pytest.mark.parametrize("expected", [None, "1"], ids=["first-champion", "replacing-v1"])
def test_two_runs_promoting_at_once_one_wins_the_other_is_refused(client, logged_model, expected):
    from mlflow import MlflowClient

    model = f"faults_race_{'first' if expected is None else 'v1'}"
    register_versions(client, model, logged_model, 3, champion=expected)
    barrier, outcomes = threading.Barrier(2), {}

    def promote(version: str) -> None:
        own_client = MlflowClient(tracking_uri=client.tracking_uri, registry_uri=client._registry_uri)
        actor = {"airflow.dag_id": DAG_ID, "airflow.run_id": f"manual__race_{version}", "airflow.task_id": "deploy"}
        barrier.wait()
        try:
            outcomes[version] = registry.promote(
                own_client, model, version, expected_champion=expected, actor=actor, reason=f"v{version} is better"
            )
        except Exception as exc:
            outcomes[version] = exc

    threads = [threading.Thread(target=promote, args=(v,)) for v in ("2", "3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    winners = [v for v, outcome in outcomes.items() if isinstance(outcome, dict)]
    assert len(winners) == 1, outcomes
    (winner,), (loser,) = winners, {"2", "3"} - set(winners)
    refusal = outcomes[loser]
    assert isinstance(refusal, registry.ChampionMovedError), repr(refusal)
    assert f"the champion is now version {winner} (set by airflow:{DAG_ID}/manual__race_{winner}/deploy" in str(refusal)
    assert f"this promotion of version {loser} was decided against" in str(refusal)
    assert "Nothing was changed" in str(refusal)
    assert registry.read_aliases(client, model) == {"champion": winner, "previous_champion": expected}
    assert_registry_consistent(client, model)


def test_a_lock_held_on_a_second_ledger_run_holds_off_a_promotion_and_history_merges_both(
    client, logged_model, monkeypatch
):
    """What a first-promotion race can leave: two ledger runs for one model. A writer that claimed
    the lock on the other run must still hold everyone off, and moves recorded on either run are history."""
    model = "faults_two_ledgers"
    register_versions(client, model, logged_model, 3, champion="1")
    tagged = client.get_registered_model(model).tags[registry.LEDGER_RUN_TAG]
    experiment = client.get_experiment_by_name(registry.LEDGER_EXPERIMENT).experiment_id
    other = client.create_run(experiment, tags={registry.LEDGER_MODEL_TAG: model}).info.run_id
    client.set_terminated(other)
    rival = {"by": "airflow:rival/manual__rival/deploy", "t": time.time(), "at": "2026-01-01T00:00:00Z"}
    client.log_param(other, "lock.1", json.dumps(rival))
    actor = {"airflow.dag_id": DAG_ID, "airflow.run_id": "manual__second_ledger", "airflow.task_id": "deploy"}

    monkeypatch.setattr(registry.lock, "LOCK_WAIT_S", 0.5)
    with pytest.raises(registry.PromotionInProgressError, match="airflow:rival/manual__rival/deploy"):
        registry.promote(client, model, "2", expected_champion="1", actor=actor, reason="v2 is better")
    assert registry.read_aliases(client, model)["champion"] == "1"
    assert registry.lock_holder(client, model)["by"] == rival["by"]

    client.log_param(other, "unlock.1", "released")
    moved_on_other = {"at": "2000-01-01T00:00:00.000Z", "alias": "champion", "to": "1", "action": "promote"}
    client.log_text(other, json.dumps([moved_on_other]), registry.LEDGER_ARTIFACT)
    registry.promote(client, model, "2", expected_champion="1", actor=actor, reason="v2 is better")
    history = registry.history(client, model)
    assert history[0] == moved_on_other  # merged from the other run, oldest first
    assert [m["to"] for m in history if m["alias"] == registry.CHAMPION][-1] == "2"
    assert client.get_registered_model(model).tags[registry.LEDGER_RUN_TAG] == tagged


def test_a_lock_left_by_a_dead_writer_holds_off_others_until_stale_then_its_move_is_undone(
    client, logged_model, monkeypatch
):
    model = "faults_stale_lock"
    register_versions(client, model, logged_model, 3, champion="1")
    dead, other = ({"airflow.dag_id": DAG_ID, "airflow.run_id": f"manual__{who}", "airflow.task_id": "deploy"}
                   for who in ("dead", "other"))  # fmt: skip
    with MlflowOutage(between_the_alias_moves), pytest.raises(registry.AliasWriteError):
        registry.promote(client, model, "2", expected_champion="1", actor=dead, reason="dies half-way")

    monkeypatch.setattr(registry.lock, "LOCK_WAIT_S", 0.5)
    with pytest.raises(registry.PromotionInProgressError, match=f"held by airflow:{DAG_ID}/manual__dead/deploy"):
        registry.promote(client, model, "3", expected_champion="1", actor=other, reason="v3 is better")
    assert registry.read_aliases(client, model) == {"champion": "2", "previous_champion": None}  # left as it was

    monkeypatch.setattr(registry.lock, "LOCK_STALE_S", 0.0)  # the dead writer's lock has gone stale
    registry.promote(client, model, "3", expected_champion="1", actor=other, reason="v3 is better")

    assert registry.read_aliases(client, model) == {"champion": "3", "previous_champion": "1"}
    assert_registry_consistent(client, model)


# --------------------------------------------------------------------------- 6. a backfill never replaces a newer champion


@pytest.fixture(scope="module")
def churn_dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    return bag.get_dag(DAG_ID)


def test_backfill_of_an_older_day_never_overwrites_a_newer_champion(churn_dag, client, source):
    model = "churn_classifier"  # the DAG's own fast variant, include/pipelines/churn_fast.yaml: one candidate

    def run_day(day: str) -> dict[str, str]:
        logical = dt.datetime.fromisoformat(f"{day}T02:00:00+00:00")
        conf = {"as_of": day, "source": str(source), "config": "churn_fast"}
        dag_run = churn_dag.test(logical_date=logical, run_conf=conf)
        states: dict[str, str] = {}
        for ti in dag_run.get_task_instances():
            if states.get(ti.task_id, "success") == "success":
                states[ti.task_id] = str(ti.state)
        return states

    assert run_day("2026-01-28")["deploy"] == "success"
    assert client.get_model_version(model, "1").tags[registry.WINDOW_END_TAG] == "2026-01-28"

    states = run_day("2026-01-20")  # the backfill of an older day

    assert states["evaluate"] == "success" and states["record_rejection"] == "success" and states["deploy"] == "skipped"
    backfill = client.get_model_version(model, "2")
    assert backfill.tags[registry.WINDOW_END_TAG] == "2026-01-20" and backfill.tags["decision"] == "REJECT"
    assert (
        "FAIL: stale data: the challenger was trained on data up to 2026-01-20, older than the champion's "
        "(up to 2026-01-28); a backfill never replaces a newer champion"
    ) in json.loads(backfill.tags["decision.reasons"])
    assert registry.read_aliases(client, model)["champion"] == "1"
    assert_registry_consistent(client, model)


def test_the_stale_data_check_compares_the_windows_only_when_both_are_known(snapshot, source, tmp_path):
    from airflow_mlops.core.config import load_config
    from airflow_mlops.core.evaluation import decide

    config = load_config(write_config(tmp_path, "faults_stale", source))
    metrics = {"roc_auc": 0.8, "accuracy": 0.8, "log_loss": 0.4, "f1": 0.5}

    def reasons(window_end, champion_window_end):
        return decide(config, metrics, metrics, None, window_end=window_end,
                      champion_window_end=champion_window_end).reasons  # fmt: skip

    assert any(r.startswith("FAIL: stale data: ") for r in reasons("2026-01-20", "2026-01-28"))
    assert "PASS: the challenger's data (up to 2026-01-28) is not older than the champion's (up to 2026-01-28)" in (
        reasons("2026-01-28", "2026-01-28")
    )
    assert not any("data (up to" in r or "stale data" in r for r in reasons("2026-01-20", None))


# --------------------------------------------------------------------------- 7. the snapshot disk full


def _no_space(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


def _disk_full_half_way(real_write_table):
    def write_table(table, where, **kwargs):
        buffer = io.BytesIO()
        real_write_table(table, buffer, **kwargs)
        where.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    return write_table


def test_atomic_write_on_a_full_disk_names_the_folder_and_leaves_nothing(tmp_path):
    from airflow_mlops.core.fsutil import write_atomically

    folder = tmp_path / "snapshots" / "churn"

    def half_then_full(fh):
        fh.write(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as full:
        write_atomically(folder / "abc.parquet", half_then_full)

    assert full.value.errno == errno.ENOSPC
    assert f"cannot write abc.parquet in folder {folder}: No space left on device" in str(full.value)
    assert "free space on that disk" in str(full.value)
    assert list(folder.iterdir()) == []


def test_a_killed_writers_leftover_is_removed_by_the_next_write_of_that_file(tmp_path):
    """SIGKILL mid-write leaves the temp file (nothing can clean up); the next write removes it once stale,
    and never touches a temp a live writer is still filling."""
    from airflow_mlops.core.fsutil import STALE_TEMP_S, write_atomically

    folder, target = tmp_path / "predictions" / "day=2026-03-01", "predictions.parquet"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; sys.path.insert(0, {!r})\n"
                "from pathlib import Path\n"
                "from airflow_mlops.core.fsutil import write_atomically\n"
                "def slow(fh):\n    fh.write(b'PAR1 partial'); fh.flush(); print('writing', flush=True); time.sleep(60)\n"
                "write_atomically(Path({!r}) / {!r}, slow)\n"
            ).format(str(ROOT / "plugins"), str(folder), target),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    (leftover,) = folder.glob(f".{target}.*.tmp")
    live = folder / f".{target}.live.tmp"
    live.write_bytes(b"a live writer's chunk")
    old = time.time() - STALE_TEMP_S - 60
    os.utime(leftover, (old, old))

    write_atomically(folder / target, lambda fh: fh.write(b"PAR1 the whole file"))

    assert sorted(p.name for p in folder.iterdir()) == [live.name, target]
    assert (folder / target).read_bytes() == b"PAR1 the whole file"


def test_snapshot_on_a_full_disk_fails_naming_the_folder_and_leaves_no_partial_file(
    home, source, tmp_path, monkeypatch
):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops.operators.data import DataSnapshotOperator

    config = write_config(tmp_path, "faults_disk", source, pipeline="faults_disk")
    folder = home / "snapshots" / "faults_disk"
    monkeypatch.setattr(os, "fsync", _no_space)  # the snapshot is encoded in memory; the disk fills as it is flushed
    op = DataSnapshotOperator(task_id="snapshot", config_path=config, window_end=AS_OF)

    with pytest.raises(OSError) as full:
        op.execute(DagRun(config, {}, "manual__disk").context("snapshot", 1))

    assert not isinstance(full.value, AirflowFailException)  # retryable: space can be freed
    assert full.value.errno == errno.ENOSPC and str(folder) in str(full.value)
    assert list(folder.iterdir()) == []
