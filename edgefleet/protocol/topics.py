"""Protocol v1 topics: built and parsed only here, so a typo cannot silently create a topic nobody listens to
(Frigate learned this the hard way), plus the identifiers that become topic levels."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

PROTOCOL_VERSION = 1
TOPIC_ROOT = "edgefleet/v1"
SHARED_GROUP = "fleet"
DEFAULT_OTA_BLOCK = 256 * 1024
MAX_OTA_BLOCK = 1024 * 1024
MAX_OTA_BLOCKS_PER_GET = 16  # one `ota/get` may ask for a run of this many consecutive blocks

_DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{2,62}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")



class ProtocolError(ValueError):
    """A topic or payload that does not follow protocol v1. Log it, count it, drop it."""



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


# The largest payload each topic may carry, in bytes: a cap per purpose, checked before any parsing, so one
# oversized message costs the receiver a length comparison and nothing more.
MAX_PAYLOAD: dict[TopicKind, int] = {
    TopicKind.STATUS: 2 * 1024,
    TopicKind.TELEMETRY: 8 * 1024,
    TopicKind.EVENTS: 32 * 1024,
    TopicKind.TWIN_DESIRED: 16 * 1024,
    TopicKind.TWIN_REPORTED: 16 * 1024,
    TopicKind.CMD: 32 * 1024,
    TopicKind.CMD_REPLY: 1024 * 1024,
    TopicKind.OTA_GET: 1024,
    TopicKind.OTA_DATA: MAX_OTA_BLOCK,
}


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
