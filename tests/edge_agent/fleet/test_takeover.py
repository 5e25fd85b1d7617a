"""Session takeover: another client connecting with this device's identity and a clean session. The broker drops
the agent's connection (MQTT 3.1.1, 3.1.4-2); the agent reconnects, notices that its session is gone, reports it as
an event, and its renewed subscriptions still deliver twin changes."""

from __future__ import annotations

from edgefleet import protocol
from tests.mqtt_client import Peer


def impostor_session(device_id: str, port: int) -> None:
    """Connect with the device's client id and a clean session, then leave (as a stolen identity would)."""
    impostor = Peer(port, device_id, clean=True)
    assert not impostor.connect().is_failure
    try:
        impostor.publish("edgefleet/v1/impostor-probe", b"")  # PUBACKed: the broker has taken over the session
    finally:
        impostor.close()


def test_a_takeover_is_noticed_reported_and_survived(device, probe, agent_config, mosquitto_port):
    dev_id = agent_config.device_id
    connects = device.link.connects
    impostor_session(dev_id, mosquitto_port)
    event = probe.last(protocol.events_topic(dev_id), lambda d: d["kind"] == "connection", timeout=30)
    assert "session lost" in event["message"] and device.link.sessions_lost >= 1
    assert device.link.connects > connects
    assert device.wait_ready(10)
    desired = protocol.TwinDesired(revision=7, pipeline=protocol.PipelineConfig(top_k=2))
    probe.desire(desired)
    reported = probe.last(protocol.twin_reported_topic(dev_id), lambda d: d["desired_revision"] == 7, timeout=20)
    assert reported["config_hash"] == protocol.config_hash(desired.pipeline)


def test_an_ordinary_reconnect_with_the_session_kept_reports_nothing(device, probe, agent_config):
    dev_id = agent_config.device_id
    device.link.kill()  # the connection dies; the broker keeps the persistent session
    device.link.start()
    probe.last(protocol.status_topic(dev_id), lambda d: d["state"] == "online", timeout=30)
    assert device.wait_ready(10)
    assert device.link.sessions_lost == 0
    assert not [m for m in probe.on(protocol.events_topic(dev_id)) if m.json()["kind"] == "connection"]
