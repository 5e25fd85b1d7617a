"""Logging that cannot flood: a repeating failure is logged at most once per interval, with a count of what was
held back. A device with a small disk, or a server under a misbehaving client, must not spend its storage and CPU
writing the same line (or the same traceback) thousands of times."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any


class ThrottledLog:
    """``log.warning(key, msg, *args)``-style calls that print once per ``every_s`` per key; the next line that
    gets through says how many were held back meanwhile. ``key`` groups what counts as "the same line" (a
    topic kind, a device, a call site); the default is the message format itself."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0, max_keys: int = 1024) -> None:
        self.logger = logger
        self.every_s = every_s
        self.max_keys = max_keys
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self.suppressed = 0

    def _due(self, key: str) -> int | None:
        """The count held back for ``key`` when a line may be written now, else None (and one more held)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e18) < self.every_s:
                self._held[key] = self._held.get(key, 0) + 1
                self.suppressed += 1
                return None
            if key not in self._last and len(self._last) >= self.max_keys:
                oldest = min(self._last, key=self._last.__getitem__)  # forget the quietest key
                self._last.pop(oldest)
                self._held.pop(oldest, None)
            self._last[key] = now
            return self._held.pop(key, 0)

    def log(self, level: int, msg: str, *args: Any, key: str | None = None, exc_info: bool = False) -> bool:
        """Log unless the same key was logged within the interval; True when the line was written."""
        held = self._due(key if key is not None else msg)
        if held is None:
            return False
        suffix = f" ({held} similar held back)" if held else ""
        self.logger.log(level, msg + suffix, *args, exc_info=exc_info)
        return True

    def warning(self, msg: str, *args: Any, key: str | None = None) -> bool:
        return self.log(logging.WARNING, msg, *args, key=key)

    def exception(self, msg: str, *args: Any, key: str | None = None) -> bool:
        return self.log(logging.ERROR, msg, *args, key=key, exc_info=True)
