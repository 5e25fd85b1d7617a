"""Hostile MQTT input to the server's bridge and ingest (hypothesis): random bytes, wrong JSON, oversized
payloads, wrong versions, bad timestamps, other devices' topics. The handler never raises, every message is
either refused and counted or valid by the protocol, and a refused one changes nothing in the database."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet import protocol as p
from fleet_server.db import Database
from fleet_server.db.models import Device, TelemetryRow
from fleet_server.ingest import Ingest
from fleet_server.metrics import FleetMetrics
from fleet_server.mqtt_bridge import MqttBridge
from tests.fuzz_messages import PAYLOADS, message, topics

OWN, OTHER = "cam-fuzz-0001", "cam-fuzz-0002"


def snapshot(db: Database) -> tuple:
    with db.session() as session:
        device = session.get(Device, OWN)
        rows = session.scalar(sa.select(sa.func.count()).select_from(TelemetryRow))
        return (device.status, device.agent_version, device.reported, device.last_seen, rows)


def valid(topic: str, payload: bytes) -> bool:
    try:
        parsed, decoded = p.decode_for_topic(topic, payload)
    except p.ProtocolError:
        return False
    return not (isinstance(decoded, p.Telemetry) and decoded.device_id != parsed.device_id)


@pytest.fixture()
def bridge(db: Database) -> MqttBridge:
    with db.session() as session:
        session.add(Device(id=OWN, status="offline", enrolled_at=datetime.now(timezone.utc), tags={}))
        session.commit()
    return MqttBridge("mqtt://127.0.0.1:1", Ingest(db, FleetMetrics()))  # never started: handlers only


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(topic=topics(OWN, OTHER), payload=PAYLOADS, retain=st.booleans())
def test_hostile_messages_are_refused_counted_and_change_nothing(bridge: MqttBridge, db: Database, topic: str,
                                                                  payload: bytes, retain: bool) -> None:
    before, refused = snapshot(db), sum(bridge.refused.values())
    bridge._on_message(bridge._client, None, message(topic, payload, retain))  # noqa: SLF001 - the handler itself
    assert bridge.handler_errors == 0
    if not payload:
        return  # an empty payload is a cleared retained message: ignored by design
    if sum(bridge.refused.values()) == refused + 1:
        assert snapshot(db) == before
    else:
        assert valid(topic, payload), f"accepted an invalid message on {topic!r}: {payload[:80]!r}"
