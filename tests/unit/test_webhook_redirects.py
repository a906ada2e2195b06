"""Webhooks never follow redirects: two real HTTP servers on loopback, the first redirecting to the second.

urllib's urlopen follows 301/302/303 by turning the POST into a GET and sending the Authorization header
and the connection's headers to the redirect target (any host), then reports its 200 as sent.
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from airflow_mlops.core.alerts import Alert
from airflow_mlops.core.config import parse_config

ALERT = Alert(event="promoted", pipeline="churn", summary="churn_classifier v7 is the new champion.", meaning="m.")


class Target(BaseHTTPRequestHandler):
    """The redirect's target: must never hear from us."""

    received: list[dict] = []

    def _record(self) -> None:
        Target.received.append({"method": self.command, "headers": dict(self.headers)})
        self.send_response(200)
        self.end_headers()

    do_GET = do_POST = do_HEAD = _record  # noqa: N815 (http.server's names)

    def log_message(self, *args):
        pass


class Redirector(BaseHTTPRequestHandler):
    """The configured webhook: answers every POST with `status` and a Location on the target."""

    location = ""
    status = 302
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        Redirector.received.append({"headers": dict(self.headers)})
        self.send_response(Redirector.status)
        self.send_header("Location", Redirector.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve(handler) -> tuple[HTTPServer, str]:
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def servers(monkeypatch):
    target, target_url = _serve(Target)
    redirector, redirector_url = _serve(Redirector)
    Target.received, Redirector.received = [], []
    Redirector.location = f"{target_url}/elsewhere?x=1"
    conn = {
        "conn_type": "http",
        "host": f"{redirector_url}/hooks/mlops",
        "login": "bot",
        "password": "s3cret",
        "extra": {"headers": {"X-Api-Key": "k3y"}},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_WEBHOOK", json.dumps(conn))
    yield Redirector.location
    target.shutdown()
    redirector.shutdown()
    target.server_close()
    redirector.server_close()


def _config(churn_config):
    raw = copy.deepcopy(churn_config.raw)
    raw["alerts"] = {
        "channels": {"chat": {"type": "webhook", "conn_id": "mlops_webhook"}},
        "events": {"promoted": ["chat"]},
    }
    return parse_config(raw, file=churn_config.path, check_estimators=False)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failure_naming_the_location_and_the_target_hears_nothing(churn_config, servers, status):
    from airflow_mlops.alerting import send_alert

    Redirector.status = status
    outcomes = send_alert(ALERT, _config(churn_config))
    assert Target.received == []  # no GET, no Authorization, no X-Api-Key sent to the other host
    [posted] = Redirector.received  # the configured host got the POST with its headers, once
    assert posted["headers"]["Authorization"].startswith("Basic ") and posted["headers"]["X-Api-Key"] == "k3y"
    assert outcomes["chat"] != "sent"
    assert f"HTTP {status}" in outcomes["chat"] and servers in outcomes["chat"]
    assert "not followed" in outcomes["chat"]
