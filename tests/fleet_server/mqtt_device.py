"""A minimal device for the server's MQTT tests: a real paho client speaking protocol v1 (status with a
Last Will, desired twin in, reported twin out). The agent's full implementation lives in edge_agent."""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet import protocol as p


def broker_address(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


class SimDevice:
    def __init__(self, device_id: str, broker_url: str, username: str | None = None,
                 password: str | None = None, *, answer_twin: bool = True) -> None:
        self.device_id = device_id
        self.host, self.port = broker_address(broker_url)
        self.answer_twin = answer_twin
        self.desired: list[p.TwinDesired] = []
        self.connack: int | None = None
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, clean_session=True)
        if username:
            self.client.username_pw_set(username, password)
        self.client.will_set(p.status_topic(device_id), p.Status(state="offline", reason="lost").encode(),
                             qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _props: Any) -> None:
        self.connack = reason.value if hasattr(reason, "value") else int(reason)
        if reason.is_failure:
            return
        client.subscribe(p.twin_desired_topic(self.device_id), qos=1)
        client.publish(p.status_topic(self.device_id), p.Status(state="online", agent_version="test-1").encode(),
                       qos=1, retain=True)
        self.connected.set()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if not msg.payload:
            return
        desired = p.decode(p.TwinDesired, msg.payload)
        self.desired.append(desired)
        if self.answer_twin:
            self.report(desired)

    def report(self, desired: p.TwinDesired) -> None:
        """Report `desired` as applied."""
        reported = p.TwinReported(desired_revision=desired.revision, model=desired.model, camera=desired.camera,
                                  config_hash=p.config_hash(desired.pipeline), properties=desired.properties)
        self.client.publish(p.twin_reported_topic(self.device_id), reported.encode(), qos=1, retain=True)

    def start(self) -> "SimDevice":
        self.client.connect(self.host, self.port, keepalive=5)
        self.client.loop_start()
        return self

    def try_connect(self, timeout: float = 10.0) -> int | None:
        """Connect and return the CONNACK code (0 = accepted), or None when the broker just closed on us."""
        self.client.reconnect_delay_set(60, 60)
        self.start()
        deadline = time.monotonic() + timeout
        while self.connack is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop()
        return self.connack

    def drop(self) -> None:
        """Vanish without a DISCONNECT, as a crashed or unplugged device does: the broker sends the Last Will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def clear_retained(broker_url: str, device_id: str) -> None:
    """Remove the retained messages a test left on a shared broker (Mosquitto on 1883 keeps them)."""
    host, port = broker_address(broker_url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cleanup-{device_id}")
    c.connect(host, port)
    c.loop_start()
    for topic in (p.status_topic(device_id), p.twin_desired_topic(device_id), p.twin_reported_topic(device_id)):
        c.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()
