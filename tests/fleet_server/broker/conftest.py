"""An embedded broker on a free port with a small table of logins, and helpers to connect as one of them."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from fleet_server.broker.embedded import EmbeddedBroker
from fleet_server.broker.thread import BrokerThread
from tests.fleet_server.broker.credentials import StaticCredentials
from tests.mqtt_client import Peer, unique_id

SERVER_USER = "server"


@dataclass
class Fleet:
    """The broker plus who may log in to it. `device()` makes a new device with its own password."""

    broker: BrokerThread
    creds: StaticCredentials
    server_password: str
    passwords: dict[str, str] = field(default_factory=dict)
    peers: list[Peer] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.broker.port

    def device(self, suffix: str = "dev") -> str:
        device_id = unique_id(suffix)
        self.passwords[device_id] = secrets.token_urlsafe(16)
        self.creds.add(device_id, self.passwords[device_id])
        return device_id

    def peer(self, client_id: str, username: str | None = None, password: str | None = None,
             **kwargs: object) -> Peer:
        peer = Peer(self.port, client_id, username, password, **kwargs)
        self.peers.append(peer)
        return peer

    def as_device(self, device_id: str, **kwargs: object) -> Peer:
        """A connected client logged in as the device, with its own client id."""
        peer = self.peer(device_id, device_id, self.passwords[device_id], **kwargs)
        assert not peer.connect().is_failure
        return peer

    def as_server(self) -> Peer:
        peer = self.peer(f"srv-{secrets.token_hex(3)}", SERVER_USER, self.server_password)
        assert not peer.connect().is_failure
        return peer


def subscriptions_of(broker: EmbeddedBroker, client_id: str) -> list[str]:
    """The filters the broker holds for a client id (stored sessions included). Call it on the broker's loop."""
    amqtt = broker._broker  # noqa: SLF001 - the broker's state, as the tests' witness
    if amqtt is None:
        return []
    return sorted(f for f, subs in amqtt.subscriptions.items() if any(s.client_id == client_id for s, _ in subs))


@pytest.fixture(scope="module")
def broker_thread() -> Iterator[tuple[BrokerThread, StaticCredentials, str]]:
    password = secrets.token_urlsafe(16)
    creds = StaticCredentials(SERVER_USER, password)
    thread = BrokerThread(port=0, checker=creds).start()
    yield thread, creds, password
    thread.stop()


@pytest.fixture()
def fleet(broker_thread: tuple[BrokerThread, StaticCredentials, str]) -> Iterator[Fleet]:
    thread, creds, password = broker_thread
    f = Fleet(thread, creds, password)
    yield f
    for peer in f.peers:
        peer.close()


@pytest.fixture()
def broker_state(fleet: Fleet) -> Callable[[Callable[..., object]], object]:
    """Read the broker's state on its own loop (no races with it)."""
    def read(fn: Callable[..., object]) -> object:
        return fleet.broker.call(fn, fleet.broker.broker)
    return read
