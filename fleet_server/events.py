"""The in-process publish/subscribe hub behind the dashboard's live view (`GET /api/v1/events`).

Whoever learns something a person watching the fleet wants to see calls `hub.publish(kind, data)` once, from any
thread: the ingest (device status, telemetry, reported twins, command replies, as they arrive from MQTT), the
fleet (desired twins, once stored and sent), the rollout scheduler, the alert rules. Publishing never blocks and
never fails the caller: each subscriber (one open event stream) has a bounded queue on its own event loop, and a
subscriber that cannot keep up loses events and is told so once (`resync`), so it reloads what it shows instead
of showing a state that silently drifted. Nothing is stored: a stream sees what happens while it is open.

Browsers open an event stream with `EventSource`, which cannot send an `Authorization` header. Rather than put
the API key in the URL (where it lands in server logs, proxies and browser history and stays valid for months),
the page exchanges it for a ticket (`POST /api/v1/events/ticket`): random, single use, valid `ticket_ttl_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # events a slow subscriber may be behind before it is told to resync
TICKET_TTL_S = 30.0
# What the ingest's message kinds become on the stream (fleet_server.ingest calls `device_message`).
DEVICE_KINDS = {"status": "device.status", "telemetry": "device.telemetry", "reported": "device.reported"}


@dataclass(frozen=True)
class HubEvent:
    id: int
    kind: str
    data: dict[str, Any]


RESYNC = "resync"  # the kind a lagging subscriber gets in place of what it lost
_CLOSED = HubEvent(0, "closed", {})


class Subscription:
    """One open stream: events arrive in `queue` on the loop that subscribed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[HubEvent] = asyncio.Queue(maxsize=size)
        self.lagged = 0

    def offer(self, event: HubEvent) -> None:
        """On the subscriber's loop. A full queue drops the event and remembers that one was lost."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged += 1

    async def next(self) -> HubEvent:
        """The next event, or one `resync` event standing for all that were dropped since the last one."""
        if self.lagged and self.queue.empty():
            lost, self.lagged = self.lagged, 0
            return HubEvent(0, RESYNC, {"lost": lost})
        return await self.queue.get()


@dataclass(frozen=True)
class TicketGrant:
    """Who redeemed a ticket: the key's id (re-checked while the stream is open) and role (what it may see)."""

    key_id: int
    role: str


@dataclass
class _Tickets:
    ttl_s: float
    _open: dict[str, tuple[float, TicketGrant]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, grant: TicketGrant) -> str:
        ticket = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._open = {t: v for t, v in self._open.items() if v[0] > now}  # forget expired ones
            self._open[ticket] = (now + self.ttl_s, grant)
        return ticket

    def redeem(self, ticket: str) -> TicketGrant | None:
        """The grant of an unexpired ticket, which is then spent; None for anything else."""
        with self._lock:
            expires, grant = self._open.pop(ticket, (0.0, None))
        return grant if grant is not None and expires > time.monotonic() else None


class EventHub:
    def __init__(self, *, queue_size: int = QUEUE_SIZE, ticket_ttl_s: float = TICKET_TTL_S) -> None:
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.tickets = _Tickets(ticket_ttl_s)
        self.published = 0
        self._listeners: tuple[Callable[[HubEvent], None], ...] = ()

    def listen(self, callback: Callable[[HubEvent], None]) -> Callable[[], None]:
        """An in-process listener (no event loop needed); returns the function that removes it. It runs on the
        publisher's thread (the MQTT thread, the alert evaluator), so it must only hand the event on; one that
        raises is logged and stays, and the others still get the event."""
        with self._lock:
            self._listeners = (*self._listeners, callback)

        def stop() -> None:
            with self._lock:
                self._listeners = tuple(c for c in self._listeners if c is not callback)

        return stop

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, kind: str, data: Mapping[str, Any] | BaseModel) -> None:
        """Hand `data` (a JSON-able mapping or a pydantic model) to every open stream; from any thread, never
        blocking. A subscriber whose loop is gone is dropped."""
        try:
            body = data.model_dump(mode="json") if isinstance(data, BaseModel) else dict(data)
        except Exception:  # noqa: BLE001 - a publisher's bad value must not reach the MQTT thread
            log.exception("event %s not published: its data is not a mapping", kind)
            return
        with self._lock:
            event = HubEvent(next(self._ids), kind, body)
            subscribers, listeners = list(self._subscribers), self._listeners
            self.published += 1
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one broken listener must not stop ingest or the others
                log.exception("event listener %r failed on a %s event", listener, kind)
        for sub in subscribers:
            try:
                sub.loop.call_soon_threadsafe(sub.offer, event)
            except RuntimeError:  # its loop is closed: the server is stopping
                self._drop(sub)

    def device_message(self, kind: str, device_id: str, message: BaseModel | None) -> None:
        """What the ingest stored for a device (status, telemetry, reported twin), as `device.<kind>`; other
        kinds of message are not streamed."""
        if kind in DEVICE_KINDS and message is not None and (self._subscribers or self._listeners):
            # nobody watching (the usual case for a fleet's telemetry): not even the dump is made
            self.publish(DEVICE_KINDS[kind], {"device_id": device_id, kind: message.model_dump(mode="json")})

    def close(self) -> None:
        """End every open stream (server shutdown: an open stream would otherwise hold the server up)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            with contextlib.suppress(RuntimeError):
                sub.loop.call_soon_threadsafe(_close, sub)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """A subscription on the running event loop, for as long as the `with` block lasts."""
        sub = Subscription(asyncio.get_running_loop(), self._queue_size)
        with self._lock:
            self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)


def _close(sub: Subscription) -> None:
    """Make room if needed: the close must get through even to a full queue."""
    while sub.queue.full():
        sub.queue.get_nowait()
    sub.queue.put_nowait(_CLOSED)


def is_closed(event: HubEvent) -> bool:
    return event is _CLOSED
