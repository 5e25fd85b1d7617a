"""Protocol v1 JSON messages: every payload is a pydantic model with ``v == 1`` and a timestamp, and
:func:`decode` turns any bad payload into one error type, :class:`ProtocolError`, so callers can log, count and
drop it without guessing which exception a parser might raise."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgefleet.protocol.topics import (
    MAX_OTA_BLOCK, MAX_OTA_BLOCKS_PER_GET, MAX_PAYLOAD, ProtocolError, Topic, TopicKind, parse_topic, validate_device_id, validate_sha256,
)


# A message's time must be timezone-aware and plausible: a naive time cannot be ordered against others, and one
# far in the future would sort as "newest" forever. Old ones are allowed back to the floor: the agent's outbox
# forwards what it kept while offline, possibly for weeks.
TS_FLOOR = datetime(2020, 1, 1, tzinfo=timezone.utc)
MAX_CLOCK_SKEW = timedelta(hours=24)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def check_timestamp(value: datetime | None) -> datetime | None:
    """Refuse naive or implausible times (see TS_FLOOR and MAX_CLOCK_SKEW)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
    if value < TS_FLOOR or value > utcnow() + MAX_CLOCK_SKEW:
        raise ValueError(f"timestamp {value.isoformat()} is outside {TS_FLOOR.date()} .. now + {MAX_CLOCK_SKEW}")
    return value


def json_size_at_most(limit: int):  # noqa: ANN201 - a validator factory
    """A validator bounding a free-form JSON value by its encoded size, so no field can carry megabytes."""

    def check(value: Any) -> Any:
        size = len(json.dumps(value, separators=(",", ":"), default=str))
        if size > limit:
            raise ValueError(f"too large: {size} bytes encoded, at most {limit}")
        return value

    return check


Timestamp = Annotated[datetime, AfterValidator(check_timestamp)]
Properties = Annotated[dict[str, Any], AfterValidator(json_size_at_most(4096))]
EventData = Annotated[dict[str, Any], AfterValidator(json_size_at_most(16_384))]
CommandArgs = Annotated[dict[str, Any], AfterValidator(json_size_at_most(16_384))]
ReplyResult = Annotated[Any, AfterValidator(json_size_at_most(768 * 1024))]
ShortText = Annotated[str, Field(max_length=128)]
Text = Annotated[str, Field(max_length=1000)]


class _Strict(BaseModel):
    # allow_inf_nan=False: a NaN latency would be stored as NULL and an infinite one breaks every chart
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Message(_Strict):
    """Base of every JSON message: a protocol version and when it was made."""

    v: Literal[1] = Field(1, description="protocol version")
    ts: Timestamp = Field(default_factory=utcnow, description="when the sender made the message (timezone-aware)")

    def encode(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class Status(Message):
    """Retained; the Last Will is the same message with ``state='offline'``."""

    state: Literal["online", "offline"]
    agent_version: ShortText = ""
    reason: Text | None = Field(None, description="why the device went offline, when it knows")


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

    backend: ShortText | None = Field(None, description="onnxruntime | openvino; None lets the agent choose")
    device: ShortText | None = Field(None, description="CPU | GPU | NPU | AUTO; None lets the agent choose")
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
    camera: Text | None = Field(None, description="source to run: synthetic, a file, /dev/videoN, usb:N, rtsp://...")
    properties: Properties = Field(default_factory=dict, description="free-form values for operators' own use")


class TwinReported(Message):
    """What runs now. ``desired_revision`` is the last desired revision the agent processed."""

    desired_revision: int | None = Field(None, ge=0)
    model: ModelRef | None = None
    backend: ShortText | None = None
    device: ShortText | None = None
    camera: Text | None = None
    config_hash: ShortText | None = None
    slot: Literal["A", "B"] | None = None
    properties: Properties = Field(default_factory=dict)
    last_error: Text | None = None


class Telemetry(Message):
    """A metrics snapshot. Counters are monotonic since the agent started so silence can be alerted on."""

    device_id: str
    model_name: ShortText | None = None
    model_version: ShortText | None = None
    backend: ShortText | None = None
    device: ShortText | None = None
    camera_id: Text | None = None
    camera_state: ShortText | None = None
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

    kind: Literal["detection", "classification", "low_confidence", "camera", "model", "error", "outbox", "connection"]
    camera_id: Text | None = None
    message: Text | None = None
    data: EventData = Field(default_factory=dict)


class Command(Message):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    args: CommandArgs = Field(default_factory=dict)
    deadline: Timestamp | None = Field(None, description="the device must not start the command after this")


class CommandReply(Message):
    ok: bool
    result: ReplyResult = None
    error: Text | None = None


class OtaGet(Message):
    """Blocks ``offset``, ``offset + length``, ... (``count`` of them), each answered as its own ``ota/data``
    message: one request for a run of blocks halves the messages a download costs (each MQTT message is far
    dearer to both ends than its parsing)."""

    sha256: str
    offset: int = Field(ge=0)
    length: int = Field(gt=0, le=MAX_OTA_BLOCK)
    count: int = Field(1, ge=1, le=MAX_OTA_BLOCKS_PER_GET)

    def offsets(self) -> range:
        return range(self.offset, self.offset + self.count * self.length, self.length)

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
    """Parse a topic and its payload together. OTA data blocks stay raw bytes. A payload over its topic's
    cap (:data:`MAX_PAYLOAD`) is refused before it is parsed."""
    parsed = parse_topic(topic)
    return parsed, decode_payload(parsed, payload)


def decode_payload(parsed: Topic, payload: bytes | str) -> Message | bytes:
    """The payload of a topic already parsed (a receiver that looked at the topic first need not parse it twice)."""
    if len(payload) > MAX_PAYLOAD[parsed.kind]:
        raise ProtocolError(f"{parsed.kind.value} payload of {len(payload)} bytes is over its cap of "
                            f"{MAX_PAYLOAD[parsed.kind]}")
    if parsed.kind is TopicKind.OTA_DATA:
        return bytes(payload if not isinstance(payload, str) else payload.encode())
    return decode(PAYLOAD_FOR_TOPIC[parsed.kind], payload)
