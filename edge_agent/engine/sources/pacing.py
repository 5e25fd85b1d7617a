"""Real-time pacing for sources that could produce frames faster than a camera would (test patterns, files)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Hands out frame slots at ``fps``: ``wait()`` sleeps until the next slot is due.

    A reader that falls a whole period behind is re-anchored to now instead of catching up in a burst, as a real
    camera would simply have produced (and the driver dropped) the frames it missed. Clock and sleep are
    injectable so tests check the schedule without timing anything."""

    def __init__(
        self,
        fps: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.period = 1.0 / fps
        self._clock = clock
        self._sleep = sleep
        self._next_due: float | None = None

    def reset(self) -> None:
        self._next_due = None

    def wait(self) -> None:
        now = self._clock()
        if self._next_due is None or now - self._next_due > self.period:
            self._next_due = now
        elif now < self._next_due:
            self._sleep(self._next_due - now)
        self._next_due += self.period
