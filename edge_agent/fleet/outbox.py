"""A bounded on-disk outbox: telemetry and events survive broker outages and agent restarts.

Every message is written to SQLite (WAL) before it is sent, delivered strictly in order with QoS 1, and
deleted only after the broker's PUBACK. Delivery goes in windows: the next window starts only when the
previous one is fully acknowledged, so a reconnect (where paho re-sends its own in-flight messages) can
never let a newer message overtake an older one. When the bound is reached the oldest telemetry is
dropped first (events are worth more), and every drop is counted in a persisted counter that the agent
reports.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TELEMETRY = "telemetry"
EVENT = "event"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    kind: str
    topic: str
    payload: bytes
    retain: bool


# publish(topic, payload, retain) -> (mid, ok); ok is False when the client refused the message outright.
Publisher = Callable[[str, bytes, bool], tuple[int, bool]]


class Outbox:
    """SQLite-backed FIFO with at-least-once delivery. Thread-safe; one delivery thread per outbox."""

    def __init__(self, path: Path, max_messages: int = 10_000, window: int = 20, max_rate: float = 100.0) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        if max_rate <= 0:
            raise ValueError("max_rate must be positive")
        # Draining a backlog after an outage is paced: the server refuses a device past its message rate
        # (fleet_server.mqtt_limits allows twice this), and a fleet coming back at once must not flood the ingest.
        self.max_rate = max_rate
        self._next_batch_at = 0.0
        self.path = Path(path)
        self.max_messages = max_messages
        self.window = window
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._inflight: dict[int, int] = {}  # paho mid -> row id
        self._wake = threading.Condition(self._lock)
        self._publisher: Publisher | None = None
        self._can_send: Callable[[], bool] = lambda: False
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._sending = False
        self._early_acks: set[int] = set()
        self.delivered = 0

    # producing --------------------------------------------------------------------------------
    def enqueue(self, kind: str, topic: str, payload: bytes, retain: bool = False) -> int:
        """Store a message for delivery; enforce the bound by dropping the oldest telemetry first."""
        if kind not in (TELEMETRY, EVENT):
            raise ValueError(f"unknown outbox kind {kind!r}")
        with self._lock:
            cur = self._db.execute("INSERT INTO outbox(kind, topic, payload, retain) VALUES (?, ?, ?, ?)",
                                   (kind, topic, bytes(payload), int(retain)))
            self._enforce_bound(int(cur.lastrowid))
            self._wake.notify_all()
            return int(cur.lastrowid)

    def _enforce_bound(self, newest: int) -> None:
        """Drop the oldest telemetry, then the oldest events, never a message in flight (it is already on its way
        and does not count against the bound) nor the one just written."""
        excess = self.depth - len(self._inflight) - self.max_messages
        if excess <= 0:
            return
        keep = set(self._inflight.values()) | {newest}
        dropped = 0
        for kind in (TELEMETRY, EVENT):
            if dropped >= excess:
                break
            rows = self._db.execute("SELECT id FROM outbox WHERE kind = ? ORDER BY id LIMIT ?",
                                    (kind, excess - dropped + len(keep))).fetchall()
            victims = [r[0] for r in rows if r[0] not in keep][: excess - dropped]
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(v,) for v in victims])
            dropped += len(victims)
        if dropped:
            self._db.execute("INSERT INTO counters(name, value) VALUES ('dropped', ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (dropped,))
            log.warning("outbox full (%d): dropped %d oldest message(s)", self.max_messages, dropped)

    # counters ---------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    @property
    def dropped(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
            return int(row[0]) if row else 0

    @property
    def drops_reported(self) -> int:
        """How many of the drops the agent has already announced with an outbox event (persisted too)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped_reported'").fetchone()
            return int(row[0]) if row else 0

    def mark_drops_reported(self, total: int) -> None:
        with self._lock:
            self._db.execute("INSERT INTO counters(name, value) VALUES ('dropped_reported', ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (total,))

    def pending(self) -> list[OutboxMessage]:
        with self._lock:
            rows = self._db.execute("SELECT id, kind, topic, payload, retain FROM outbox ORDER BY id").fetchall()
        return [OutboxMessage(r[0], r[1], r[2], bytes(r[3]), bool(r[4])) for r in rows]

    # delivery ---------------------------------------------------------------------------------
    def start(self, publisher: Publisher, can_send: Callable[[], bool]) -> None:
        """Deliver in a background thread whenever ``can_send()`` (the link is up)."""
        self._publisher, self._can_send = publisher, can_send
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"outbox-{self.path.parent.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Call when the link comes up so waiting messages go out now."""
        with self._lock:
            self._wake.notify_all()

    def acknowledged(self, mid: int) -> None:
        """The broker acknowledged ``mid``: the message is delivered and can be forgotten.

        Called from paho's thread while paho holds its own lock, so the delivery thread never calls paho
        while holding ours (that order would deadlock)."""
        with self._lock:
            row_id = self._inflight.pop(mid, None)
            if row_id is None:
                if self._sending:
                    self._early_acks.add(mid)  # acked before we recorded it
                return
            self._forget(row_id)

    def _forget(self, row_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
        self.delivered += 1
        self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (self._inflight or not self._can_send() or not self._has_unsent()):
                    self._wake.wait(0.5)
                while not self._stopping and (pause := self._next_batch_at - time.monotonic()) > 0:
                    self._wake.wait(pause)
                if self._stopping:
                    return
                batch = self._db.execute("SELECT id, topic, payload, retain FROM outbox ORDER BY id LIMIT ?",
                                         (self.window,)).fetchall()
                self._sending, self._early_acks = True, set()
            sent: list[tuple[int, int]] = []
            self._next_batch_at = time.monotonic() + len(batch) / self.max_rate
            for row_id, topic, payload, retain in batch:
                try:
                    mid, ok = self._publisher(topic, bytes(payload), bool(retain))
                except Exception:  # noqa: BLE001 - keep the message, try again on the next wake
                    log.exception("outbox publish failed")
                    break
                if not ok:
                    break
                sent.append((mid, row_id))
            with self._lock:
                self._sending = False
                for mid, row_id in sent:
                    if mid in self._early_acks:
                        self._forget(row_id)
                    else:
                        self._inflight[mid] = row_id
                self._early_acks.clear()
                if not sent:
                    self._wake.wait(0.5)  # the client refused: do not spin

    def _has_unsent(self) -> bool:
        return self._db.execute("SELECT 1 FROM outbox LIMIT 1").fetchone() is not None

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._db.close()
