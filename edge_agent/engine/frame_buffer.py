"""The hand-off between a capture thread and the pipeline's feeders.

Live sources get one slot where the newest frame wins: a slow model sees fresh frames and the replaced ones are
counted as dropped instead of queueing latency. Sources that are not live (files, un-paced test patterns) are
read ahead into a short FIFO that never drops: a full buffer blocks the producer until the consumers have drained
it to ``resume_at``, so the two threads wake each other once every few frames instead of on every frame (each
cross-thread wake-up is a futex and often an inter-processor interrupt; at several hundred frames a second that
was the largest single cost of the pipeline's own work).

Counters are monotonic and satisfy ``captured == delivered + dropped + pending`` whenever the lock is free."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from edge_agent.engine.sources.base import Frame

READ_AHEAD = 4  # frames a non-live source may run ahead (4 x 0.9 MB at 640x480)
RESUME_AT = 1  # a producer blocked on a full buffer resumes when this few are left


class FrameBuffer:
    """All methods run under ``lock``, the capture's own condition (its stop and pause wake the waits here)."""

    def __init__(self, lock: threading.Condition, *, read_ahead: int = READ_AHEAD, resume_at: int = RESUME_AT) -> None:
        if not 0 <= resume_at < read_ahead:
            raise ValueError(f"resume_at must be in [0, {read_ahead}), got {resume_at}")
        self._lock = lock
        self.read_ahead, self.resume_at = read_ahead, resume_at
        self.lossless = False
        self._frames: deque[Frame] = deque()
        self.newest: Frame | None = None  # kept after delivery: a caller without after_index may read it again
        self.captured = self.delivered = self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._frames)

    def put(self, frame: Frame, interrupted: Callable[[], bool]) -> bool:
        """Live: replace what is waiting. Lossless: append, first waiting (while ``interrupted()`` is false) for
        room. False when interrupted: the frame was never captured for anyone and is not counted."""
        frames = self._frames
        if self.lossless:
            if len(frames) >= self.read_ahead:
                self._lock.wait_for(lambda: len(frames) <= self.resume_at or interrupted())
                if interrupted():
                    return False
        else:
            self.dropped += len(frames)
            frames.clear()
        frames.append(frame)
        self.newest = frame
        self.captured += 1
        self._lock.notify_all()
        return True

    def take(self, timeout: float, after_index: int | None, finished: Callable[[], bool]) -> Frame | None:
        """The next frame newer than ``after_index`` (the oldest waiting one: the only one when live); with no
        ``after_index`` and nothing waiting, the newest frame again. None on timeout, or once ``finished()``
        and nothing is left."""
        frames = self._frames
        deadline: float | None = None
        while True:
            while frames and after_index is not None and frames[0].index <= after_index:
                frames.popleft()  # older than what the caller already has: it will never want it
                self.dropped += 1
            if frames:
                frame = frames.popleft()
                self.delivered += 1
                if len(frames) == self.resume_at:  # the producer may be waiting for exactly this
                    self._lock.notify_all()
                return frame
            if after_index is None and self.newest is not None:
                return self.newest
            if finished():
                return None
            now = time.monotonic()
            if deadline is None:
                deadline = now + timeout
            if now >= deadline:
                return None
            self._lock.wait(deadline - now)
