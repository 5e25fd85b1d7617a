"""The update watchdog: an update that stops making progress ends as ``timed_out`` instead of hanging forever.

Each phase of an update (download, verify, install, load, shadow, health) reports progress as it goes (a block
written, a frame compared, a phase begun). The download has its own bounded retries, but some stalls retry
nothing: a link that stays down (no timeouts are counted offline), a verification or a model load that never
returns, a camera that stops in the middle of a shadow run. So one update at a time is watched, from the
process's OTA timer thread (edge_agent.fleet.ota_ticker): with no progress for ``stall_s`` seconds, its
cancel event is set (a shadow run or a pending switch stops at it) and ``on_stall`` is told, once, so the twin
can report ``timed_out`` and clean up; a later desired twin starts a fresh update.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.fleet.ota_ticker import TICKER

log = logging.getLogger(__name__)
DEFAULT_STALL_S = 300.0


@dataclass
class _Watch:
    sha256: str
    phase: str
    last: float
    cancel: threading.Event = field(default_factory=threading.Event)


class UpdateWatchdog:
    """``begin`` an update, ``progress`` it, ``end`` it; ``on_stall(sha256, phase, stalled_s)`` runs on the
    timer thread when it stalls."""

    def __init__(self, on_stall: Callable[[str, str, float], None], stall_s: float = DEFAULT_STALL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if stall_s <= 0:
            raise ValueError(f"stall_s must be positive, got {stall_s}")
        self.on_stall, self.stall_s, self.clock = on_stall, stall_s, clock
        self.fired = 0
        self._lock = threading.Lock()
        self._watch: _Watch | None = None
        self._expired: set[str] = set()  # updates given up since they began (cleared by the next begin)

    def start(self) -> "UpdateWatchdog":
        TICKER.add(self)
        return self

    def stop(self) -> None:
        TICKER.remove(self)

    def begin(self, sha256: str, phase: str) -> threading.Event:
        """Watch the update of ``sha256`` (a new one replaces any other); the same one just moves to ``phase``.
        Returns its cancel event."""
        with self._lock:
            if self._watch is None or self._watch.sha256 != sha256:
                self._expired.discard(sha256)
                self._watch = _Watch(sha256, phase, self.clock())
            else:
                self._watch.phase, self._watch.last = phase, self.clock()
            return self._watch.cancel

    def progress(self, sha256: str, phase: str | None = None) -> None:
        with self._lock:
            if self._watch is not None and self._watch.sha256 == sha256:
                self._watch.last = self.clock()
                if phase is not None:
                    self._watch.phase = phase

    def end(self, sha256: str) -> None:
        with self._lock:
            if self._watch is not None and self._watch.sha256 == sha256:
                self._watch = None

    def watching(self) -> str | None:
        with self._lock:
            return self._watch.sha256 if self._watch is not None else None

    def expired(self, sha256: str) -> bool:
        with self._lock:
            return sha256 in self._expired

    def tick(self) -> None:
        with self._lock:
            watch = self._watch
            if watch is None or self.clock() - watch.last < self.stall_s:
                return
            stalled = self.clock() - watch.last
            self._watch = None
            self._expired.add(watch.sha256)
            watch.cancel.set()
            self.fired += 1
        log.warning("model update %s made no progress in %s for %.0fs: giving it up", watch.sha256[:12],
                    watch.phase, stalled)
        self.on_stall(watch.sha256, watch.phase, stalled)
