"""The capture's states, their allowed transitions, its retry policy and its counters: the values the capture
thread and the hot-plug camera manager share."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from edgefleet.backoff import Backoff


class CaptureState(StrEnum):
    IDLE = "idle"
    OPENING = "opening"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    WAITING_FOR_DEVICE = "waiting_for_device"
    ENDED = "ended"
    STOPPED = "stopped"


S = CaptureState
ALLOWED: dict[CaptureState, frozenset[CaptureState]] = {
    S.IDLE: frozenset({S.OPENING, S.STOPPED}),
    S.OPENING: frozenset({S.STREAMING, S.RECONNECTING, S.WAITING_FOR_DEVICE, S.ENDED, S.STOPPED}),
    S.STREAMING: frozenset({S.RECONNECTING, S.WAITING_FOR_DEVICE, S.ENDED, S.STOPPED}),
    S.RECONNECTING: frozenset({S.RECONNECTING, S.STREAMING, S.WAITING_FOR_DEVICE, S.ENDED, S.STOPPED}),
    S.WAITING_FOR_DEVICE: frozenset({S.OPENING, S.STOPPED}),
    S.ENDED: frozenset(),
    S.STOPPED: frozenset(),
}
"""Every state change the capture may make; anything else is a bug and raises."""
TERMINAL = frozenset({S.ENDED, S.STOPPED})


@dataclass(frozen=True)
class ReconnectPolicy(Backoff):
    """How a capture retries its source (edgefleet.backoff), plus ``device_poll_s``: how often a capture that
    found its device missing looks for it again by itself."""

    device_poll_s: float = 2.0


@dataclass(frozen=True)
class CaptureStats:
    """Monotonic counters (never reset, so a collector can alert on silence) plus the current state."""

    captured: int
    delivered: int
    dropped: int
    pending: int
    reconnects: int
    state: str
    last_error: str | None
