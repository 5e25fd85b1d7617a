"""A minimal device for the server's MQTT tests, on the tests' MQTT client: it speaks protocol v1 (status with a
Last Will, desired twin in, reported twin out) and nothing else. The agent's full implementation lives in
edge_agent; these tests check the server, so the device side stays small enough to read at a glance."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgefleet import protocol as p
from edgefleet.protocol.control import ControlVerifier, Sealed
from tests.mqtt_client import Peer, Received


def broker_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def opened(topic: str, payload: bytes, key: Ed25519PublicKey | None = None) -> bytes:
    """The body of a control message the server sealed; checked against ``key`` when the test knows it (these
    tests check the server's side, the agent's refusals are tested with the agent)."""
    if key is not None:
        return ControlVerifier(key).open(p.parse_topic(topic), topic, payload)
    return Sealed.model_validate_json(payload).body.encode()


class SimDevice:
    """Logs in as the device; with `answer_twin`, reports every desired twin as applied as soon as it arrives."""

    def __init__(self, device_id: str, broker_url: str, username: str | None = None,
                 password: str | None = None, *, answer_twin: bool = True) -> None:
        self.device_id = device_id
        self.answer_twin = answer_twin
        self.desired: list[p.TwinDesired] = []
        will = (p.status_topic(device_id), p.Status(state="offline", reason="lost").encode())
        self.peer = Peer(broker_port(broker_url), device_id, username, password, will=will, keepalive=5)
        self.peer.on_message = self._on_message

    def _on_message(self, message: Received) -> None:
        if message.topic != p.twin_desired_topic(self.device_id) or not message.payload:
            return
        desired = p.decode(p.TwinDesired, opened(message.topic, message.payload))
        self.desired.append(desired)
        if self.answer_twin:
            self.report(desired, wait=False)  # on the network thread: must not wait for the PUBACK

    def report(self, desired: p.TwinDesired, *, wait: bool = True) -> None:
        """Report `desired` as applied."""
        reported = p.TwinReported(desired_revision=desired.revision, model=desired.model, camera=desired.camera,
                                  config_hash=p.config_hash(desired.pipeline), properties=desired.properties)
        self.peer.publish(p.twin_reported_topic(self.device_id), reported.encode(), retain=True, wait=wait)

    def start(self) -> "SimDevice":
        """Connect (the broker must accept), take the desired twin, and say it is online."""
        reason = self.peer.connect()
        assert not reason.is_failure, f"{self.device_id} refused: {reason}"
        self.peer.subscribe(p.twin_desired_topic(self.device_id))
        self.peer.publish(p.status_topic(self.device_id), p.Status(state="online", agent_version="test-1").encode(),
                          retain=True)
        return self

    def stop(self) -> None:
        self.peer.close()
