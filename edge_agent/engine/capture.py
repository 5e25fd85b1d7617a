"""The capture thread: reads a source as fast as it delivers and hands frames on through a FrameBuffer.

For a live camera only the newest frame is kept, so a slow consumer sees fresh frames and the capture counts
what it replaced (``dropped``) instead of queueing latency. Sources that are not live (files, un-paced test
patterns) are read lossless by default: a few frames ahead, then the thread waits for the consumer instead of
decoding frames nobody will see. Errors reconnect with exponential
backoff and jitter; a vanished camera waits for its device (hot-plug calls ``pause_for_device``/``resume``)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from edge_agent.errors import EndOfStream, SourceError
from edge_agent.engine.capture_state import ALLOWED, TERMINAL, CaptureState, CaptureStats, ReconnectPolicy
from edge_agent.engine.frame_buffer import FrameBuffer
from edge_agent.engine.sources.base import DeviceGone, Frame, FrameSource, SourceProperties

log = logging.getLogger(__name__)
S = CaptureState


_TROUBLE = frozenset({S.RECONNECTING, S.WAITING_FOR_DEVICE, S.ENDED})


def _log_level(old: CaptureState, new: CaptureState) -> int:
    """One line an operator sees per change of the camera's health: losing the stream and getting it back are
    warnings (shown by default), a start or a stop is info, and each further retry in the same state is debug, so
    a camera that stays away for an hour does not write a line per attempt."""
    if old == new:
        return logging.DEBUG
    if new in _TROUBLE or (old in _TROUBLE and new == S.STREAMING):
        return logging.WARNING
    return logging.INFO


class CaptureThread:
    """Owns one source on a background thread. ``get_latest`` gives the newest frame; counters satisfy
    ``captured == delivered + dropped + pending`` at every instant. ``drop_frames`` None means: drop for live
    sources, wait for the consumer on files and un-paced sources."""

    def __init__(
        self,
        source: FrameSource,
        *,
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        on_state: Callable[[str, str], None] | None = None,
        drop_frames: bool | None = None,
        seed: int | None = None,
    ) -> None:
        self._source = source
        self.policy = reconnect
        self._on_state = on_state
        self._drop_frames = drop_frames
        self._rng = random.Random(seed)
        self._cond = threading.Condition()
        self._state = S.IDLE
        self._frames = FrameBuffer(self._cond)
        self._reconnects = 0
        self._next_index = 0
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._pause_reason: str | None = None
        self._resume: tuple[FrameSource | None, str] | None = None
        self._paused_by_hotplug = False
        self._failed_since_open = False
        self._resume_reason = ""
        self._thread = threading.Thread(target=self._run, name=f"capture[{source.identity}]", daemon=True)

    # -- public surface ------------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state.value

    @property
    def identity(self) -> str:
        return self._source.identity

    @property
    def captured(self) -> int:
        return self._frames.captured

    @property
    def dropped(self) -> int:
        return self._frames.dropped

    @property
    def delivered(self) -> int:
        return self._frames.delivered

    @property
    def reconnects(self) -> int:
        return self._reconnects

    @property
    def last_error(self) -> str | None:
        return self._last_error

    @property
    def finished(self) -> bool:
        """True once the capture ended (a finite file) or was stopped: no more frames will come."""
        return self._state in TERMINAL

    def stats(self) -> CaptureStats:
        with self._cond:
            f = self._frames
            return CaptureStats(f.captured, f.delivered, f.dropped, f.pending, self._reconnects,
                                self._state.value, self._last_error)  # fmt: skip

    def start(self) -> CaptureThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading, release the source, and end in ``stopped`` (or stay ``ended``)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("capture %s did not stop within %.1fs (blocked in the source)", self.identity, timeout)
        elif self._state == S.IDLE:
            self._transition(S.STOPPED, "stopped before start")

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def __enter__(self) -> CaptureThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get_latest(self, timeout: float, after_index: int | None = None) -> Frame | None:
        """The next frame newer than ``after_index`` (live: the newest; otherwise the next in order); with no
        ``after_index`` and nothing new, the newest again. None on timeout or when the capture finished and no
        such frame is left."""
        with self._cond:
            return self._frames.take(timeout, after_index, lambda: self._state in TERMINAL)

    def pause_for_device(self, reason: str = "camera removed") -> None:
        """The camera vanished (hot-plug): release it and wait in ``waiting_for_device`` until :meth:`resume`."""
        with self._cond:
            self._pause_reason = reason
            self._resume = None
            self._cond.notify_all()

    def resume(self, source: FrameSource | None = None, reason: str = "camera is back") -> None:
        """Reopen after a pause, optionally with a new source object (the same camera at a new /dev node).
        Frame indexes keep counting."""
        with self._cond:
            self._resume = (source, reason)
            self._cond.notify_all()

    # -- the thread ----------------------------------------------------------------------------------------------
    def _transition(self, new: CaptureState, reason: str) -> None:
        with self._cond:
            old = self._state
            if new not in ALLOWED[old]:
                raise RuntimeError(f"capture {self.identity}: illegal transition {old} -> {new} ({reason})")
            self._state = new
            self._cond.notify_all()
        log.log(_log_level(old, new), "capture %s: %s -> %s: %s", self.identity, old.value, new.value, reason)
        if self._on_state is not None:
            try:
                self._on_state(new.value, reason)
            except Exception:  # noqa: BLE001 - a broken listener must not kill the capture
                log.exception("on_state callback failed for %s", self.identity)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # noqa: BLE001 - reported as the stop reason
            log.exception("capture %s crashed", self.identity)
            self._last_error = f"capture crashed: {exc!r}"
        finally:
            self._close_source()
            if self._state not in TERMINAL:
                reason = "stopped" if self._stop.is_set() else (self._last_error or "capture thread exited")
                self._transition(S.STOPPED, reason)

    def _loop(self) -> None:
        self._transition(S.OPENING, "starting")
        attempt = 0
        while not self._stop.is_set() and self._state not in TERMINAL:
            if self._take_pause():
                continue
            if self._state == S.WAITING_FOR_DEVICE:
                wake = self._wait_for_device()
                if wake == "resume":
                    attempt = 0
                    self._transition(S.OPENING, self._resume_reason)
                elif wake == "poll":
                    self._poll_device()
            elif self._state in (S.OPENING, S.RECONNECTING):
                attempt = self._open(attempt)
            else:
                attempt = self._read(attempt)

    def _open(self, attempt: int) -> int:
        try:
            props = self._source.open()
        except DeviceGone as exc:
            self._fail(exc)
            self._paused_by_hotplug = False
            self._transition(S.WAITING_FOR_DEVICE, str(exc))
        except EndOfStream as exc:
            self._fail(exc)
            self._transition(S.ENDED, str(exc))
        except Exception as exc:  # noqa: BLE001 - any open failure is retried with backoff
            return self._backoff(attempt, exc)
        else:
            self._opened(props)
        return attempt  # the attempt counter resets on the first frame: opening alone proves little

    def _poll_device(self) -> None:
        """A capture that found its camera missing looks again, quietly: only finding it changes the state."""
        try:
            props = self._source.open()
        except DeviceGone as exc:
            self._close_source()
            log.debug("capture %s: still no device: %s", self.identity, exc)
            return
        except Exception:  # noqa: BLE001 - the device is there but failed: the normal open path retries
            self._close_source()
            self._transition(S.OPENING, "camera found again")
            return
        self._transition(S.OPENING, "camera found again")
        self._opened(props)

    def _opened(self, props: SourceProperties) -> None:
        drop = self._drop_frames if self._drop_frames is not None else props.is_live
        self._frames.lossless = not drop
        if self._failed_since_open:
            self._reconnects += 1
        self._failed_since_open = False
        size = f"{props.width}x{props.height}" if props.width else "unknown size"
        self._transition(S.STREAMING, f"opened {self.identity} ({size})")

    def _read(self, attempt: int) -> int:
        try:
            image = self._source.read()
        except DeviceGone as exc:
            self._fail(exc)
            self._paused_by_hotplug = False
            self._transition(S.WAITING_FOR_DEVICE, str(exc))
            return attempt
        except EndOfStream as exc:
            self._fail(exc)
            self._transition(S.ENDED, str(exc))
            return attempt
        except Exception as exc:  # noqa: BLE001 - a read failure reconnects
            return self._backoff(attempt, exc)
        self._publish(image, time.monotonic())
        return 0

    def _fail(self, exc: BaseException) -> None:
        self._failed_since_open = True
        self._last_error = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
        self._close_source()

    def _backoff(self, attempt: int, exc: BaseException) -> int:
        """Release the source, report ``reconnecting`` with the delay, wait it out (stop/pause cut it short)."""
        self._fail(exc)
        attempt += 1
        if self.policy.max_attempts is not None and attempt > self.policy.max_attempts:
            self._transition(S.STOPPED, f"giving up after {attempt - 1} reconnect attempts: {self._last_error}")
            self._stop.set()
            return attempt
        delay = self.policy.delay(attempt, self._rng)
        self._transition(S.RECONNECTING, f"{self._last_error}; attempt {attempt} in {delay:.2f}s")
        with self._cond:
            self._cond.wait_for(lambda: self._stop.is_set() or self._pause_reason is not None, timeout=delay)
        return attempt

    def _take_pause(self) -> bool:
        with self._cond:
            reason, self._pause_reason = self._pause_reason, None
        if reason is None:
            return False
        self._close_source()
        self._paused_by_hotplug = True
        if self._state != S.WAITING_FOR_DEVICE:
            self._transition(S.WAITING_FOR_DEVICE, reason)
        return True

    def _wait_for_device(self) -> str | None:
        """Block until resume() ("resume"), or the next poll for a capture that found the device missing by
        itself ("poll"); None when stopped, paused again, or paused by hot-plug (which waits for resume only)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._stop.is_set() or self._resume is not None or self._pause_reason is not None,
                timeout=self.policy.device_poll_s,
            )
            if self._stop.is_set() or self._pause_reason is not None:
                return None
            if self._resume is not None:
                source, self._resume_reason = self._resume
                self._resume = None
                if source is not None:
                    self._close_source()
                    self._source = source
                self._paused_by_hotplug = False
                return "resume"
            return None if self._paused_by_hotplug else "poll"

    def _publish(self, image: object, captured_at: float) -> None:
        frame = Frame(image=image, index=self._next_index, captured_at=captured_at,  # type: ignore[arg-type]
                      source_id=self._source.identity)
        with self._cond:
            if self._frames.put(frame, lambda: self._stop.is_set() or self._pause_reason is not None):
                self._next_index += 1

    def _close_source(self) -> None:
        try:
            self._source.close()
        except Exception:  # noqa: BLE001 - closing a broken source must not stop the recovery
            log.warning("closing %s failed", self.identity, exc_info=True)
