"""A client speaking MQTT 5 (or 3.1) to the embedded broker is refused: the fleet's protocol is MQTT 3.1.1, and the
broker answers nothing else rather than half-supporting it."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.fleet_server.nats.conftest import NatsFleet


@pytest.mark.parametrize("version", [mqtt.MQTTv5, mqtt.MQTTv31], ids=["mqtt5", "mqtt3.1"])
def test_other_protocol_versions_are_refused(nats_fleet: NatsFleet, version: int) -> None:
    device = nats_fleet.device()
    outcome: list[str] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=version)
    client.username_pw_set(device, nats_fleet.passwords[device])
    client.on_connect = lambda c, u, f, reason, p: (outcome.append(f"connack {reason}"), done.set())
    client.on_disconnect = lambda c, u, f, reason, p: (outcome.append(f"closed {reason}"), done.set())
    client.connect_async("127.0.0.1", nats_fleet.port)
    client.loop_start()
    try:
        assert done.wait(15), "the broker neither answered nor closed the connection"
        assert outcome[0] != "connack Success" and not client.is_connected(), outcome
    finally:
        client.loop_stop()
