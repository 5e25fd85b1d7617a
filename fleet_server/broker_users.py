"""Keeps the embedded broker's users in step with the device inventory, batching changes.

Every enrollment and decommission changes who may log in. Applying a change means rewriting the broker's users
file and reloading it, and a reload costs time that grows with the devices online (bench/results/nats_users.md).
So changes are coalesced: callers say "the inventory changed" and wait; one worker thread reads the inventory
fresh and applies it once for every caller that asked before the read began. Ten enrollments at once cost one or
two reloads, not ten, and every caller returns only once its own change is live (a new device can connect, a
removed one has been cut off)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

DeviceLogins = Callable[[], Iterable[tuple[str, str]]]  # (device id, bcrypt hash of its MQTT password)


class BrokerUserSync:
    def __init__(self, read_logins: DeviceLogins, apply: Callable[[list[tuple[str, str]]], object]) -> None:
        self._read = read_logins
        self._apply = apply
        self._cond = threading.Condition()
        self._asked = 0  # changes announced
        self._applied = 0  # every change announced up to this one is live
        self._failure: BaseException | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="broker-user-sync", daemon=True)
        self._thread.start()

    def changed(self, timeout: float | None = 30.0) -> bool:
        """The inventory changed: make it live; True once applied, False on timeout. A failed apply raises."""
        with self._cond:
            self._asked += 1
            ticket = self._asked
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._applied >= ticket or self._stop, timeout):
                return False
            if self._failure is not None and self._applied >= ticket:
                raise RuntimeError(f"the broker did not take the new users: {self._failure}") from self._failure
            return self._applied >= ticket

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._asked > self._applied or self._stop)
                if self._stop:
                    return
                target = self._asked  # every change announced so far is in the read below
            failure: BaseException | None = None
            try:
                self._apply(list(self._read()))
            except Exception as exc:  # noqa: BLE001 - reported to the waiting callers, the worker lives on
                log.exception("updating the broker's users failed")
                failure = exc
            with self._cond:
                self._applied, self._failure = target, failure
                self._cond.notify_all()
