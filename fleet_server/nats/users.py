"""The broker's users file: the server's identity and one user per device, each with bcrypt hashes only.

The database keeps only SHA-256 of each device's MQTT password, so the plaintext cannot be written here;
enrollment stores a bcrypt hash beside it (`bcrypt_hash`) and nats-server checks CONNECT passwords
against that. The cost is the minimum, 4: bcrypt's cost defends human-chosen passwords, while these are
256-bit random secrets; and nats-server pays it once per device in every reconnect storm and again for
every *online* device at every reload, since a reload re-checks each connected client against the new
users (both measured in bench/nats_users_bench.py).

Permissions are allow-lists only (nats-server before 2.12.12 let retained messages through subscribe
*deny* rules; find_binary refuses those versions, and allow-lists do not depend on that fix). A device
may publish exactly what protocol v1 sends from a device and subscribe exactly what it receives, under
its own `edgefleet/v1/{device_id}/`. No `$MQTT.` internal subject is granted: nats-server runs QoS 1
deliveries, persistent sessions, retained messages and wills on internal clients, and the tests in
tests/fleet_server/nats/ show each of them working with these lists alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from edgefleet import protocol as p
from fleet_server.nats.config import quote
from edgefleet.files import atomic_write

SERVER_USER = "edgefleet-server"
BCRYPT_COST = 4
_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$")

# Subjects under a device's own prefix, by direction (MQTT `a/b` is NATS `a.b`, `+` is `*`, `#` is `>`).
DEVICE_PUBLISH = ("status", "telemetry", "events", "twin.reported", "cmd.*.reply", "ota.get")
# `ota/data/#` is how the agent subscribes; NATS turns it into `ota.data` and `ota.data.>`, both needed.
DEVICE_SUBSCRIBE = ("twin.desired", "cmd.*", "ota.data", "ota.data.>")
SERVER_SUBJECTS = ("edgefleet.>",)


def to_subject(topic_filter: str) -> str:
    """The NATS subject nats-server uses for an MQTT topic or filter."""
    if "." in topic_filter or " " in topic_filter:
        raise ValueError(f"{topic_filter!r}: '.' and spaces have no NATS form in our topics")
    return topic_filter.replace("/", ".").replace("+", "*").replace("#", ">")


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


@dataclass(frozen=True)
class DeviceUser:
    """A device's broker login: its id (also its username) and the bcrypt hash of its MQTT password."""

    device_id: str
    password_hash: str

    def __post_init__(self) -> None:
        p.validate_device_id(self.device_id)
        check_bcrypt_hash(self.password_hash)


def check_bcrypt_hash(value: str) -> str:
    """Refuse anything but a bcrypt hash: a plaintext or `sha256:` value here would lock the device out."""
    if not isinstance(value, str) or not _BCRYPT.match(value):
        raise ValueError("expected a bcrypt hash ($2a$/$2b$/$2y$, cost 04-31)")
    return value


def bcrypt_hash(secret: str, cost: int = BCRYPT_COST) -> str:
    """The bcrypt hash to store at enrollment (and for the server's own password) for nats-server."""
    raw = secret.encode("utf-8")
    if len(raw) > 72:
        raise ValueError("bcrypt reads at most 72 bytes; our secrets are 43")
    return bcrypt.hashpw(raw, bcrypt.gensalt(cost)).decode("ascii")


def device_permissions(device_id: str) -> Permissions:
    prefix = to_subject(p.device_prefix(device_id))
    return Permissions(publish=tuple(prefix + s for s in DEVICE_PUBLISH),
                       subscribe=tuple(prefix + s for s in DEVICE_SUBSCRIBE))


def server_permissions() -> Permissions:
    """All fleet subjects, and nothing else: `$share/...` stays refused (see the tests) so the server's MQTT
    bridge falls back to plain subscriptions instead of holding a filter that never delivers."""
    return Permissions(publish=SERVER_SUBJECTS, subscribe=SERVER_SUBJECTS)


def _list(items: Iterable[str]) -> str:
    return "[" + ", ".join(quote(i) for i in items) + "]"


def render_user(name: str, password_hash: str, perms: Permissions, mqtt_only: bool) -> str:
    parts = [f"user: {quote(name)}", f"password: {quote(check_bcrypt_hash(password_hash))}"]
    if mqtt_only:
        parts.append('allowed_connection_types: ["MQTT"]')
    parts.append(f"permissions: {{publish: {{allow: {_list(perms.publish)}}}, "
                 f"subscribe: {{allow: {_list(perms.subscribe)}}}}}")
    return "  {" + ", ".join(parts) + "}"


def render_users(server_hash: str, devices: Iterable[DeviceUser]) -> str:
    """The users file's text: a `users` list for the `authorization` block of nats.conf."""
    lines = ["users = [", render_user(SERVER_USER, server_hash, server_permissions(), mqtt_only=False)]
    seen: set[str] = set()
    for dev in devices:
        if dev.device_id in seen or dev.device_id == SERVER_USER:
            raise ValueError(f"device {dev.device_id!r} listed twice (or named like the server)")
        seen.add(dev.device_id)
        lines.append(render_user(dev.device_id, dev.password_hash, device_permissions(dev.device_id),
                                 mqtt_only=True))
    lines.append("]")
    return "\n".join(lines) + "\n"


def as_device_users(devices: Iterable[DeviceUser | tuple[str, str]]) -> list[DeviceUser]:
    """Accept `DeviceUser`s or (device_id, bcrypt_hash) pairs, validating each."""
    return [d if isinstance(d, DeviceUser) else DeviceUser(*d) for d in devices]


def write_users_file(path: Path, server_hash: str, devices: Iterable[DeviceUser | tuple[str, str]]) -> int:
    """Atomically replace the users file (0600); returns the number of devices written."""
    users = as_device_users(devices)
    atomic_write(path, render_users(server_hash, users), 0o600)  # password hashes: owner only
    return len(users)
