"""The alert webhook against a real local HTTP server: a transition is POSTed as JSON, retried with backoff
while the receiver answers 5xx or is down, given up after the configured tries; a server configured with a
webhook URL sends every transition of its evaluator there."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edgefleet.protocol import Status
from fleet_server.alert_webhook import WebhookSender
from fleet_server.app import create_app
from fleet_server.services import devices
from fleet_server.settings import ServerSettings
from tests.fleet_server.services.rollout_env import add_device
from tests.waiting import wait_for


class Receiver:
    """An HTTP server in a thread answering each POST with the next status in `answers` (then 200)."""

    def __init__(self, answers: list[int]) -> None:
        self.answers, self.bodies, self.lock = list(answers), [], threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.bodies.append((body, self.headers["Content-Type"]))
                    status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self) -> list[dict]:
        with self.lock:
            return [body for body, _ in self.bodies]


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver([])
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_a_delivery_is_retried_through_server_errors_and_given_up_after_its_tries(receiver: Receiver) -> None:
    receiver.answers = [500, 503, 200, 500, 500, 500]
    sender = WebhookSender(receiver.url, attempts=3, backoff_s=0.01)
    try:
        sender.send({"event": "alert.firing", "alert": {"id": 1}})
        sender.send({"event": "alert.resolved", "alert": {"id": 1}})  # queued behind the first: in order
        wait_for(lambda: sender.results["delivered"] == 1 and sender.results["failed"] == 1, 20, "both done")
        assert [b["event"] for b in receiver.received()] == ["alert.firing"] * 3 + ["alert.resolved"] * 3
        assert {ctype for _, ctype in receiver.bodies} == {"application/json"}
    finally:
        sender.close()


def test_an_unreachable_receiver_costs_tries_not_a_crash() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    sender = WebhookSender(url, attempts=2, backoff_s=0.01, timeout_s=2)
    try:
        sender.send({"event": "alert.firing", "alert": {"id": 2}})
        wait_for(lambda: sender.results["failed"] == 1, 20, "the delivery given up")
        assert sender.results["delivered"] == 0
    finally:
        sender.close()


def test_a_server_with_a_webhook_url_posts_each_alert_transition(receiver: Receiver, tmp_path: Path) -> None:
    settings = ServerSettings(state_dir=tmp_path / "server", port=0, alert_webhook_url=receiver.url,
                              alert_webhook_backoff_s=0.01)
    with TestClient(create_app(settings, start_mqtt=False)) as client:
        fleet = client.app.state.fleet
        add_device(fleet.db, "cam-1", model=None)
        with fleet.db.session() as s:
            devices.record_status(s, "cam-1", Status(state="offline"))
        fleet.alerts.tick(datetime.now(timezone.utc))
        (alert,) = client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {fleet.admin_key}"}).json()
        client.post(f"/api/v1/alerts/{alert['id']}/ack", headers={"Authorization": f"Bearer {fleet.admin_key}"})
        received = wait_for(lambda: len(receiver.received()) == 2 and receiver.received(), 20, "two deliveries")
    assert [(b["event"], b["alert"]["rule"], b["alert"]["device_id"]) for b in received] == [
        ("alert.firing", "device_offline", "cam-1"), ("alert.acknowledged", "device_offline", "cam-1")]
    assert received[1]["alert"]["acked_by"]
