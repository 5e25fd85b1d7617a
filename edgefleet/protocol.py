"""The MQTT protocol (v1) and enrollment schemas: the one contract every edgefleet program shares.

Topics are built and parsed only here, so a typo cannot silently create a topic nobody listens to
(Frigate learned this the hard way). Every JSON payload is a pydantic model with ``v == 1`` and a
timestamp; :func:`decode` turns any bad payload into one error type, :class:`ProtocolError`, so
callers can log, count and drop it without guessing which exception a parser might raise.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PROTOCOL_VERSION = 1
TOPIC_ROOT = "edgefleet/v1"
SHARED_GROUP = "fleet"
DEFAULT_OTA_BLOCK = 256 * 1024
MAX_OTA_BLOCK = 1024 * 1024

_DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{2,62}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ProtocolError(ValueError):
    """A topic or payload that does not follow protocol v1. Log it, count it, drop it."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def validate_device_id(device_id: str) -> str:
    """Device ids become topic levels and certificate CNs, so they may not hold `/`, `+`, `#` or spaces."""
    if not isinstance(device_id, str) or not _DEVICE_ID.match(device_id):
        raise ProtocolError(
            f"invalid device id {device_id!r}: use 3-63 of a-z 0-9 _ -, starting with a letter or digit"
        )
    return device_id


def validate_request_id(request_id: str) -> str:
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise ProtocolError(f"invalid request id {request_id!r}: use 1-64 of A-Z a-z 0-9 _ -")
    return request_id


def validate_sha256(value: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ProtocolError(f"invalid sha256 {value!r}: expected 64 lowercase hex digits")
    return value


# --------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------


class TopicKind(str, Enum):
    STATUS = "status"
    TELEMETRY = "telemetry"
    EVENTS = "events"
    TWIN_DESIRED = "twin/desired"
    TWIN_REPORTED = "twin/reported"
    CMD = "cmd"
    CMD_REPLY = "cmd/reply"
    OTA_GET = "ota/get"
    OTA_DATA = "ota/data"


@dataclass(frozen=True)
class Topic:
    """A parsed edgefleet topic. Build one with the helpers below, render it with :meth:`render`."""

    device_id: str
    kind: TopicKind
    request_id: str | None = None
    sha256: str | None = None
    offset: int | None = None

    def render(self) -> str:
        base = f"{TOPIC_ROOT}/{self.device_id}"
        if self.kind is TopicKind.CMD:
            return f"{base}/cmd/{self.request_id}"
        if self.kind is TopicKind.CMD_REPLY:
            return f"{base}/cmd/{self.request_id}/reply"
        if self.kind is TopicKind.OTA_DATA:
            return f"{base}/ota/data/{self.sha256}/{self.offset}"
        return f"{base}/{self.kind.value}"

    def __str__(self) -> str:
        return self.render()


def device_prefix(device_id: str) -> str:
    """The subtree a device may use, and nothing outside it."""
    return f"{TOPIC_ROOT}/{validate_device_id(device_id)}/"


def status_topic(device_id: str) -> str:
    return Topic(validate_device_id(device_id), TopicKind.STATUS).render()


def telemetry_topic(device_id: str) -> str:
    return Topic(validate_device_id(device_id), TopicKind.TELEMETRY).render()


def events_topic(device_id: str) -> str:
    return Topic(validate_device_id(device_id), TopicKind.EVENTS).render()


def twin_desired_topic(device_id: str) -> str:
    return Topic(validate_device_id(device_id), TopicKind.TWIN_DESIRED).render()


def twin_reported_topic(device_id: str) -> str:
    return Topic(validate_device_id(device_id), TopicKind.TWIN_REPORTED).render()


def cmd_topic(device_id: str, request_id: str) -> str:
    return Topic(validate_device_id(device_id), TopicKind.CMD, request_id=validate_request_id(request_id)).render()


def cmd_reply_topic(device_id: str, request_id: str) -> str:
    return Topic(
        validate_device_id(device_id), TopicKind.CMD_REPLY, request_id=validate_request_id(request_id)
    ).render()


def ota_get_topic(device_id: str) -> str:
    return Topic(validate_device_id(device_id), TopicKind.OTA_GET).render()


def ota_data_topic(device_id: str, sha256: str, offset: int) -> str:
    if not isinstance(offset, int) or offset < 0:
        raise ProtocolError(f"invalid OTA offset {offset!r}")
    return Topic(
        validate_device_id(device_id), TopicKind.OTA_DATA, sha256=validate_sha256(sha256), offset=offset
    ).render()


# Subscription filters --------------------------------------------------------------------------

def device_subscriptions(device_id: str) -> list[str]:
    """What an agent subscribes to: its desired twin, its commands and its OTA blocks."""
    prefix = device_prefix(device_id)
    return [f"{prefix}twin/desired", f"{prefix}cmd/+", f"{prefix}ota/data/#"]


def server_subscriptions(shared: bool = True) -> list[str]:
    """What the server subscribes to. Telemetry goes through a shared subscription so replicas split it."""
    telemetry = f"{TOPIC_ROOT}/+/telemetry"
    if shared:
        telemetry = f"$share/{SHARED_GROUP}/{telemetry}"
    return [
        f"{TOPIC_ROOT}/+/status",
        telemetry,
        f"{TOPIC_ROOT}/+/events",
        f"{TOPIC_ROOT}/+/twin/reported",
        f"{TOPIC_ROOT}/+/cmd/+/reply",
        f"{TOPIC_ROOT}/+/ota/get",
    ]


def parse_topic(topic: str) -> Topic:
    """Parse any edgefleet v1 topic; raise :class:`ProtocolError` for anything else."""
    if not isinstance(topic, str):
        raise ProtocolError(f"topic must be a string, got {type(topic).__name__}")
    if topic.startswith("$share/"):
        raise ProtocolError(f"{topic!r} is a subscription filter, not a topic")
    root = TOPIC_ROOT + "/"
    if not topic.startswith(root):
        raise ProtocolError(f"topic {topic!r} is not under {root}")
    parts = topic[len(root):].split("/")
    device_id, rest = parts[0], parts[1:]
    validate_device_id(device_id)
    tail = "/".join(rest)
    simple = {k.value: k for k in (TopicKind.STATUS, TopicKind.TELEMETRY, TopicKind.EVENTS,
                                   TopicKind.TWIN_DESIRED, TopicKind.TWIN_REPORTED, TopicKind.OTA_GET)}
    if tail in simple:
        return Topic(device_id, simple[tail])
    if len(rest) == 2 and rest[0] == "cmd":
        return Topic(device_id, TopicKind.CMD, request_id=validate_request_id(rest[1]))
    if len(rest) == 3 and rest[0] == "cmd" and rest[2] == "reply":
        return Topic(device_id, TopicKind.CMD_REPLY, request_id=validate_request_id(rest[1]))
    if len(rest) == 4 and rest[:2] == ["ota", "data"]:
        if not rest[3].isdigit():
            raise ProtocolError(f"invalid OTA offset in {topic!r}")
        return Topic(device_id, TopicKind.OTA_DATA, sha256=validate_sha256(rest[2]), offset=int(rest[3]))
    raise ProtocolError(f"unknown edgefleet topic {topic!r}")


def topic_matches(filter_: str, topic: str) -> bool:
    """MQTT filter matching with `+`, `#` and `$share/<group>/` prefixes (MQTT 3.1.1 section 4.7)."""
    if filter_.startswith("$share/"):
        parts = filter_.split("/", 2)
        if len(parts) < 3:
            return False
        filter_ = parts[2]
    f_levels, t_levels = filter_.split("/"), topic.split("/")
    if topic.startswith("$") and f_levels[0] in ("+", "#"):
        return False
    for i, level in enumerate(f_levels):
        if level == "#":
            return i == len(f_levels) - 1
        if i >= len(t_levels):
            return False
        if level != "+" and level != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    """Base of every JSON message: a protocol version and when it was made."""

    v: Literal[1] = Field(1, description="protocol version")
    ts: datetime = Field(default_factory=utcnow, description="when the sender made the message (UTC)")

    def encode(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class Status(Message):
    """Retained; the Last Will is the same message with ``state='offline'``."""

    state: Literal["online", "offline"]
    agent_version: str = ""
    reason: str | None = Field(None, description="why the device went offline, when it knows")


class ModelRef(_Strict):
    name: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=64)
    sha256: str
    size: int | None = Field(None, ge=0, description="package size in bytes, so the agent can plan its OTA")

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        return validate_sha256(v)


class PipelineConfig(_Strict):
    """What the agent's pipeline may be told to change without a restart."""

    backend: str | None = Field(None, description="onnxruntime | openvino; None lets the agent choose")
    device: str | None = Field(None, description="CPU | GPU | NPU | AUTO; None lets the agent choose")
    precision: Literal["fp32", "int8"] | None = Field(None, description="which variant of the model to prefer")
    score_threshold: float = Field(0.5, ge=0.0, le=1.0, description="results below it are not events")
    low_confidence_below: float = Field(0.0, ge=0.0, le=1.0, description="frames below it are sent for data collection")
    top_k: int = Field(3, ge=1, le=100)
    telemetry_interval_s: float = Field(10.0, gt=0.0, le=3600.0)
    max_fps: float | None = Field(None, gt=0.0)


def config_hash(pipeline: PipelineConfig) -> str:
    """A short stable hash of a pipeline config; desired and reported agree when theirs match."""
    canonical = json.dumps(pipeline.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class TwinDesired(Message):
    """Retained on the device's `twin/desired` topic; ``revision`` increases with every change."""

    revision: int = Field(ge=0)
    model: ModelRef | None = None
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    camera: str | None = Field(None, description="source to run: synthetic, a file, /dev/videoN, usb:N, rtsp://...")
    properties: dict[str, Any] = Field(default_factory=dict, description="free-form values for operators' own use")


class TwinReported(Message):
    """What runs now. ``desired_revision`` is the last desired revision the agent processed."""

    desired_revision: int | None = Field(None, ge=0)
    model: ModelRef | None = None
    backend: str | None = None
    device: str | None = None
    camera: str | None = None
    config_hash: str | None = None
    slot: Literal["A", "B"] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    last_error: str | None = None


class Telemetry(Message):
    """A metrics snapshot. Counters are monotonic since the agent started so silence can be alerted on."""

    device_id: str
    model_name: str | None = None
    model_version: str | None = None
    backend: str | None = None
    device: str | None = None
    camera_id: str | None = None
    camera_state: str | None = None
    frames_captured: int = Field(0, ge=0)
    frames_inferred: int = Field(0, ge=0)
    frames_dropped: int = Field(0, ge=0)
    fps: float = Field(0.0, ge=0.0)
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    latency_ms_p99: float | None = None
    inference_ms_p50: float | None = None
    inference_ms_p95: float | None = None
    cpu_percent: float | None = None
    memory_mb: float | None = None
    temperature_c: float | None = None
    outbox_depth: int = Field(0, ge=0)
    outbox_dropped: int = Field(0, ge=0)
    uptime_s: float = Field(0.0, ge=0.0)

    @field_validator("device_id")
    @classmethod
    def _device(cls, v: str) -> str:
        return validate_device_id(v)


class Event(Message):
    """Something worth keeping: a detection over threshold, a low-confidence frame, a camera or model change."""

    kind: Literal["detection", "classification", "low_confidence", "camera", "model", "error", "outbox"]
    camera_id: str | None = None
    message: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Command(Message):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    args: dict[str, Any] = Field(default_factory=dict)
    deadline: datetime | None = Field(None, description="the device must not start the command after this")


class CommandReply(Message):
    ok: bool
    result: Any = None
    error: str | None = None


class OtaGet(Message):
    sha256: str
    offset: int = Field(ge=0)
    length: int = Field(gt=0, le=MAX_OTA_BLOCK)

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        return validate_sha256(v)


PAYLOAD_FOR_TOPIC: dict[TopicKind, type[Message]] = {
    TopicKind.STATUS: Status,
    TopicKind.TELEMETRY: Telemetry,
    TopicKind.EVENTS: Event,
    TopicKind.TWIN_DESIRED: TwinDesired,
    TopicKind.TWIN_REPORTED: TwinReported,
    TopicKind.CMD: Command,
    TopicKind.CMD_REPLY: CommandReply,
    TopicKind.OTA_GET: OtaGet,
}

M = TypeVar("M", bound=BaseModel)


def decode(model: type[M], payload: bytes | str) -> M:
    """Validate a JSON payload as ``model``; every failure becomes :class:`ProtocolError`."""
    try:
        text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray, memoryview)) else payload
        if not isinstance(text, str):
            raise ProtocolError(f"payload must be bytes or str, got {type(payload).__name__}")
        return model.model_validate_json(text)
    except ProtocolError:
        raise
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{model.__name__}: payload is not UTF-8 ({exc.reason})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
        raise ProtocolError(
            f"{model.__name__}: {where}: {first.get('msg')} ({exc.error_count()} error(s))"
        ) from None


def decode_for_topic(topic: str, payload: bytes | str) -> tuple[Topic, Message | bytes]:
    """Parse a topic and its payload together. OTA data blocks stay raw bytes."""
    parsed = parse_topic(topic)
    if parsed.kind is TopicKind.OTA_DATA:
        return parsed, bytes(payload if not isinstance(payload, str) else payload.encode())
    return parsed, decode(PAYLOAD_FOR_TOPIC[parsed.kind], payload)


# --------------------------------------------------------------------------------------------
# Enrollment (HTTP, POST /api/v1/enroll): shared here because the agent must not import the server
# --------------------------------------------------------------------------------------------


class EnrollRequest(_Strict):
    token: str = Field(min_length=8, max_length=256)
    csr: str = Field(min_length=64, description="PEM certificate signing request; the key stays on the device")
    name: str | None = Field(None, max_length=128, description="a human name for the device")
    hardware: dict[str, Any] = Field(default_factory=dict, description="facts: cpu, memory, accelerators, cameras")


class EnrollResponse(_Strict):
    device_id: str
    certificate: str = Field(description="PEM device certificate signed by the fleet CA, CN = device_id")
    ca_certificate: str
    signing_public_key: str = Field(description="PEM Ed25519 key that signs model packages")
    broker_url: str = Field(description="mqtt://host:port or mqtts://host:port")
    mqtt_username: str
    mqtt_password: str
    tags: dict[str, str] = Field(default_factory=dict)
