"""Limits on every message: a bad or oversized value is one ProtocolError (counted and dropped by the receiver),
never a crash, a NULL in the database or a row that sorts as newest forever."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from edgefleet import protocol as p

DEVICE = "cam-0001"


def telemetry_json(**fields: object) -> bytes:
    body = {"v": 1, "ts": datetime.now(timezone.utc).isoformat(), "device_id": DEVICE, **fields}
    return json.dumps(body).encode()


def test_a_fresh_snapshot_decodes() -> None:
    _, message = p.decode_for_topic(p.telemetry_topic(DEVICE), telemetry_json(fps=12.5))
    assert isinstance(message, p.Telemetry) and message.fps == 12.5


@pytest.mark.parametrize("ts, reason", [
    ("2026-06-01T12:00:00", "must carry a timezone"),
    ("9999-12-31T00:00:00+00:00", "outside"),
    ("1970-01-01T00:00:00Z", "outside"),
])
def test_naive_and_implausible_timestamps_are_refused(ts: str, reason: str) -> None:
    with pytest.raises(p.ProtocolError, match=reason):
        p.decode_for_topic(p.telemetry_topic(DEVICE), telemetry_json(ts=ts))


def test_an_old_but_plausible_timestamp_is_kept_for_store_and_forward() -> None:
    weeks_ago = (datetime.now(timezone.utc) - timedelta(days=30)).isoformat()
    _, message = p.decode_for_topic(p.telemetry_topic(DEVICE), telemetry_json(ts=weeks_ago))
    assert message.ts.tzinfo is not None


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_floats_must_be_finite(literal: str) -> None:
    payload = telemetry_json().replace(b'"device_id"', f'"latency_ms_p50": {literal}, "device_id"'.encode())
    with pytest.raises(p.ProtocolError, match="latency_ms_p50"):
        p.decode_for_topic(p.telemetry_topic(DEVICE), payload)


def test_free_form_fields_are_bounded() -> None:
    with pytest.raises(ValueError, match="too large"):
        p.TwinReported(properties={"blob": "x" * 5000})
    with pytest.raises(ValueError, match="too large"):
        p.Event(kind="error", data={"blob": "x" * 20_000})
    with pytest.raises(ValueError):
        p.Status(state="online", agent_version="v" * 500)


def test_each_topic_caps_its_payload_before_parsing() -> None:
    oversized = b"{" + b" " * p.MAX_PAYLOAD[p.TopicKind.TELEMETRY] + b"}"
    with pytest.raises(p.ProtocolError, match="over its cap"):
        p.decode_for_topic(p.telemetry_topic(DEVICE), oversized)
    block = b"\0" * (p.MAX_OTA_BLOCK + 1)
    with pytest.raises(p.ProtocolError, match="over its cap"):
        p.decode_for_topic(p.ota_data_topic(DEVICE, "a" * 64, 0), block)


def test_a_command_deadline_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        p.Command(name="ping", deadline=datetime(2026, 6, 1, 12, 0))
