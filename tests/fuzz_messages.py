"""Hypothesis strategies for hostile MQTT messages, shared by the server's and the agent's fuzz tests: random
bytes, JSON of the wrong shape, oversized payloads, the wrong protocol version, naive or absurd timestamps, and
topics for other devices or no device at all."""

from __future__ import annotations

import json

import paho.mqtt.client as mqtt
from hypothesis import strategies as st

from edgefleet import protocol as p

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ("v", "ts", "state", "device_id", "revision", "fps", "kind", "name", "args", "ok", "sha256", "offset",
          "length", "model", "pipeline", "camera", "properties", "data", "latency_ms_p50")


def _near_miss(body: dict) -> bytes:
    return json.dumps(body, default=str).encode()


PAYLOADS = st.one_of(
    st.binary(max_size=256),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6).map(_near_miss),
    st.sampled_from([
        b'{"v": 2, "state": "online"}', b'{"v": 1, "ts": "2026-06-01T12:00:00", "state": "online"}',
        b'{"v": 1, "ts": "9999-12-31T00:00:00Z", "state": "online"}', b'{"v": 1, "fps": NaN}',
        b'{"v": 1, "revision": -1}', b"\xff\xfe\xfd", b"null", b"[]", b'"text"',
    ]),
    st.integers(min_value=17_000, max_value=1_100_000).map(lambda n: b"{" + b" " * n + b"}"),
)


def topics(own: str, other: str) -> st.SearchStrategy[str]:
    """Topics a hostile peer might use: this device's, another device's, malformed and foreign ones."""
    builders = [p.status_topic, p.telemetry_topic, p.events_topic, p.twin_desired_topic, p.twin_reported_topic,
                p.ota_get_topic, lambda d: p.cmd_topic(d, "req-1"), lambda d: p.cmd_reply_topic(d, "req-1"),
                lambda d: p.ota_data_topic(d, "a" * 64, 0)]
    devices = st.sampled_from([own, other])
    return st.one_of(
        st.tuples(st.sampled_from(builders), devices).map(lambda pair: pair[0](pair[1])),
        st.text(max_size=40),
        st.sampled_from(["edgefleet/v1", "edgefleet/v1/", f"edgefleet/v1/{own}", f"edgefleet/v2/{own}/status",
                         f"edgefleet/v1/{own}/cmd", f"edgefleet/v1/{own}/ota/data/zz/0", "edgefleet/v1/+/status",
                         f"edgefleet/v1/{own}/status/extra", "$SYS/broker/load"]),
    )


def message(topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessage:
    """A real paho message object, as paho's network thread hands it to on_message."""
    msg = mqtt.MQTTMessage(topic=topic.encode("utf-8", "surrogatepass"))
    msg.payload = payload
    msg.retain = retain
    return msg
