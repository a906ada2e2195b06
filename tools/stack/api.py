"""A small client of Airflow's REST API v2 with a real JWT token, as a user or a CI job would use it."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowApiError(RuntimeError):
    """A REST call failed; the message carries the method, path, status and Airflow's detail."""


class AirflowApi:
    """`POST /auth/token` once, then Bearer-authenticated calls to `/api/v2/...`."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        response = self._http.post("/auth/token", json={"username": username, "password": password})
        if response.status_code not in (200, 201):
            raise AirflowApiError(
                f"Airflow at {self.base_url} refused the login of {username!r} "
                f"(HTTP {response.status_code}): check the password in .env / the stack's secrets.env"
            )
        self._http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"/api/v2{path}", **kwargs)
        if response.status_code >= 400:
            raise AirflowApiError(f"{method} /api/v2{path}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    # ---------------------------------------------------------------- DAGs and runs

    def dag(self, dag_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def unpause_skipping_missed_run(self, dag_id: str, timeout: float = 90.0) -> None:
        """Unpause, and fail the run the scheduler starts at once for the cron time missed while paused.

        With catchup=False Airflow still runs the latest missed cron time on unpause; on a
        replayed history (the demo, the tests) that run has no data of its own to work on. A second
        replay on the same database and day finds that tick's run already there: nothing new comes.
        """
        runs = self.dag_runs(dag_id)
        known = {r["dag_run_id"] for r in runs}
        replayed_before = any(r["run_type"] == "scheduled" for r in runs)
        self.unpause(dag_id)
        try:
            missed = self.wait_for_new_run(dag_id, known, run_type="scheduled", timeout=timeout)
        except AirflowApiError:
            if replayed_before:  # an earlier replay on this database already had (and failed) the latest tick's run
                return
            raise
        self.request(
            "PATCH",
            f"/dags/{dag_id}/dagRuns/{missed['dag_run_id']}",
            json={"state": "failed", "note": "Missed while paused: not run (airflow-mlops replay)"},
        )

    def trigger(self, dag_id: str, conf: dict | None = None, logical_date: str | None = None) -> str:
        """Start a DAG run now (a manual run, as the UI's Trigger button does); returns its run id."""
        body = {"logical_date": logical_date, "conf": conf or {}}
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})[
            "dag_runs"
        ]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})[
            "task_instances"
        ]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        value = self.request("GET", path)["value"]  # stored as JSON
        return json.loads(value) if isinstance(value, str) else value

    def wait_for_dag(self, dag_id: str, timeout: float = 180.0) -> dict:
        """Wait until the dag-processor has parsed the DAG (it is in the API)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.dag(dag_id)
            except AirflowApiError:
                if time.monotonic() > deadline:
                    raise AirflowApiError(
                        f"DAG {dag_id!r} did not appear within {timeout:.0f}s: see the dag-processor log"
                    ) from None
                time.sleep(2)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900.0, poll: float = 3.0) -> dict:
        """Wait for a DAG run to finish (success or failed); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                raise AirflowApiError(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(poll)

    def wait_for_new_run(
        self, dag_id: str, known: set[str], run_type: str | None = None, timeout: float = 300.0
    ) -> dict:
        """Wait for the scheduler to create a run of `dag_id` not in `known` (optionally of a run type)."""
        deadline = time.monotonic() + timeout
        while True:
            for run in self.dag_runs(dag_id):
                if run["dag_run_id"] not in known and (run_type is None or run["run_type"] == run_type):
                    return run
            if time.monotonic() > deadline:
                raise AirflowApiError(f"No new {run_type or ''} run of {dag_id} within {timeout:.0f}s")
            time.sleep(2)
