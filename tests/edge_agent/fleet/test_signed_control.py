"""The agent obeys only its server: a desired twin or a command that anyone else put on the broker (an open
Mosquitto, a stolen password) is refused, reported, and changes nothing."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgefleet import protocol
from edgefleet.protocol import TwinDesired
from edgefleet.protocol.control import ControlSigner
from tests.mqtt_client import Peer, unique_id


def _errors(probe, device_id: str, count: int) -> list[str]:
    def found(messages):
        errors = [m.json()["message"] for m in messages
                  if m.topic == protocol.events_topic(device_id) and m.json()["kind"] == "error"]
        return errors if len(errors) >= count else None

    return probe.wait_for(found, what=f"{count} error events")


def test_forged_desired_twins_and_commands_are_refused_and_reported(device, probe, agent_config, mosquitto_port):
    dev = agent_config.device_id
    probe.desire(TwinDesired(revision=2, camera="synthetic:front"))
    probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 2)
    attacker = Peer(mosquitto_port, unique_id("anonymous"))
    assert not attacker.connect().is_failure
    evil = TwinDesired(revision=99, camera="/etc/passwd").encode()
    attacker.publish(protocol.twin_desired_topic(dev), evil, retain=True)  # plain JSON, as mosquitto_pub sends
    attacker.publish(protocol.twin_desired_topic(dev), ControlSigner(Ed25519PrivateKey.generate()).seal(
        protocol.twin_desired_topic(dev), evil), retain=True)  # sealed, by a key the device never pinned
    attacker.publish(protocol.cmd_topic(dev, "evil"), protocol.Command(name="reboot").encode())
    attacker.close()

    errors = _errors(probe, dev, 3)
    assert sum("unsigned or malformed twin/desired" in e for e in errors) == 1
    assert sum("bad signature" in e for e in errors) == 1
    assert sum("unsigned or malformed cmd" in e for e in errors) == 1
    assert device.twin.camera == "synthetic:front" and device.twin.applied.desired_revision == 2
    assert not probe.on(protocol.cmd_reply_topic(dev, "evil"))  # not even an error reply: it never ran
    reported = probe.last(protocol.twin_reported_topic(dev), lambda d: d["last_error"])
    assert reported["desired_revision"] == 2 and "rejected message on" in reported["last_error"]
    probe.clear_retained(protocol.twin_desired_topic(dev))


def test_a_replayed_desired_twin_is_refused(device, probe, agent_config, mosquitto_port):
    dev = agent_config.device_id
    topic = protocol.twin_desired_topic(dev)
    probe.desire(TwinDesired(revision=3, camera="synthetic:old"))
    probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 3)
    captured = probe.on(topic)[-1].payload  # what an eavesdropper on the broker saw
    probe.desire(TwinDesired(revision=4, camera="synthetic:new"))
    probe.last(protocol.twin_reported_topic(dev), lambda d: d["desired_revision"] == 4)

    probe.publish(topic, captured, retain=True)
    assert any("replayed desired twin" in e for e in _errors(probe, dev, 1))
    assert device.twin.camera == "synthetic:new"
    probe.clear_retained(topic)
