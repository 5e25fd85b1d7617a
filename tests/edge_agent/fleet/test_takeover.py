"""Session takeover: another client connecting with this device's own identity and a clean session. The broker
drops the agent's connection (MQTT 3.1.1, 3.1.4-2); the agent reconnects, notices that its session is gone,
reports it as an event, and its renewed subscriptions still deliver twin changes. On the embedded broker
(nats-server, with the device's own password) and on Mosquitto."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgefleet import protocol
from edge_agent.fleet.sim import SimulatedDevice
from tests.edge_agent.conftest import FleetProbe, make_config, write_state
from tests.fleet_server.nats_logins import SERVER_USER, NatsLogins, start_nats
from tests.mqtt_client import Peer


@dataclass
class Setup:
    port: int
    device: SimulatedDevice
    probe: FleetProbe
    password: str | None  # the device's MQTT password (None: an anonymous broker)


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    broker, login, server_login = None, None, {}
    if request.param == "embedded":
        server_password, logins = secrets.token_urlsafe(16), NatsLogins()
        broker = start_nats(tmp_path / "nats", server_password, logins=logins)
        port, login = broker.mqtt_port, secrets.token_urlsafe(24)
        server_login = {"username": SERVER_USER, "password": server_password}
    else:
        port = request.getfixturevalue("mosquitto_port")
    config = make_config(port)
    state = write_state(tmp_path / "agent", config)
    if login is not None:
        logins.add(config.device_id, login)
        state.save_password(login)
    probe = FleetProbe(config.device_id, port, **server_login)
    device = SimulatedDevice(config, state.root, fps=20).start()
    assert device.wait_ready(10)
    try:
        yield Setup(port, device, probe, login)
    finally:
        device.stop()
        probe.clear_retained(protocol.status_topic(config.device_id), protocol.twin_desired_topic(config.device_id),
                             protocol.twin_reported_topic(config.device_id))
        probe.close()
        if broker is not None:
            broker.stop()


def impostor_session(s: Setup) -> None:
    """Connect with the device's client id, its credentials and a clean session, then leave."""
    device_id = s.device.config.device_id
    impostor = Peer(s.port, device_id, device_id if s.password else None, s.password, clean=True)
    assert not impostor.connect().is_failure  # CONNACK: the broker has replaced the agent's connection
    impostor.close()


def test_a_takeover_is_noticed_reported_and_survived(setup: Setup) -> None:
    dev_id, link = setup.device.config.device_id, setup.device.link
    connects = link.connects
    impostor_session(setup)
    event = setup.probe.last(protocol.events_topic(dev_id), lambda d: d["kind"] == "connection", timeout=30)
    assert "session lost" in event["message"] and link.sessions_lost >= 1
    assert link.connects > connects
    assert setup.device.wait_ready(10)
    desired = protocol.TwinDesired(revision=7, pipeline=protocol.PipelineConfig(top_k=2))
    setup.probe.desire(desired)
    reported = setup.probe.last(protocol.twin_reported_topic(dev_id), lambda d: d["desired_revision"] == 7,
                                timeout=20)
    assert reported["config_hash"] == protocol.config_hash(desired.pipeline)


def test_an_ordinary_reconnect_with_the_session_kept_reports_nothing(setup: Setup) -> None:
    dev_id, link = setup.device.config.device_id, setup.device.link
    link.kill()  # the connection dies; the broker keeps the persistent session
    link.start()
    assert setup.device.wait_ready(10)
    assert link.sessions_lost == 0
    setup.probe.sync(protocol.events_topic(dev_id))
    events = [m.json() for m in setup.probe.on(protocol.events_topic(dev_id)) if m.payload.startswith(b"{")]
    assert not [e for e in events if e["kind"] == "connection"]
