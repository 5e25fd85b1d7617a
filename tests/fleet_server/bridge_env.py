"""What the bridge tests run against: a handler that records, and one broker with its logins and devices.
The fixtures are imported by the bridge test modules.

Devices are real MQTT clients (tests.mqtt_client) with ids of this run; what they leave retained on the shared
Mosquitto is cleared by the session sweep in tests/conftest.py.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest

from edgefleet import protocol as p
from fleet_server.mqtt_bridge import MqttBridge
from tests.fleet_server.nats_logins import SERVER_USER, NatsLogins, start_nats
from tests.mqtt_client import TIMEOUT, Peer, unique_id
from tests.waiting import wait_for


class Recorder:
    """A BridgeHandler that remembers every call; `fail_on` makes one kind raise, as a buggy handler would."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.fail_on: str | None = None
        self._cond = threading.Condition()

    def _record(self, kind: str, device_id: str, *args: object) -> None:
        with self._cond:
            self.calls.append((kind, device_id, *args))
            self._cond.notify_all()
        if kind == self.fail_on:
            raise RuntimeError(f"handler bug on {kind}")

    def on_status(self, device_id, status): self._record("status", device_id, status)  # noqa: ANN001, E704
    def on_reported(self, device_id, reported): self._record("reported", device_id, reported)  # noqa: ANN001, E704
    def on_telemetry(self, device_id, telemetry): self._record("telemetry", device_id, telemetry)  # noqa: ANN001, E704
    def on_event(self, device_id, event): self._record("event", device_id, event)  # noqa: ANN001, E704
    def on_command_reply(self, device_id, request_id, reply):  # noqa: ANN001
        self._record("reply", device_id, request_id, reply)
    def on_ota_get(self, device_id, request): self._record("ota_get", device_id, request)  # noqa: ANN001, E704

    def of(self, device_id: str) -> list[tuple]:
        with self._cond:
            return [c for c in self.calls if c[1] == device_id]

    def wait_for(self, kind: str, device_id: str, count: int = 1) -> tuple:
        """The `count`-th call of `kind` for the device (waits for it)."""
        def nth() -> tuple | None:
            matching = [c for c in self.calls if c[:2] == (kind, device_id)]
            return matching[count - 1] if len(matching) >= count else None
        return wait_for(nth, TIMEOUT, lambda: f"{kind} from {device_id}: {self.of(device_id)}", cond=self._cond)


@dataclass
class Env:
    """One broker, how the server and devices log in to it, and the devices a test made."""

    kind: str
    port: int
    creds: NatsLogins | None = None
    server_password: str | None = None
    devices: dict[str, str] = field(default_factory=dict)
    peers: list[Peer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def server_login(self) -> dict[str, str]:
        return {"username": SERVER_USER, "password": self.server_password} if self.creds else {}

    def bridge(self, handler: Recorder, **kwargs: object) -> MqttBridge:
        """A bridge in a share group of its own: other servers on the shared Mosquitto must not take its telemetry."""
        options = {**self.server_login(), "share_group": f"test-{secrets.token_hex(4)}", **kwargs}
        return MqttBridge(self.url, handler, client_id=f"edgefleet-server-{secrets.token_hex(4)}", **options)

    def device(self, suffix: str = "dev") -> str:
        device_id = unique_id(suffix)
        self.devices[device_id] = secrets.token_urlsafe(12)
        if self.creds is not None:
            self.creds.add(device_id, self.devices[device_id])
        return device_id

    def connect(self, device_id: str, **kwargs: object) -> Peer:
        login = (device_id, self.devices[device_id]) if self.creds is not None else (None, None)
        peer = Peer(self.port, device_id, *login, **kwargs)
        self.peers.append(peer)
        assert not peer.connect().is_failure
        return peer

    def close(self) -> None:
        for peer in self.peers:
            peer.close()


@pytest.fixture(scope="module")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, NatsLogins, str]]:
    """The embedded broker (a private nats-server), shared by a module's tests: each adds its own devices."""
    password = secrets.token_urlsafe(12)
    logins = NatsLogins()
    broker = start_nats(tmp_path_factory.mktemp("nats"), password, logins=logins)
    yield broker, logins, password
    broker.stop()


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    if request.param == "embedded":
        broker, creds, password = request.getfixturevalue("embedded_broker")
        e = Env("embedded", broker.mqtt_port, creds, password)
    else:
        e = Env("mosquitto", request.getfixturevalue("mosquitto_port"))
    yield e
    e.close()


@pytest.fixture()
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture()
def bridge(env: Env, recorder: Recorder) -> Iterator[MqttBridge]:
    b = env.bridge(recorder, shared_telemetry=env.kind == "mosquitto")
    b.start()
    assert b.wait_connected(TIMEOUT)
    yield b
    b.stop()


def event(n: int) -> p.Event:
    return p.Event(kind="detection", camera_id="cam0", data={"n": n}, ts=datetime(2026, 1, 1, tzinfo=timezone.utc))
