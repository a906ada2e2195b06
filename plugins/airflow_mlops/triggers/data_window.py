"""DataWindowTrigger: wait, cheaply and asynchronously, until the data of a window has landed.

Runs in the triggerer: one asyncio process shared by every deferred task. So it only looks for
a file (a glob, e.g. ``/data/churn/*_2026-03-20.csv``) that exists and is not empty, never reads
or computes anything, and sleeps with ``asyncio.sleep`` between looks.
"""

from __future__ import annotations

import asyncio
import glob
import os
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class DataWindowTrigger(BaseTrigger):
    """Fire once when a non-empty file matches ``pattern``; or at ``deadline`` with a timeout event.

    Events: ``{"status": "success", "path", "size", "mtime", "waited_s"}``,
    ``{"status": "timeout", "pattern", "waited_s"}``, ``{"status": "error", "message", "pattern"}``.

    :param pattern: a file path or a glob (no ``**``)
    :param poke_interval: seconds between looks
    :param deadline: epoch seconds after which to give up (absolute, so a restarted triggerer keeps it)
    :param started_at: epoch seconds the wait began (for the waited time in events)
    """

    def __init__(
        self,
        pattern: str,
        poke_interval: float = 60.0,
        deadline: float | None = None,
        started_at: float | None = None,
    ) -> None:
        super().__init__()
        self.pattern = pattern
        self.poke_interval = float(poke_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.started_at = float(started_at) if started_at is not None else time.time()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_mlops.triggers.data_window.DataWindowTrigger",
            {
                "pattern": self.pattern,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "started_at": self.started_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Look, sleep, look again; one event and done."""
        try:
            while True:
                found = await asyncio.to_thread(_first_nonempty, self.pattern)
                if found is not None:
                    path, size, mtime = found
                    self.log.info("Found %s (%d bytes)", path, size)
                    yield TriggerEvent(
                        {
                            "status": "success",
                            "path": path,
                            "size": size,
                            "mtime": mtime,
                            "waited_s": round(time.time() - self.started_at, 3),
                        }
                    )
                    return
                now = time.time()
                if self.deadline is not None and now >= self.deadline:
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "pattern": self.pattern,
                            "waited_s": round(now - self.started_at, 3),
                        }
                    )
                    return
                self.log.info("No non-empty file matches %s yet; next look in %g s", self.pattern, self.poke_interval)
                pause = self.poke_interval if self.deadline is None else min(self.poke_interval, self.deadline - now)
                await asyncio.sleep(max(pause, 0.0))
        except Exception as exc:
            yield TriggerEvent(
                {
                    "status": "error",
                    "pattern": self.pattern,
                    "message": f"{type(exc).__name__}: {exc}",
                }
            )


def _first_nonempty(pattern: str) -> tuple[str, int, float] | None:
    """(path, size, mtime) of the first matching regular file with content, else None (runs in a thread)."""
    for path in sorted(glob.glob(pattern)):
        try:
            st = os.stat(path)
        except FileNotFoundError:  # vanished between glob and stat
            continue
        if os.path.isfile(path) and st.st_size > 0:
            return path, st.st_size, st.st_mtime
    return None
