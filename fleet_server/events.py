"""`FleetEvents`: the in-process hook for live views (the dashboard's server-sent events build on it).

The server tells subscribers, as it happens, that a device's telemetry was stored (`telemetry`), a device's
status changed (`status`) and an alert changed state (`alert`). Why a callback list and not a queue per
listener: the publishers are the MQTT thread and the alert evaluator, which must never wait on a slow reader,
so a subscriber's callback runs on the publisher's thread and must only hand the event on (put it on its own
queue, `loop.call_soon_threadsafe`, ...). A callback that raises is logged and stays subscribed; others
still get the event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

EventKind = Literal["telemetry", "status", "alert"]


@dataclass(frozen=True)
class FleetEvent:
    """`telemetry`: data = the stored snapshot (JSON-ready, camera URLs masked as for a viewer key);
    `status`: data = {"state": "online" | "offline"}; `alert`: data = the alert's API view plus
    `transition` (`firing` | `resolved` | `acknowledged`). `device_id` is None for fleet-wide alerts."""

    kind: EventKind
    device_id: str | None
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[FleetEvent], None]


class FleetEvents:
    """`Fleet.events`. `subscribe(callback)` returns the function that unsubscribes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def publish(self, event: FleetEvent) -> None:
        for callback in self._subscribers:  # a tuple swapped whole under the lock: safe to iterate without it
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - one broken listener must not stop ingest or the others
                log.exception("fleet event subscriber %r failed on a %s event", callback, event.kind)
