"""Keeps the embedded broker's retained messages (statuses, desired and reported twins) in a SQLite file so
they survive a broker restart, as Mosquitto's `persistence true` does.

amqtt ships `contrib.persistence.SessionDBPlugin` for this, but it needs aiosqlite (not a dependency here),
never removes messages it has delivered to a reconnected session (so it re-sends them after every restart)
and deletes its file on a clean shutdown by default. This plug-in stores retained topics only; persistent
sessions' queued messages are not kept across restarts (QoS 1 messages for offline devices are lost then;
the server republishes desired twins on every reconnect).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from amqtt.broker import BrokerContext, RetainedApplicationMessage
from amqtt.plugins.base import BasePlugin

log = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, data BLOB NOT NULL, qos INTEGER NOT NULL)"


class RetainedStore:
    """A tiny topic -> (payload, qos) table. Thread-safe; each call is its own transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        with self._lock, self._db:
            self._db.execute(_SCHEMA)

    def put(self, topic: str, data: bytes, qos: int) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO retained (topic, data, qos) VALUES (?, ?, ?)",
                             (topic, bytes(data), qos))

    def delete(self, topic: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM retained WHERE topic = ?", (topic,))

    def load(self) -> list[tuple[str, bytes, int]]:
        with self._lock:
            return [(t, bytes(d), int(q)) for t, d, q in self._db.execute("SELECT topic, data, qos FROM retained")]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RetainedStorePlugin(BasePlugin[BrokerContext]):
    @dataclass
    class Config:
        path: str = "retained.sqlite"

    def __init__(self, context: BrokerContext) -> None:
        super().__init__(context)
        self._store = RetainedStore(Path(self.config.path))

    async def on_broker_post_start(self) -> None:
        rows = await asyncio.to_thread(self._store.load)
        retained = self.context.retained_messages
        for topic, data, qos in rows:
            retained[topic] = RetainedApplicationMessage(None, topic, data, qos)
        log.info("restored %d retained message(s) from %s", len(rows), self.config.path)

    async def on_broker_retained_message(self, *, client_id: str | None,
                                         retained_message: RetainedApplicationMessage) -> None:
        if client_id is not None:
            return  # a message queued for an offline session, not a retained topic
        # written inline, not in a thread: amqtt fires one task per change, and two changes to one topic
        # (online, then cleared) must reach the file in the order they happened
        topic, data = retained_message.topic, retained_message.data
        if data:
            self._store.put(topic, bytes(data), retained_message.qos or 0)
        else:
            self._store.delete(topic)

    async def close(self) -> None:
        self._store.close()
