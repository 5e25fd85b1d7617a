"""A private nats-server per test (free ports, its own state directory) and helpers to log in to it as the
server or as a device. Every test talks to the real binary through the tests' MQTT client."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleet_server.nats import NatsBroker, NatsError, NatsLimits, bcrypt_hash, find_binary
from fleet_server.nats.users import SERVER_USER
from tests import services
from tests.mqtt_client import Peer, unique_id


class NatsPeer(Peer):
    """The tests' client with many messages in flight, for the delivery tests' pipelined bursts."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.client.max_inflight_messages_set(200)  # paho allows it only before connecting

    def wait_messages(self, count: int, timeout: float = 60.0) -> None:
        """Wait until at least `count` messages have arrived."""
        self.wait_for(lambda messages: len(messages) >= count, timeout, f"{count} messages")

    def publish_burst(self, topic: str, payloads: list[bytes]) -> None:
        """Publish all at QoS 1 with many in flight, and return once every one is PUBACKed."""
        infos = [self.client.publish(topic, body, qos=1) for body in payloads]
        for info in infos:
            info.wait_for_publish(60)
            assert info.is_published()


@dataclass
class NatsFleet:
    broker: NatsBroker
    server_password: str
    passwords: dict[str, str] = field(default_factory=dict)
    peers: list[NatsPeer] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.broker.mqtt_port

    def add(self, suffix: str = "dev") -> str:
        """A new device id and password, not yet given to the broker (see `apply`)."""
        device_id = unique_id(suffix)
        self.passwords[device_id] = secrets.token_urlsafe(32)
        return device_id

    def apply(self) -> None:
        self.broker.set_devices((d, bcrypt_hash(pw)) for d, pw in self.passwords.items())

    def device(self, suffix: str = "dev") -> str:
        device_id = self.add(suffix)
        self.apply()
        return device_id

    def peer(self, client_id: str, username: str | None = None, password: str | None = None,
             **kwargs: object) -> NatsPeer:
        peer = NatsPeer(self.port, client_id, username, password, **kwargs)
        self.peers.append(peer)
        return peer

    def as_device(self, device_id: str, client_id: str | None = None, **kwargs: object) -> NatsPeer:
        peer = self.peer(client_id or device_id, device_id, self.passwords[device_id], **kwargs)
        assert not peer.connect().is_failure
        return peer

    def as_server(self, **kwargs: object) -> NatsPeer:
        peer = self.peer(f"srv-{secrets.token_hex(3)}", SERVER_USER, self.server_password, **kwargs)
        assert not peer.connect().is_failure
        return peer


@pytest.fixture(scope="session")
def nats_binary() -> Path:
    try:
        return find_binary()
    except NatsError as exc:
        services.service_missing(str(exc))


@pytest.fixture()
def nats_limits() -> NatsLimits:
    return NatsLimits()


@pytest.fixture()
def nats_fleet(nats_binary: Path, tmp_path: Path, nats_limits: NatsLimits) -> Iterator[NatsFleet]:
    password = secrets.token_urlsafe(32)
    broker = NatsBroker(tmp_path / "nats", mqtt_port=0, server_password=password, limits=nats_limits,
                        binary=nats_binary).start()
    fleet = NatsFleet(broker, password)
    yield fleet
    for peer in fleet.peers:
        peer.close()
    broker.stop()
