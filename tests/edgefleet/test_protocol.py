"""The protocol is the one contract every program shares: topics round-trip, payloads round-trip, and anything
malformed raises ProtocolError, never another exception type."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from edgefleet import protocol as p

DEV = "cam-0001"
SHA = "ab" * 32


@pytest.mark.parametrize(
    ("topic", "kind", "extra"),
    [
        (p.status_topic(DEV), p.TopicKind.STATUS, {}),
        (p.telemetry_topic(DEV), p.TopicKind.TELEMETRY, {}),
        (p.events_topic(DEV), p.TopicKind.EVENTS, {}),
        (p.twin_desired_topic(DEV), p.TopicKind.TWIN_DESIRED, {}),
        (p.twin_reported_topic(DEV), p.TopicKind.TWIN_REPORTED, {}),
        (p.cmd_topic(DEV, "r-1"), p.TopicKind.CMD, {"request_id": "r-1"}),
        (p.cmd_reply_topic(DEV, "r-1"), p.TopicKind.CMD_REPLY, {"request_id": "r-1"}),
        (p.ota_get_topic(DEV), p.TopicKind.OTA_GET, {}),
        (p.ota_data_topic(DEV, SHA, 262144), p.TopicKind.OTA_DATA, {"sha256": SHA, "offset": 262144}),
    ],
)
def test_every_topic_round_trips_through_parse_and_render(topic, kind, extra):
    parsed = p.parse_topic(topic)
    assert parsed.device_id == DEV
    assert parsed.kind is kind
    for key, value in extra.items():
        assert getattr(parsed, key) == value
    assert parsed.render() == topic
    assert topic.startswith(p.device_prefix(DEV))


def test_topics_follow_the_design_table():
    assert p.status_topic(DEV) == "edgefleet/v1/cam-0001/status"
    assert p.cmd_reply_topic(DEV, "42") == "edgefleet/v1/cam-0001/cmd/42/reply"
    assert p.ota_data_topic(DEV, SHA, 0) == f"edgefleet/v1/cam-0001/ota/data/{SHA}/0"


@pytest.mark.parametrize(
    "topic",
    [
        "edgefleet/v2/cam-0001/status",
        "other/v1/cam-0001/status",
        "edgefleet/v1/cam-0001/unknown",
        "edgefleet/v1/cam-0001/status/extra",
        "edgefleet/v1/CAM/status",  # upper case is not a device id
        "edgefleet/v1/+/status",  # a wildcard is a filter, not a topic
        "edgefleet/v1/cam-0001/cmd/bad id",
        f"edgefleet/v1/cam-0001/ota/data/{SHA}/-1",
        "edgefleet/v1/cam-0001/ota/data/nothex/0",
        "$share/fleet/edgefleet/v1/cam-0001/telemetry",
        "",
    ],
)
def test_malformed_topics_raise_protocol_error(topic):
    with pytest.raises(p.ProtocolError):
        p.parse_topic(topic)


@pytest.mark.parametrize("bad", ["a/b", "ab", "x+y", "#", "UPPER", "-lead", "a" * 64, ""])
def test_device_ids_that_would_break_topics_are_refused(bad):
    with pytest.raises(p.ProtocolError):
        p.status_topic(bad)


@pytest.mark.parametrize(
    ("filter_", "topic", "expected"),
    [
        ("edgefleet/v1/+/telemetry", "edgefleet/v1/cam-0001/telemetry", True),
        ("$share/fleet/edgefleet/v1/+/telemetry", "edgefleet/v1/cam-0001/telemetry", True),
        ("edgefleet/v1/cam-0001/#", "edgefleet/v1/cam-0001/cmd/1", True),
        ("edgefleet/v1/cam-0001/#", "edgefleet/v1/cam-0002/cmd/1", False),
        ("edgefleet/v1/+/cmd/+/reply", "edgefleet/v1/cam-0001/cmd/7/reply", True),
        ("edgefleet/v1/+/cmd/+", "edgefleet/v1/cam-0001/cmd/7/reply", False),
        ("#", "$SYS/broker/uptime", False),
        ("edgefleet/#", "edgefleet", True),
    ],
)
def test_topic_matches_knows_wildcards_and_shared_subscriptions(filter_, topic, expected):
    assert p.topic_matches(filter_, topic) is expected


def test_device_subscriptions_stay_inside_the_device_subtree():
    for f in p.device_subscriptions(DEV):
        assert f.startswith(p.device_prefix(DEV))
    assert any(f.startswith("$share/fleet/") for f in p.server_subscriptions(shared=True))
    assert not any(f.startswith("$share/") for f in p.server_subscriptions(shared=False))


def _samples() -> list[p.Message]:
    ts = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
    model = p.ModelRef(name="digits", version="1.0.0-int8", sha256=SHA, size=1234)
    return [
        p.Status(ts=ts, state="online", agent_version="0.1.0"),
        p.Telemetry(ts=ts, device_id=DEV, frames_captured=10, frames_inferred=9, frames_dropped=1, fps=29.5,
                    latency_ms_p50=4.0, cpu_percent=12.5, memory_mb=140.0, outbox_depth=3, uptime_s=60.0),
        p.Event(ts=ts, kind="detection", camera_id="synthetic", data={"label": "person", "score": 0.9}),
        p.TwinDesired(ts=ts, revision=3, model=model, camera="synthetic",
                      pipeline=p.PipelineConfig(score_threshold=0.7), properties={"site": "shop-1"}),
        p.TwinReported(ts=ts, desired_revision=3, model=model, backend="openvino", device="CPU",
                       camera="synthetic", config_hash="abc", slot="B"),
        p.Command(ts=ts, name="get_logs", args={"lines": 50}, deadline=ts),
        p.CommandReply(ts=ts, ok=False, error="deadline passed"),
        p.OtaGet(ts=ts, sha256=SHA, offset=0, length=p.DEFAULT_OTA_BLOCK),
    ]


@pytest.mark.parametrize("message", _samples(), ids=lambda m: type(m).__name__)
def test_every_message_round_trips_and_carries_version_and_timestamp(message):
    raw = message.encode()
    body = json.loads(raw)
    assert body["v"] == 1 and "ts" in body
    assert p.decode(type(message), raw) == message


@pytest.mark.parametrize(
    ("model", "payload"),
    [
        (p.Status, b"not json"),
        (p.Status, b"\xff\xfe"),
        (p.Status, b'{"v": 2, "state": "online"}'),
        (p.Status, b'{"v": 1, "state": "sleeping"}'),
        (p.Status, b'{"v": 1, "state": "online", "surprise": 1}'),
        (p.Telemetry, b'{"v": 1, "device_id": "cam-0001", "frames_captured": -1}'),
        (p.Telemetry, b'{"v": 1, "device_id": "../etc"}'),
        (p.TwinDesired, b'{"v": 1, "revision": 1, "pipeline": {"score_threshold": 7}}'),
        (p.TwinDesired, b'{"v": 1, "revision": 1, "model": {"name": "m", "version": "1", "sha256": "xyz"}}'),
        (p.Command, b'{"v": 1, "name": "Rm -rf"}'),
        (p.OtaGet, b'{"v": 1, "sha256": "' + SHA.encode() + b'", "offset": 0, "length": 99999999}'),
        (p.Status, b"[]"),
        (p.Status, b""),
    ],
)
def test_malformed_payloads_raise_one_clear_error_type(model, payload):
    with pytest.raises(p.ProtocolError) as info:
        p.decode(model, payload)
    assert model.__name__ in str(info.value)


def test_decode_for_topic_picks_the_schema_and_keeps_ota_blocks_raw():
    topic, msg = p.decode_for_topic(p.status_topic(DEV), p.Status(state="offline").encode())
    assert topic.kind is p.TopicKind.STATUS and isinstance(msg, p.Status) and msg.state == "offline"
    _, block = p.decode_for_topic(p.ota_data_topic(DEV, SHA, 0), b"\x00\x01binary")
    assert block == b"\x00\x01binary"
    with pytest.raises(p.ProtocolError):
        p.decode_for_topic(p.telemetry_topic(DEV), p.Status(state="online").encode())


def test_config_hash_is_stable_and_sensitive_to_every_field():
    a = p.PipelineConfig()
    assert p.config_hash(a) == p.config_hash(p.PipelineConfig())
    assert p.config_hash(a) != p.config_hash(p.PipelineConfig(score_threshold=0.6))
    assert p.config_hash(a) != p.config_hash(p.PipelineConfig(device="GPU"))


def test_enroll_request_rejects_a_short_token_and_unknown_fields():
    with pytest.raises(Exception):
        p.EnrollRequest(token="x", csr="-" * 100)
    with pytest.raises(p.ProtocolError):
        p.decode(p.EnrollRequest, json.dumps({"token": "t" * 20, "csr": "c" * 80, "admin": True}))
