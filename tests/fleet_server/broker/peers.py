"""A real paho MQTT 3.1.1 client for the broker tests, with blocking helpers that wait for the broker's
answers (CONNACK, SUBACK, PUBACK, messages) instead of sleeping."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TIMEOUT = 10.0


def unique_id(suffix: str) -> str:
    """A device id no other test run uses (tests share the machine's Mosquitto)."""
    return f"t{uuid.uuid4().hex[:10]}-{suffix}"


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


class Peer:
    """One MQTT connection. Does not reconnect by itself: each test decides when to connect."""

    def __init__(self, port: int, client_id: str, username: str | None = None, password: str | None = None,
                 *, clean: bool = True, will: tuple[str, bytes] | None = None) -> None:
        self.port = port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                                  protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self._cond = threading.Condition()
        self.messages: list[Received] = []
        self.connack: mqtt.ReasonCode | None = None
        self.session_present: bool | None = None
        self.disconnects = 0
        self._subacks: dict[int, list] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # callbacks --------------------------------------------------------------------------------
    def _on_connect(self, _c, _u, flags, reason, _p) -> None:  # noqa: ANN001
        with self._cond:
            self.connack = reason
            self.session_present = bool(flags.session_present)
            self._cond.notify_all()

    def _on_disconnect(self, _c, _u, _f, reason, _p) -> None:  # noqa: ANN001
        with self._cond:
            self.disconnects += 1
            if self.connack is None:
                self.connack = reason
            self._cond.notify_all()

    def _on_message(self, _c, _u, msg) -> None:  # noqa: ANN001
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def _on_subscribe(self, _c, _u, mid, codes, _p) -> None:  # noqa: ANN001
        with self._cond:
            self._subacks[mid] = list(codes)
            self._cond.notify_all()

    def _wait(self, predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError(f"{self.client._client_id!r}: timed out waiting for {what}")  # noqa: SLF001

    # actions ----------------------------------------------------------------------------------
    def connect(self) -> mqtt.ReasonCode:
        """Connect and return the broker's CONNACK reason (success or the refusal)."""
        self.connack = None
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        self._wait(lambda: self.connack is not None, "CONNACK")
        if self.connack.is_failure:
            self.client.loop_stop()
        return self.connack

    def subscribe(self, *filters: str, qos: int = 1) -> list[bool]:
        """Subscribe and return, per filter, whether the broker granted it."""
        _, mid = self.client.subscribe([(f, qos) for f in filters])
        self._wait(lambda: mid in self._subacks, f"SUBACK for {filters}")
        return [not code.is_failure for code in self._subacks[mid]]

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(TIMEOUT)

    def expect(self, topic: str, timeout: float = TIMEOUT) -> Received:
        """The first message on `topic` (waits for it)."""
        self._wait(lambda: any(m.topic == topic for m in self.messages), f"a message on {topic}", timeout)
        with self._cond:
            return next(m for m in self.messages if m.topic == topic)

    def topics(self) -> list[str]:
        with self._cond:
            return [m.topic for m in self.messages]

    def wait_disconnected(self) -> None:
        self._wait(lambda: self.disconnects > 0, "the broker to drop the connection")

    def close(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()
