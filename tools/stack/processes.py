"""Start, watch and stop the stack's processes: exactly the ones it started, found by pid file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from tools.stack.components import Component


class StackError(RuntimeError):
    """The stack cannot start or is not healthy; the message says what to do."""


def check_ports_free(parts: Iterable[Component]) -> None:
    """Refuse to start when a port the stack needs is taken, naming the port and who needs it."""
    for part in parts:
        if part.port is None:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", part.port))
            except OSError:
                raise StackError(
                    f"Port {part.port} on 127.0.0.1 (needed by {part.name}) is already in use. Stop what "
                    f"listens there (`ss -ltnp 'sport = :{part.port}'`) or pick another port with the "
                    "AIRFLOW_MLOPS_STACK_*_PORT variables (see docs/deploy.md)."
                ) from None


def check_service(name: str, host: str, port: int, hint: str) -> None:
    """A TCP connect to a service the stack needs but does not start (PostgreSQL, Redis)."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        raise StackError(f"{name} is not reachable at {host}:{port} ({exc}). {hint}") from None


def start(part: Component, run_dir: Path, log_dir: Path, cwd: Path) -> int:
    """Start one component in its own session (so stop() can end its whole process group)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{part.name}.log", "ab")  # noqa: SIM115 - the child keeps it open
    env = {**os.environ, **part.env}
    proc = subprocess.Popen(
        part.argv,
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    record = {"pid": proc.pid, "start_time": _start_time(proc.pid), "argv": list(part.argv)}
    (run_dir / f"{part.name}.json").write_text(json.dumps(record))
    return proc.pid


def running(run_dir: Path) -> dict[str, int]:
    """Components this stack started that are still alive (same pid *and* same start time)."""
    alive = {}
    for record_file in sorted(run_dir.glob("*.json")):
        record = json.loads(record_file.read_text())
        if _start_time(record["pid"]) == record["start_time"]:
            alive[record_file.stem] = record["pid"]
    return alive


def stop_all(run_dir: Path, timeout: float = 30.0, log: Callable[[str], None] = print) -> list[str]:
    """SIGTERM each started process group, SIGKILL what is left after `timeout`; remove the pid files."""
    alive = running(run_dir)
    for name, pid in reversed(list(alive.items())):
        log(f"stopping {name} (pid {pid})")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_group_alive(pid) for pid in alive.values()):
        time.sleep(0.5)
    for name, pid in alive.items():
        if _group_alive(pid):
            log(f"{name} (pid {pid}) did not stop within {timeout:.0f}s: killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    for record_file in run_dir.glob("*.json"):
        record_file.unlink()
    return list(alive)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 1.0) -> None:
    """Poll `check` until it is true; StackError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except StackError:
            raise
        except Exception:  # noqa: S110 - not up yet
            pass
        time.sleep(interval)
    raise StackError(f"Timed out after {timeout:.0f}s waiting for {what}")


def log_has(log_dir: Path, name: str, text: str) -> bool:
    path = log_dir / f"{name}.log"
    return path.is_file() and text in path.read_text(errors="replace")


def log_tail(log_dir: Path, name: str, lines: int = 30) -> str:
    path = log_dir / f"{name}.log"
    if not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)  # reap our own child, if it is one, so it does not linger as a zombie
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (guards against a recycled pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie is gone for our purposes
        return None
    return int(fields[19])
