"""The MQTT protocol (v1) and enrollment schemas: the one contract every edgefleet program shares.

Topics are built and parsed only here, so a typo cannot silently create a topic nobody listens to
(Frigate learned this the hard way). Every JSON payload is a pydantic model with ``v == 1`` and a
timestamp; :func:`decode` turns any bad payload into one error type, :class:`ProtocolError`, so
callers can log, count and drop it without guessing which exception a parser might raise.

The contract lives in three modules: ``topics``, ``messages`` and ``enrollment``; import from the package.
"""

from __future__ import annotations

from edgefleet.protocol.topics import (  # noqa: F401
    PROTOCOL_VERSION, TOPIC_ROOT, SHARED_GROUP, DEFAULT_OTA_BLOCK, MAX_OTA_BLOCK, MAX_OTA_BLOCKS_PER_GET,
    MAX_PAYLOAD, ProtocolError,
    validate_device_id, validate_request_id, validate_sha256, TopicKind, Topic, device_prefix, status_topic,
    telemetry_topic, events_topic, twin_desired_topic, twin_reported_topic, cmd_topic, cmd_reply_topic,
    ota_get_topic, ota_data_topic, device_subscriptions, server_subscriptions, parse_topic, topic_matches,
)
from edgefleet.protocol.messages import (  # noqa: F401
    TS_FLOOR, MAX_CLOCK_SKEW, utcnow, check_timestamp, Message, Status, ModelRef, PipelineConfig, config_hash,
    TwinDesired, TwinReported, Telemetry, Event, Command, CommandReply, OtaGet, PAYLOAD_FOR_TOPIC, decode,
    decode_for_topic, decode_payload,
)
from edgefleet.protocol.enrollment import (  # noqa: F401
    CaInfo, EnrollRequest, EnrollResponse,
)
