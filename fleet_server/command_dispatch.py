"""Sends remote commands over MQTT and hands each reply to whoever waits for it.

A caller (the API) submits a command: it is stored, and when the device is online it is published at once with
a deadline (`now + timeout_s`) on `cmd/{request_id}`; the caller then waits on a Future keyed by the request id,
without holding a thread (`asyncio.wrap_future`). The bridge's reply handler (fleet_server.ingest) hands replies
here; they are stored on a worker thread, never on paho's network thread, and only then is the Future completed,
so a caller that reads the command afterwards sees the reply.

A sweeper thread, about once a second and whenever a device says it is online (`wake`), sends the queued
commands of devices that are online, expires queued ones past their expiry, and times out sent ones whose
deadline passed with no reply and nobody waiting (after a server restart, or a queued one delivered later).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from edgefleet.protocol import Command, CommandReply
from fleet_server.db import Database
from fleet_server.services import commands

log = logging.getLogger(__name__)
Publish = Callable[[str, str, Command], None]
SWEEP_S = 1.0
OVERDUE_GRACE_S = 2.0  # a live caller times its command out itself at the deadline; the sweeper a little later


class CommandDispatcher:
    def __init__(self, db: Database, publish: Publish) -> None:
        self.db = db
        self._publish = publish
        self._waiters: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="command-replies")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # sending ---------------------------------------------------------------------------------------------------
    def expect(self, request_id: str) -> Future:
        """A Future completed when the reply to ``request_id`` is stored (register before publishing)."""
        future: Future = Future()
        with self._lock:
            self._waiters[request_id] = future
        return future

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._waiters.pop(request_id, None)

    def send_now(self, device_id: str, request_id: str, name: str, args: dict, timeout_s: float) -> bool:
        """Claim a stored, queued command (queued -> sent, so two sweeps or replicas never both send it), publish
        it with a deadline; False when it was not ours to send or the broker is not there (then it is queued
        again: the sweeper retries, or the caller gives up on it)."""
        deadline = datetime.now(timezone.utc) + timedelta(seconds=timeout_s)
        with self.db.session() as session:
            if not commands.mark_sent(session, request_id, deadline):
                return False
        try:
            self._publish(device_id, request_id, Command(name=name, args=args, deadline=deadline))
        except Exception as exc:  # noqa: BLE001 - BridgeError, or no bridge at all
            log.warning("command %s to %s not sent: %s", request_id, device_id, exc)
            with self.db.session() as session:
                commands.requeue(session, request_id)
            return False
        return True

    def give_up(self, request_id: str, timeout_s: float) -> None:
        """The caller's wait ended without a reply: the command timed out (a reply still comes in the record)."""
        self.forget(request_id)
        with self.db.session() as session:
            commands.mark_timed_out(session, request_id, f"no reply within {timeout_s:g} s")

    # replies ---------------------------------------------------------------------------------------------------
    def on_reply(self, device_id: str, request_id: str, reply: CommandReply) -> None:
        """Called on the MQTT thread: store the reply on the worker, then wake its caller."""
        self._worker.submit(self._store_reply, device_id, request_id, reply)

    def _store_reply(self, device_id: str, request_id: str, reply: CommandReply) -> None:
        try:
            with self.db.session() as session:
                stored = commands.record_reply(session, device_id, request_id, reply)
        except Exception:  # noqa: BLE001 - a database hiccup loses this reply, not the worker
            log.exception("storing the reply to %s from %s failed", request_id, device_id)
            return
        if not stored:
            log.info("reply to %s from %s matched no waiting command; ignored", request_id, device_id)
        with self._lock:
            future = self._waiters.pop(request_id, None) if stored else None
        if future is not None and not future.done():
            future.set_result(reply)

    # the sweeper -----------------------------------------------------------------------------------------------
    def wake(self) -> None:
        """A device came online: deliver what waits for it now rather than at the next tick."""
        self._wake.set()

    def start(self) -> "CommandDispatcher":
        self._sweeper = threading.Thread(target=self._sweep_loop, name="command-sweeper", daemon=True)
        self._sweeper.start()
        return self

    def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(SWEEP_S)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - try again at the next tick
                log.exception("command sweep failed")

    def tick(self, now: datetime | None = None) -> dict[str, int]:
        """One sweep: expire, time out, deliver. Returns how many of each (tests call it with a ``now``)."""
        now = now or datetime.now(timezone.utc)
        with self.db.session() as session:
            expired = commands.expire_queued(session, now)
        with self.db.session() as session:
            late = commands.overdue(session, now, OVERDUE_GRACE_S)
        with self._lock:
            late = [request_id for request_id in late if request_id not in self._waiters]
        for request_id in late:
            with self.db.session() as session:
                commands.mark_timed_out(session, request_id, "no reply before the deadline")
        with self.db.session() as session:
            due = [(r.device_id, r.id, r.name, dict(r.args), r.timeout_s) for r in commands.deliverable(session, now)]
        sent = sum(self.send_now(*item) for item in due)
        return {"expired": expired, "timed_out": len(late), "sent": sent}

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._sweeper is not None:
            self._sweeper.join(5)
        self._worker.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            waiting, self._waiters = list(self._waiters.values()), {}
        for future in waiting:
            future.cancel()
