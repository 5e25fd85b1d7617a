"""A daemon thread calling one function every few seconds: the rollout scheduler, the telemetry job and the alert
evaluator run in it.

The function takes no arguments (it reads "now" itself); what it raises is logged and the next tick tries again,
so a database that is briefly away never ends the loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicThread:
    def __init__(self, name: str, every_s: float, work: Callable[[], object]) -> None:
        self.name, self.every_s, self._work = name, every_s, work
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self._work()
            except Exception:  # noqa: BLE001 - the next tick retries
                log.exception("%s: tick failed", self.name)

    def start(self) -> "PeriodicThread":
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
