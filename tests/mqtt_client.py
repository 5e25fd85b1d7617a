"""The tests' one MQTT client: a real paho client (MQTT 3.1.1) whose calls wait for the broker's answers
(CONNACK, SUBACK, PUBACK, messages) instead of sleeping.

Every test that speaks MQTT uses it, whatever role it plays: a device, the fleet server, an impostor with a
stolen client id, a late subscriber. Device ids come from `unique_id` and start with this run's SESSION_TAG,
so what a run leaves retained on the machine's shared Mosquitto can be found and cleared at its end
(`sweep_retained`, called by the session fixture in tests/conftest.py).
"""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.protocol import TOPIC_ROOT
from tests.waiting import wait_for

T = TypeVar("T")
TIMEOUT = 10.0
SESSION_TAG = f"t{uuid.uuid4().hex[:6]}"


def unique_id(suffix: str = "dev") -> str:
    """A device id no other test or test run uses (runs share the machine's Mosquitto); the suffix says its role."""
    return f"{SESSION_TAG}-{uuid.uuid4().hex[:8]}-{suffix}"


def unique_name(name: str) -> str:
    """A device name for enrollment: the server's id is a slug of it, so the id carries this run's tag too."""
    return f"{SESSION_TAG}-{name}"


def tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """Client-certificate TLS, capped at 1.2 as the fleet's brokers are configured (`tls_version tlsv1.2`)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Peer:
    """One MQTT connection. It never reconnects by itself: each test decides when to connect.

    `on_message`, when set, is called for every message after it is recorded, on paho's network thread: it
    may publish with ``wait=False`` but must not block (a PUBACK can only arrive on that same thread).
    """

    def __init__(self, port: int, client_id: str, username: str | None = None, password: str | None = None, *,
                 clean: bool = True, will: tuple[str, bytes] | None = None, tls: ssl.SSLContext | None = None,
                 keepalive: int = 30, host: str = "127.0.0.1") -> None:
        self.host, self.port, self.client_id, self.keepalive = host, port, client_id, keepalive
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                                  protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        if tls is not None:
            self.client.tls_set_context(tls)
        self._cond = threading.Condition()
        self.messages: list[Received] = []
        self.connack: mqtt.ReasonCode | None = None
        self.session_present: bool | None = None
        self.disconnects = 0
        self.on_message: Callable[[Received], None] | None = None
        self._subacks: dict[int, list] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # callbacks (paho's network thread) -----------------------------------------------------------
    def _on_connect(self, _c, _u, flags, reason, _p) -> None:  # noqa: ANN001
        with self._cond:
            self.connack = reason
            self.session_present = bool(flags.session_present)
            self._cond.notify_all()

    def _on_disconnect(self, _c, _u, _f, reason, _p) -> None:  # noqa: ANN001
        with self._cond:
            self.disconnects += 1
            if self.connack is None:  # the broker closed on us instead of answering the CONNECT
                self.connack = reason
            self._cond.notify_all()

    def _on_message(self, _c, _u, msg) -> None:  # noqa: ANN001
        received = Received(msg.topic, bytes(msg.payload), bool(msg.retain))
        with self._cond:
            self.messages.append(received)
            self._cond.notify_all()
        if self.on_message is not None:
            self.on_message(received)

    def _on_subscribe(self, _c, _u, mid, codes, _p) -> None:  # noqa: ANN001
        with self._cond:
            self._subacks[mid] = list(codes)
            self._cond.notify_all()

    # waiting -------------------------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[list[Received]], T], timeout: float = TIMEOUT, what: str = "") -> T:
        """The first truthy value of ``predicate(messages so far)``, re-checked as each message arrives."""
        def seen() -> str:
            return f"{what or predicate} at {self.client_id!r}; saw topics {sorted(set(self.topics()))}"
        return wait_for(lambda: predicate(list(self.messages)), timeout, seen, cond=self._cond)

    def expect(self, topic: str, timeout: float = TIMEOUT) -> Received:
        """The first message on `topic` (waits for it)."""
        return self.wait_for(lambda ms: next((m for m in ms if m.topic == topic), None), timeout,
                             f"a message on {topic}")

    def last(self, topic: str, where: Callable[[Any], bool] = lambda d: True, timeout: float = TIMEOUT) -> Any:
        """The newest non-empty JSON message on `topic` that satisfies `where` (waits for one)."""
        def find(messages: list[Received]) -> Any:
            return next((m.json() for m in reversed(messages) if m.topic == topic and m.payload and where(m.json())),
                        None)
        return self.wait_for(find, timeout, f"a message on {topic}")

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def topics(self) -> list[str]:
        with self._cond:
            return [m.topic for m in self.messages]

    def sync(self, topic: str) -> None:
        """Publish a marker on `topic` (which this client subscribes to) and wait for it to come back. The broker
        keeps order, so whatever it queued for us before (retained messages after a SUBACK) has arrived by then:
        "nothing came" is proven without sleeping."""
        marker = f"sync-{uuid.uuid4().hex}".encode()
        self.publish(topic, marker)
        self.wait_for(lambda ms: any(m.topic == topic and m.payload == marker for m in ms),
                      what=f"the marker on {topic}")

    def wait_disconnected(self) -> None:
        wait_for(lambda: self.disconnects > 0, TIMEOUT, "the broker to drop the connection", cond=self._cond)

    # actions -------------------------------------------------------------------------------------
    def connect(self) -> mqtt.ReasonCode:
        """Connect and return the broker's CONNACK reason (success or the refusal)."""
        self.connack = None
        self.client.connect(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()
        wait_for(lambda: self.connack is not None, TIMEOUT, f"CONNACK for {self.client_id!r}", cond=self._cond)
        if self.connack.is_failure:
            self.client.loop_stop()
        return self.connack

    def subscribe(self, *filters: str, qos: int = 1) -> list[bool]:
        """Subscribe and return, per filter, whether the broker granted it."""
        _, mid = self.client.subscribe([(f, qos) for f in filters])
        codes = wait_for(lambda: self._subacks.get(mid), TIMEOUT, f"SUBACK for {filters}", cond=self._cond)
        return [not code.is_failure for code in codes]

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False,
                wait: bool = True) -> None:
        """Publish; with `wait`, return once the broker has acknowledged it (PUBACK; sent, for QoS 0)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if wait:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published(), f"{self.client_id!r}: no PUBACK for {topic}"

    def clear_retained(self, *topics: str) -> None:
        for topic in topics:
            self.publish(topic, b"", retain=True)

    def drop(self) -> None:
        """Vanish without a DISCONNECT, as a crashed or unplugged device does: the broker sends the Last Will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()


def _device_of(topic: str) -> str:
    return topic[len(TOPIC_ROOT) + 1:].split("/", 1)[0] if topic.startswith(TOPIC_ROOT + "/") else ""


def retained_topics(port: int, prefix: str = SESSION_TAG + "-") -> list[str]:
    """Topics under TOPIC_ROOT holding a retained message, of devices whose id starts with `prefix`."""
    reader = Peer(port, unique_id("sweep"))
    assert not reader.connect().is_failure, f"cannot read the retained messages on 127.0.0.1:{port}"
    try:
        reader.subscribe(f"{TOPIC_ROOT}/#")
        reader.sync(f"{TOPIC_ROOT}/{reader.client_id}/sync")
        return sorted({m.topic for m in reader.messages if m.retain and _device_of(m.topic).startswith(prefix)})
    finally:
        reader.close()


def sweep_retained(port: int, prefix: str = SESSION_TAG + "-") -> list[str]:
    """Clear the retained messages of devices whose id starts with `prefix` and return their topics; fail when
    any is still there afterwards (a test's client still running would put it back)."""
    left = retained_topics(port, prefix)
    if left:
        cleaner = Peer(port, unique_id("cleaner"))
        assert not cleaner.connect().is_failure
        try:
            cleaner.clear_retained(*left)
        finally:
            cleaner.close()
    remaining = retained_topics(port, prefix)
    assert remaining == [], f"retained messages of test devices are still on 127.0.0.1:{port}: {remaining}"
    return left
