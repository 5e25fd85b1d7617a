"""A private embedded broker (nats-server, through the server's own NatsBroker) for tests that need one outside a
whole fleet server, and the device logins it accepts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fleet_server.nats import NatsBroker, bcrypt_hash
from fleet_server.nats.users import SERVER_USER

__all__ = ["SERVER_USER", "NatsLogins", "start_nats"]


class NatsLogins:
    """Device logins on a test broker; adding one makes it live (a reload) before `add` returns."""

    def __init__(self, broker: NatsBroker | None = None) -> None:
        self.broker = broker
        self._hashes: dict[str, str] = {}

    def add(self, device_id: str, password: str) -> None:
        self._hashes[device_id] = bcrypt_hash(password)
        if self.broker is not None:
            self.broker.set_devices(self.items())

    def items(self) -> Iterable[tuple[str, str]]:
        return list(self._hashes.items())


def start_nats(state_dir: Path, password: str, port: int = 0, logins: NatsLogins | None = None) -> NatsBroker:
    """Start (or restart on the same state dir and port) a broker that knows the server and ``logins``."""
    broker = NatsBroker(state_dir, mqtt_port=port, server_password=password)
    if logins is not None:
        broker.set_devices(logins.items())
        logins.broker = broker
    return broker.start()
