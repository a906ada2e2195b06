"""Temp files of interrupted writes, and durability (core.fsutil, core.scoring, the churn_scoring DAG).

A writer killed mid-file (a real SIGKILL of a real process) leaves its temp file; the retry of the same
writer removes it whatever its age; the scoring DAG's sweep removes old temps of other writers but never
a fresh one still being written; the folder is fsynced after the rename.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT, task_states

from airflow_mlops.core import fsutil

WRITER = "churn_scoring/scheduled__2026-02-12T05:00:00+00:00/score/-1"
TWO_HOURS = 2 * 3600


def _temps(folder):
    return sorted(p.name for p in folder.glob(".*.tmp"))


def _age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def _killed_mid_write(target, writer: str | None, size: int = 1 << 20) -> subprocess.CompletedProcess:
    """A real process writing `target` through write_atomically, killed (SIGKILL: no cleanup can run) after `size`
    bytes reached its temp file."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT / "plugins")!r})
        from airflow_mlops.core import fsutil

        def write(fh):
            fh.write(b"x" * {size})
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # the injected fault: the worker dies mid-file

        fsutil.write_atomically({str(target)!r}, write, writer={writer!r})
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_killed_write_leaves_its_temp_and_the_retry_of_the_same_writer_removes_it_at_any_age(tmp_path):
    target = tmp_path / "day=2026-02-12" / "predictions.parquet"

    killed = _killed_mid_write(target, WRITER)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [leftover] = target.parent.glob(".predictions.parquet.*.tmp")
    assert leftover.stat().st_size == 1 << 20 and not target.exists()
    assert leftover.name.startswith(fsutil.temp_prefix(target, WRITER))
    # Another writer of the same target cannot tell a fresh temp from a live write: it keeps it.
    fsutil.write_atomically(target, lambda fh: fh.write(b"other"), writer="churn_scoring/manual__x/score/-1")
    assert leftover.exists() and target.read_bytes() == b"other"
    # The retry of the same task (same dag/run/task/map index, a new try) removes it at once, fresh as it is.
    fsutil.write_atomically(target, lambda fh: fh.write(b"retry"), writer=WRITER)
    assert not leftover.exists() and target.read_bytes() == b"retry"
    assert _temps(target.parent) == []


def test_the_sweep_removes_old_temps_of_other_writers_but_not_a_fresh_one_in_progress(tmp_path, caplog):
    from airflow_mlops.core.scoring import partition_path, sweep_partial_writes

    root = tmp_path / "predictions"
    old = partition_path("churn", dt.date(2026, 2, 10), root).parent / ".predictions.parquet.wdead0000000.abc.tmp"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x" * 5000)
    _age(old, TWO_HOURS)
    unrelated = old.parent / "notes.tmp"  # not a temp of a partition: never touched
    unrelated.write_bytes(b"keep")
    _age(unrelated, TWO_HOURS)
    target = partition_path("churn", dt.date(2026, 2, 12), root)
    seen = {}

    def write(fh):  # a live write: while its temp file is being written, another task sweeps
        fh.write(b"y" * 100)
        fh.flush()
        seen["temps"] = _temps(target.parent)
        seen["removed"] = sweep_partial_writes("churn", root, writer="churn_scoring/other_run/score/-1")
        seen["after"] = _temps(target.parent)
        fh.write(b"y" * 100)

    caplog.set_level(logging.WARNING, logger="airflow_mlops.core.fsutil")
    fsutil.write_atomically(target, write, writer=WRITER)

    assert len(seen["temps"]) == 1 and seen["after"] == seen["temps"]  # the fresh one in progress is kept
    assert seen["removed"] == [(old, 5000)]
    assert not old.exists() and unrelated.exists()
    assert target.stat().st_size == 200 and _temps(target.parent) == []
    assert f"Removed {old} (5,000 bytes, untouched for 2.0 h)" in caplog.text
    assert "Removed 1 temp file(s) of interrupted writes under" in caplog.text and "5,000 bytes in all" in caplog.text


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "predictions" / "churn" / "day=2026-02-12" / "predictions.parquet"
    (tmp_path / "predictions").mkdir()
    synced = []
    real_fsync = os.fsync

    def spy(fd):  # records what was synced; the real fsync still runs
        info = os.fstat(fd)
        synced.append(("dir" if stat.S_ISDIR(info.st_mode) else "file", info.st_ino, target.exists()))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    fsutil.write_atomically(target, lambda fh: fh.write(b"data"))

    def ino(path):
        return path.stat().st_ino

    assert synced[0] == ("file", ino(target), False)  # the data, before the rename
    dirs = [(i, renamed) for kind, i, renamed in synced if kind == "dir"]
    assert (ino(target.parent), True) in dirs  # the rename, after it happened
    # The folders the write created are entries of their parents: those are synced too.
    assert {ino(target.parent.parent), ino(target.parent.parent.parent)} <= {i for i, _ in dirs}


def test_a_folder_fsync_that_fails_is_an_error_naming_the_file(tmp_path, monkeypatch):
    import errno

    target = tmp_path / "predictions.parquet"
    real_fsync = os.fsync

    def failing_dir_fsync(fd):  # fault injection: the disk fails when the folder is flushed
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_dir_fsync)
    with pytest.raises(OSError, match=r"predictions.parquet was written but its folder could not be synced"):
        fsutil.write_atomically(target, lambda fh: fh.write(b"data"))


def test_the_scoring_dag_removes_its_own_leftover_and_old_ones_but_not_a_fresh_foreign_one(
    airflow_db, mlops_home, mlflow_client, churn_config, tmp_path
):
    """Through the real task runner: the score task names its temp files after its task instance (dag/run/task/map
    index) and sweeps the pipeline's partitions first (here it then skips: no champion yet)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    from airflow_mlops.core.scoring import partition_path
    from airflow_mlops.dag_builders import scoring_dag

    dag = scoring_dag(churn_config, [])
    when = dt.datetime(2026, 2, 12, 5, 0, tzinfo=dt.UTC)
    run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=when, run_after=when)
    target = partition_path("churn", dt.date(2026, 2, 12), mlops_home / "predictions")
    target.parent.mkdir(parents=True)
    own = target.parent / f"{fsutil.temp_prefix(target, f'churn_scoring/{run_id}/score/-1')}killed.tmp"
    foreign_fresh = target.parent / f"{fsutil.temp_prefix(target, 'churn_scoring/other/score/-1')}live.tmp"
    foreign_old = target.parent / f"{fsutil.temp_prefix(target, 'churn_scoring/older/score/-1')}dead.tmp"
    for path in (own, foreign_fresh, foreign_old):
        path.write_bytes(b"z" * 1000)
    _age(foreign_old, TWO_HOURS)

    run = dag.test(logical_date=when, run_after=when, run_conf={"as_of": "2026-02-12", "source": str(tmp_path)})

    assert run.run_id == run_id
    assert task_states(run) == {"score": "skipped"}
    assert _temps(target.parent) == [foreign_fresh.name]


def test_the_retry_of_a_killed_snapshot_task_removes_its_leftover(churn_config, churn_dir, tmp_path):
    """The snapshot task's temp file carries its task instance too: its retry removes a killed try's leftover."""
    from airflow_mlops.core.data import take_snapshot

    writer = "churn_retrain/scheduled__2026-01-28T02:00:00+00:00/snapshot/-1"
    root, window_end = tmp_path / "snapshots", dt.date(2026, 1, 28)
    first = take_snapshot(churn_config, source=str(churn_dir), snapshot_root=root, window_end=window_end)
    target = os.path.realpath(first["uri"])
    os.chmod(target, stat.S_IWUSR | stat.S_IRUSR)
    os.remove(target)  # as if the first try had been killed before its rename
    killed = _killed_mid_write(target, writer)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [leftover] = _temps(root / "churn")

    retry = take_snapshot(churn_config, source=str(churn_dir), snapshot_root=root, window_end=window_end,
                          writer=writer)  # fmt: skip

    assert retry["digest"] == first["digest"] and os.path.exists(target)
    assert leftover not in _temps(root / "churn") and _temps(root / "churn") == []
