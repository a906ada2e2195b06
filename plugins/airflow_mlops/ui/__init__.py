"""The Models page: a FastAPI app the plugin mounts inside Airflow's API server at `/mlops`.

Light on purpose: every Airflow process imports the plugin, so FastAPI, MLflow and the pages
are imported on the first request only (`LazyApp`).
"""

from __future__ import annotations

import threading
from typing import Any

MOUNT = "/mlops"


class LazyApp:
    """An ASGI app that builds `airflow_mlops.ui.app.create_app()` on its first request."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from airflow_mlops.ui.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # nothing to start or stop
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await self.get()(scope, receive, send)
