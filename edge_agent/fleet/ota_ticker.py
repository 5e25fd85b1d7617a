"""One timer thread for every model download in a process.

A download's timeouts, re-requests and idle checkpoints need a look every fraction of a second, not a thread of
their own: the simulator and the benchmark run a hundred downloaders in one process, and a thread each, waking
twice a second, was a hundred threads contending for the interpreter lock with the ones moving the bytes.
Members are called in turn, each under its own lock; one that raises is logged and the others go on.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger(__name__)
TICK_S = 0.5


class Tickable(Protocol):
    def tick(self) -> None: ...


class Ticker:
    """Calls ``tick()`` on every member each ``interval_s``; the thread runs only while there are members."""

    def __init__(self, interval_s: float = TICK_S) -> None:
        self.interval_s = interval_s
        self._members: dict[int, Tickable] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, member: Tickable) -> None:
        with self._cond:
            self._members[id(member)] = member
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ota-ticker", daemon=True)
                self._thread.start()

    def remove(self, member: Tickable) -> None:
        with self._cond:
            self._members.pop(id(member), None)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait(self.interval_s)
                if not self._members:
                    self._thread = None  # the next add starts a fresh one
                    return
                members = list(self._members.values())
            for member in members:
                try:
                    member.tick()
                except Exception:  # noqa: BLE001 - one member's bug must not stop the others' timers
                    log.exception("OTA timer failed")


TICKER = Ticker()
