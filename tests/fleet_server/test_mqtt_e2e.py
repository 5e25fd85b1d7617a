"""End to end over real MQTT: the whole server (API + bridge, and the embedded broker or Mosquitto) and
devices made of the tests' MQTT client. Device names, and so ids, carry this run's tag: what they leave retained
on the shared Mosquitto is cleared by the session sweep (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from edgefleet import protocol as p
from fleet_server.broker_config import QUEUE_LIMITS
from fleet_server.server import ServerHandle, start_server_in_thread
from fleet_server.settings import ServerSettings
from tests import services
from tests.fleet_server.conftest import make_csr
from tests.fleet_server.live_server import running_server
from tests.fleet_server.mqtt_device import SimDevice, broker_port
from tests.mqtt_client import retained_topics, unique_name
from tests.waiting import wait_for


def _server_on(broker: str, state_dir: Path) -> AbstractContextManager[ServerHandle]:
    # not shared: other servers on the shared Mosquitto would otherwise take part of our telemetry
    return running_server(state_dir, broker=broker, shared_telemetry=False,
                          insecure_broker=True)  # the test brokers are anonymous


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerHandle]:
    broker = "embedded"
    if request.param == "mosquitto":
        broker = f"mqtt://127.0.0.1:{request.getfixturevalue('mosquitto_port')}"
    with _server_on(broker, tmp_path / "server") as handle:
        yield handle


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def queue_sized_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerHandle]:
    """On Mosquitto, one with the queue limits `server broker-config` writes: the stock default (1,000 queued
    messages per client) drops acknowledged messages to a server that falls behind a 1,000-message burst."""
    broker = "embedded"
    if request.param == "mosquitto":
        mosquitto = request.getfixturevalue("private_mosquitto")([*services.plain_mosquitto_config(), *QUEUE_LIMITS])
        broker = f"mqtt://127.0.0.1:{mosquitto.port}"
    with _server_on(broker, tmp_path / "server") as handle:
        yield handle


class Fleet:
    """HTTP helpers around a running server."""

    def __init__(self, server: ServerHandle) -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {server.admin_key}"}

    def api(self, method: str, path: str, **kw: object) -> httpx.Response:
        return httpx.request(method, f"{self.server.url}/api/v1{path}", headers=self.headers, timeout=30, **kw)

    def enroll(self, name: str = "e2e") -> dict:
        token = self.api("POST", "/tokens", json={}).json()["token"]
        r = httpx.post(f"{self.server.url}/api/v1/enroll",
                       json={"token": token, "csr": make_csr()[1], "name": unique_name(name)})
        assert r.status_code == 200, r.text
        return r.json()

    def device(self, device_id: str) -> dict:
        return self.api("GET", f"/devices/{device_id}").json()


@pytest.fixture()
def fleet(server: ServerHandle) -> Fleet:
    return Fleet(server)


def _connect(creds: dict, **kw: object) -> SimDevice:
    return SimDevice(creds["device_id"], creds["broker_url"], creds["mqtt_username"], creds["mqtt_password"],
                     **kw).start()


def test_a_device_shows_online_from_its_status_and_offline_from_its_last_will(fleet: Fleet) -> None:
    creds = fleet.enroll()
    device_id = creds["device_id"]
    dev = _connect(creds)
    try:
        state = wait_for(lambda: fleet.device(device_id)["online"] and fleet.device(device_id), what="online")
        assert state["agent_version"] == "test-1" and state["last_seen"]
        dev.peer.drop()  # no DISCONNECT: the broker publishes the Last Will
        wait_for(lambda: fleet.device(device_id)["status"] == "offline", timeout=30, what="Last Will -> offline")
    finally:
        dev.stop()


def test_a_twin_patch_reaches_the_device_and_its_report_makes_the_twin_in_sync(fleet: Fleet) -> None:
    creds = fleet.enroll()
    device_id = creds["device_id"]
    dev = _connect(creds)
    try:
        model = {"name": "digits", "version": "3", "sha256": "e" * 64}
        r = fleet.api("PATCH", f"/devices/{device_id}/twin",
                      json={"model": model, "camera": "synthetic", "properties": {"greeting": "hello"}})
        assert r.status_code == 200 and r.json()["published"] is True
        got = wait_for(lambda: dev.desired, what="desired twin at the device")
        assert got[-1].revision == 1 and got[-1].model.sha256 == "e" * 64
        view = wait_for(lambda: fleet.device(device_id)["in_sync"] and fleet.device(device_id), what="in sync")
        assert view["reported"]["properties"] == {"greeting": "hello"} and view["desired_revision"] == 1
        dev.answer_twin = False  # receive revision 2 but do not apply it yet
        fleet.api("PATCH", f"/devices/{device_id}/twin", json={"pipeline": {"top_k": 7}})
        second = wait_for(lambda: [d for d in dev.desired if d.revision == 2], what="revision 2 at the device")
        assert fleet.device(device_id)["in_sync"] is False
        dev.report(second[0])
        wait_for(lambda: fleet.device(device_id)["in_sync"], what="in sync at revision 2")
    finally:
        dev.stop()


def test_a_device_that_connects_later_gets_the_retained_desired_twin(fleet: Fleet) -> None:
    creds = fleet.enroll()
    device_id = creds["device_id"]
    assert fleet.api("PATCH", f"/devices/{device_id}/twin", json={"camera": "usb:0"}).json()["published"]
    dev = _connect(creds)
    try:
        got = wait_for(lambda: dev.desired, what="retained desired twin")
        assert got[0].camera == "usb:0"
    finally:
        dev.stop()


def test_decommission_clears_the_retained_desired_twin(fleet: Fleet) -> None:
    creds = fleet.enroll()
    device_id = creds["device_id"]
    fleet.api("PATCH", f"/devices/{device_id}/twin", json={"camera": "usb:0"})
    if fleet.server.settings.embedded:
        assert fleet.api("DELETE", f"/devices/{device_id}").status_code == 200
        return  # the device cannot log in any more to look: see the embedded-only test below
    port, desired = broker_port(creds["broker_url"]), p.twin_desired_topic(device_id)
    wait_for(lambda: desired in retained_topics(port, device_id), what="the desired twin to be retained")
    assert fleet.api("DELETE", f"/devices/{device_id}").status_code == 200
    wait_for(lambda: retained_topics(port, device_id) == [], what="decommission to clear the retained messages")


def test_telemetry_is_stored_and_garbage_is_counted_not_fatal(fleet: Fleet) -> None:
    import sqlalchemy as sa

    from fleet_server.db import TelemetryRow

    creds = fleet.enroll()
    device_id = creds["device_id"]
    dev = _connect(creds)
    try:
        dev.peer.publish(p.telemetry_topic(device_id), p.Telemetry(device_id=device_id, fps=12.5).encode(), qos=0)
        dev.peer.publish(p.events_topic(device_id), b"{not json")

        def stored() -> int:
            with fleet.server.fleet.db.session() as s:
                return s.scalar(sa.select(sa.func.count()).select_from(TelemetryRow)
                                .where(TelemetryRow.device_id == device_id)) or 0

        wait_for(stored, what="telemetry row")
        wait_for(lambda: fleet.server.fleet.bridge.malformed_count >= 1, what="malformed message counted")
        metrics = httpx.get(f"{fleet.server.url}/metrics").text
        line = next(m for m in metrics.splitlines() if m.startswith("edgefleet_mqtt_malformed_messages "))
        assert float(line.split()[1]) >= 1
        refused = next(m for m in metrics.splitlines()
                       if m.startswith('edgefleet_mqtt_refused_messages_total{reason="malformed"}'))
        assert float(refused.split()[1]) >= 1
        assert fleet.api("GET", f"/devices/{device_id}").status_code == 200  # the server is still fine
        latest = fleet.api("GET", f"/devices/{device_id}/telemetry", params={"limit": 1})
        assert latest.status_code == 200 and latest.json()[0]["fps"] == 12.5
        assert fleet.api("GET", "/devices/no-such-device/telemetry").status_code == 404
    finally:
        dev.stop()


# ----------------------------------------------------------------------------------------- embedded only


@pytest.fixture()
def embedded(tmp_path: Path) -> Iterator[Fleet]:
    settings = ServerSettings(state_dir=tmp_path / "server", port=0, embedded_broker_port=0)
    with start_server_in_thread(settings) as handle:
        assert handle.fleet.bridge.wait_connected(30)
        yield Fleet(handle)


def test_embedded_broker_refuses_wrong_passwords_and_decommissioned_devices(embedded: Fleet) -> None:
    creds = embedded.enroll()
    device_id = creds["device_id"]
    wrong = SimDevice(device_id, creds["broker_url"], device_id, creds["mqtt_password"] + "x")
    assert wrong.peer.connect().is_failure
    dev = _connect(creds)
    wait_for(lambda: embedded.device(device_id)["online"], what="online")
    assert embedded.api("DELETE", f"/devices/{device_id}").status_code == 200
    # its live connection was dropped, and it cannot come back
    dev.peer.wait_disconnected()
    dev.stop()
    again = SimDevice(device_id, creds["broker_url"], device_id, creds["mqtt_password"])
    assert again.peer.connect().is_failure


def test_enrollment_hands_out_the_embedded_brokers_real_address(embedded: Fleet) -> None:
    creds = embedded.enroll()
    assert creds["broker_url"] == f"mqtt://127.0.0.1:{embedded.server.fleet.broker.mqtt_port}"
    assert embedded.server.broker_url == creds["broker_url"]


# ----------------------------------------------------------------------------------------- broker outage


def test_a_twin_changed_while_the_broker_is_down_is_published_when_it_is_back(
        tmp_path: Path, private_mosquitto: Callable[..., services.Mosquitto]) -> None:
    mosq = private_mosquitto()  # no persistence
    url = f"mqtt://127.0.0.1:{mosq.port}"
    settings = ServerSettings(state_dir=tmp_path / "server", port=0, broker=url, insecure_broker=True)
    with start_server_in_thread(settings) as handle:
        fleet = Fleet(handle)
        wait_for(handle.fleet.broker_connected, what="bridge to connect")
        creds = fleet.enroll()
        device_id = creds["device_id"]
        mosq.stop()
        wait_for(lambda: not handle.fleet.broker_connected(), what="bridge to notice the broker is gone")
        r = fleet.api("PATCH", f"/devices/{device_id}/twin", json={"camera": "usb:3"})
        assert r.status_code == 200 and r.json()["published"] is False and r.json()["desired_revision"] == 1
        mosq.start()  # same port, empty retained store
        wait_for(handle.fleet.broker_connected, timeout=60, what="bridge to reconnect")
        dev = _connect(creds)
        try:
            got = wait_for(lambda: dev.desired, what="the stored desired twin, republished")
            assert got[0].revision == 1 and got[0].camera == "usb:3"
        finally:
            dev.stop()


def test_the_whole_server_works_on_either_database(tmp_path: Path, db_url: str) -> None:
    settings = ServerSettings(state_dir=tmp_path / "server", port=0, embedded_broker_port=0, db_url=db_url)
    with start_server_in_thread(settings) as handle:
        assert handle.fleet.bridge.wait_connected(30)
        fleet = Fleet(handle)
        creds = fleet.enroll()
        device_id = creds["device_id"]
        dev = _connect(creds)
        try:
            fleet.api("PATCH", f"/devices/{device_id}/twin", json={"properties": {"db": db_url.split(":")[0]}})
            view = wait_for(lambda: (d := fleet.device(device_id))["online"] and d["in_sync"] and d,
                            what="online and in sync")
            assert view["reported"]["properties"]["db"] == db_url.split(":")[0]
        finally:
            dev.stop()


def test_an_enrolled_device_logs_in_at_its_first_attempt_once_enrollment_answers(embedded: Fleet) -> None:
    """The embedded broker's users are updated before the enrollment answer leaves, so no retry is needed."""
    for _ in range(3):
        creds = embedded.enroll()
        dev = SimDevice(creds["device_id"], creds["broker_url"], creds["mqtt_username"], creds["mqtt_password"])
        reason = dev.peer.connect()
        assert not reason.is_failure, f"CONNACK {reason} right after enrollment"
        dev.stop()


def test_a_burst_of_telemetry_then_an_immediate_disconnect_loses_nothing_once_acknowledged(
        queue_sized_server: ServerHandle) -> None:
    """Every snapshot the broker PUBACKed is stored, even when the device leaves right after the last PUBACK
    (the agent's outbox deletes a snapshot on its PUBACK, so a loss here would be a loss for good)."""
    import sqlalchemy as sa

    from fleet_server.db.models import TelemetryRow

    fleet = Fleet(queue_sized_server)
    creds = fleet.enroll("burst")
    device_id = creds["device_id"]
    dev = SimDevice(device_id, creds["broker_url"], creds["mqtt_username"], creds["mqtt_password"])
    client = dev.peer.client
    client.max_inflight_messages_set(100)
    dev.start()
    infos = [client.publish(p.telemetry_topic(device_id), p.Telemetry(device_id=device_id, frames_inferred=i)
                            .encode(), qos=1) for i in range(1000)]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()  # at once: nothing waits for the server to have read them
    client.loop_stop()

    def stored() -> set[int]:  # distinct snapshots: a QoS 1 redelivery may store one twice, harmlessly
        with fleet.server.fleet.db.session() as session:
            rows = session.scalars(sa.select(TelemetryRow.payload).where(TelemetryRow.device_id == device_id))
            return {row["frames_inferred"] for row in rows}

    wait_for(lambda: len(stored()) >= 1000, timeout=120,
             what=lambda: f"1,000 snapshots stored ({len(stored())} are)")
    assert stored() == set(range(1000))
    assert fleet.server.fleet.bridge.refused["rate_limited"] == 0
