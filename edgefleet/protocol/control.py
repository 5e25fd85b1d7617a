"""Signed control messages: everything the server sends a device that changes it (the desired twin, which also
carries over-the-air model offers, and commands) is sealed with the server's Ed25519 control key, whose public
half the device pinned at enrollment.

Why: the broker is not the only lock. A broker left open (Mosquitto's stock configuration allows anonymous
clients), a stolen server password or a compromised broker would otherwise let anyone publish a desired twin or
a `reboot` to every device. With sealed messages such a broker can delay or drop control messages, never forge
or alter them.

A sealed payload is JSON ``{"v": 1, "seq": N, "body": "<the message's own JSON>", "sig": "<base64>"}``. The
signature covers a fixed context, the topic (so a message for one device, or one command's request id, cannot
be replayed onto another), the sequence number and the body. ``seq`` is the server's clock in microseconds,
made strictly increasing per process: a device refuses a desired twin older than the newest it accepted
(a replay of yesterday's twin), and a replayed command is caught by its signed deadline and its request id.
Server replicas therefore need synchronised clocks (NTP), as TLS already requires.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, ValidationError

from edgefleet.files import atomic_write
from edgefleet.protocol.messages import _Strict
from edgefleet.protocol.topics import MAX_PAYLOAD, ProtocolError, Topic, TopicKind

SIGNED_KINDS = frozenset({TopicKind.TWIN_DESIRED, TopicKind.CMD})
CONTEXT = b"edgefleet-control-v1\n"
ENVELOPE_OVERHEAD = 512  # v, seq, sig and the escaping of the body's quotes fit well within this per KiB below


def _envelope_cap(kind: TopicKind) -> int:
    """A sealed body is JSON inside a JSON string: quotes escaped, so allow twice the body's cap."""
    return 2 * MAX_PAYLOAD[kind] + ENVELOPE_OVERHEAD


class Sealed(_Strict):
    v: int = Field(1, ge=1, le=1)
    seq: int = Field(ge=0, lt=2**63)
    body: str = Field(max_length=64 * 1024)
    sig: str = Field(min_length=86, max_length=88)


def signed_bytes(topic: str, seq: int, body: bytes) -> bytes:
    return CONTEXT + topic.encode() + b"\n" + str(seq).encode() + b"\n" + body


class SequenceClock:
    """Microseconds since the epoch, strictly increasing within this process even when the clock is not."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last


class ControlSigner:
    """The server's half: seals a message body for one topic."""

    def __init__(self, key: Ed25519PrivateKey, clock: SequenceClock | None = None) -> None:
        self.key = key
        self.public_key = key.public_key()
        self._clock = clock or SequenceClock()

    def seal(self, topic: str, body: bytes) -> bytes:
        seq = self._clock.next()
        sig = self.key.sign(signed_bytes(topic, seq, body))
        envelope = {"v": 1, "seq": seq, "body": body.decode(), "sig": base64.b64encode(sig).decode()}
        return json.dumps(envelope, separators=(",", ":")).encode()


def unseal(topic: Topic, raw_topic: str, payload: bytes, key: Ed25519PublicKey | None) -> tuple[int, bytes]:
    """The sequence number and the body of a sealed payload; ProtocolError (naming what is wrong, never the
    payload) for anything unsigned, signed by another key, altered, or meant for another topic."""
    if key is None:
        raise ProtocolError("unsigned control message refused: this device has no pinned server key (re-enroll it)")
    if len(payload) > _envelope_cap(topic.kind):
        raise ProtocolError(f"sealed {topic.kind.value} payload of {len(payload)} bytes is over its cap")
    try:
        sealed = Sealed.model_validate_json(payload)
        sig = base64.b64decode(sealed.sig, validate=True)
    except (ValidationError, binascii.Error, ValueError):
        raise ProtocolError(f"unsigned or malformed {topic.kind.value} message refused (a control message "
                            "must be sealed by the server)") from None
    body = sealed.body.encode()
    try:
        key.verify(sig, signed_bytes(raw_topic, sealed.seq, body))
    except InvalidSignature:
        raise ProtocolError(f"{topic.kind.value} message with a bad signature refused (not signed by this "
                            "fleet's server key, altered, or sent to another topic)") from None
    return sealed.seq, body


class ReplayGuard:
    """The newest desired-twin sequence number this device accepted, kept in its state dir across restarts: a
    desired twin older than that is a replay (an equal one is the broker re-sending the retained message)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        try:
            self._last = int(json.loads(path.read_text())["desired_seq"])
        except (OSError, ValueError, KeyError, TypeError):
            self._last = 0

    @property
    def last(self) -> int:
        return self._last

    def admit(self, kind: TopicKind, seq: int) -> None:
        if kind is not TopicKind.TWIN_DESIRED:
            return  # commands: the signed deadline and the request id stop replays
        with self._lock:
            if seq < self._last:
                raise ProtocolError(f"replayed desired twin refused (sequence {seq} is older than the "
                                    f"newest accepted, {self._last})")
            if seq > self._last:
                self._last = seq
                atomic_write(self._path, json.dumps({"desired_seq": seq}).encode())


class ControlVerifier:
    """The device's half: the pinned server key and the replay guard, applied to each control message."""

    def __init__(self, key: Ed25519PublicKey | None, guard: ReplayGuard | None = None) -> None:
        self.key = key
        self.guard = guard

    def open(self, topic: Topic, raw_topic: str, payload: bytes) -> bytes:
        seq, body = unseal(topic, raw_topic, payload, self.key)
        if self.guard is not None:
            self.guard.admit(topic.kind, seq)
        return body
