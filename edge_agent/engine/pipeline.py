"""The real-time pipeline: newest camera frame -> preprocess into a free inference request -> async inference ->
post-process -> sinks, with capture, preprocessing and inference overlapping.

Feeder threads (one per backend lane: two for throughput on a multi-core CPU, so the preprocessing of one frame
overlaps the next) each do ``acquire a free request -> take the newest frame -> preprocess straight into the
request's input -> submit``. Taking the frame only once a request is free keeps latency low (the frame is as
fresh as it can be when inference starts) and lets the capture thread count what the model could not keep up
with as dropped. Completions come back on the backend's threads; results are handed to the sinks strictly in
frame order (a small reorder step, since requests in parallel can finish out of order), one sink call at a
time. A sink that raises is logged and the pipeline goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgefleet.log_limits import ThrottledLog
from edge_agent.engine.backends.base import LoadedModel
from edge_agent.engine.interface import PipelineStats, Sink
from edge_agent.engine.postprocess import PostProcessor, Result
from edge_agent.engine.preprocess import Geometry, Preprocessor
from edge_agent.engine.sources.base import Frame

log = logging.getLogger(__name__)

FPS_WINDOW_S = 2.0


class Capture(Protocol):
    """What the pipeline needs from edge_agent.engine.capture.CaptureThread."""

    captured: int
    dropped: int
    state: str
    finished: bool

    def start(self) -> Any: ...

    def stop(self) -> None: ...

    def get_latest(self, timeout: float, after_index: int | None = None) -> Frame | None: ...


@dataclass(frozen=True)
class _Stage:
    backend: LoadedModel
    preprocessor: Preprocessor
    postprocessor: PostProcessor


@dataclass(frozen=True)
class _Job:
    seq: int
    frame: Frame
    geometry: Geometry
    stage: _Stage


class Pipeline:
    """``start()`` starts the capture and the feeder; ``stop()`` stops both, waits for requests in flight (their
    results still reach the sinks) and closes the backend. ``swap()`` changes model and processing between
    frames without stopping the camera."""

    def __init__(self, capture: Capture, backend: LoadedModel, preprocessor: Preprocessor,
                 postprocessor: PostProcessor, sinks: Sequence[Sink], *, max_fps: float | None = None,
                 window: int = 1000) -> None:
        if max_fps is not None and max_fps <= 0:
            raise ValueError("max_fps must be positive")
        self.capture = capture
        self.sinks = list(sinks)
        self.max_fps = max_fps
        self._stage = _Stage(backend, preprocessor, postprocessor)
        self._generation = 0  # bumped by swap(); each feeder notes the one it works with
        self._lock = threading.Condition()  # stage, generations, counters, timing windows
        self._take_lock = threading.Lock()  # frame taking, sequence numbers, the max_fps clock
        self._deliver_lock = threading.Lock()  # reorder buffer and sink calls
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._feeders: list[threading.Thread] = []
        self._feeder_generation: dict[int, int] = {}
        self._last_index: int | None = None
        self._due = 0.0
        self._seq = 0
        self._next_delivery = 0
        self._done: dict[int, tuple[_Job, tuple, float] | None] = {}
        self._inferred = self._failed = 0
        self._latency: deque[float] = deque(maxlen=window)
        self._inference: deque[float] = deque(maxlen=window)
        self._completions: deque[float] = deque()
        self._started_at = 0.0
        self._sink_errors = ThrottledLog(log)
        self._errors = ThrottledLog(log)

    # -- control -------------------------------------------------------------------------------------------------
    @property
    def backend(self) -> LoadedModel:
        return self._stage.backend

    @property
    def finished(self) -> bool:
        """The source ended (a file without looping) or the pipeline stopped, and every result was delivered."""
        return self._finished.is_set()

    def start(self) -> Pipeline:
        self._started_at = time.monotonic()
        self.capture.start()
        lanes = max(1, getattr(self._stage.backend, "lanes", 1))
        self._feeder_generation = {k: self._generation for k in range(lanes)}
        self._feeders = [threading.Thread(target=self._feed, args=(k,), name=f"pipeline-feeder-{k}", daemon=True)
                         for k in range(lanes)]
        for feeder in self._feeders:
            feeder.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :attr:`finished` (or the timeout); True when finished."""
        return self._finished.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for feeder in self._feeders:
            feeder.join(timeout)
        self.capture.stop()
        stage = self._stage
        stage.backend.wait_all()
        stage.backend.close()
        self._finished.set()

    def swap(self, backend: LoadedModel, preprocessor: Preprocessor, postprocessor: PostProcessor,
             timeout: float = 30.0) -> None:
        """Switch model and processing between two frames (OTA, twin changes). Frames already in flight finish
        on the old model and reach the sinks in order; the old backend is then closed."""
        new = _Stage(backend, preprocessor, postprocessor)
        with self._lock:
            old = self._stage
            self._stage = new
            self._generation += 1
            generation = self._generation
            # every running feeder must start an iteration on the new stage before the old one is drained
            if not self._lock.wait_for(lambda: all(g >= generation for g in self._feeder_generation.values()),
                                       timeout):
                raise TimeoutError("the pipeline did not reach a frame boundary to swap models")
        old.backend.wait_all()
        old.backend.close()

    def stats(self) -> PipelineStats:
        now = time.monotonic()
        with self._lock:
            lat = np.array(self._latency) if self._latency else None
            inf = np.array(self._inference) if self._inference else None
            while self._completions and self._completions[0] < now - FPS_WINDOW_S:
                self._completions.popleft()
            span = min(FPS_WINDOW_S, now - self._started_at) if self._started_at else 0.0
            fps = len(self._completions) / span if span > 0 else 0.0
            inferred, failed, stage = self._inferred, self._failed, self._stage

        def q(a: np.ndarray | None, p: float) -> float | None:
            return None if a is None else round(float(np.percentile(a, p)), 3)

        return PipelineStats(
            frames_captured=self.capture.captured, frames_inferred=inferred, frames_dropped=self.capture.dropped,
            frames_failed=failed, fps=round(fps, 2), latency_ms_p50=q(lat, 50), latency_ms_p95=q(lat, 95),
            latency_ms_p99=q(lat, 99), inference_ms_p50=q(inf, 50), inference_ms_p95=q(inf, 95),
            camera_state=self.capture.state, backend=stage.backend.backend, device=stage.backend.device,
        )

    # -- feeder thread -------------------------------------------------------------------------------------------
    def _feed(self, lane: int) -> None:
        try:
            while not self._stop.is_set():
                generation = self._generation  # read before the stage: swap() writes the stage first
                stage = self._stage
                if self._feeder_generation[lane] != generation:  # a swap waits for this; no lock per frame
                    with self._lock:
                        self._feeder_generation[lane] = generation
                        self._lock.notify_all()
                frame = self._feed_one(stage, lane)
                if frame is None and self.capture.finished:
                    break
        finally:
            with self._lock:
                self._feeder_generation[lane] = 1 << 62  # gone: never holds up a swap
                self._lock.notify_all()
                last = all(g == 1 << 62 for g in self._feeder_generation.values())
            if last:
                self._stage.backend.wait_all()
                if not self._stop.is_set():  # the source ended by itself: every result is delivered now
                    self._finished.set()

    def _take_frame(self, stage: _Stage) -> tuple[Frame, int] | None:
        """The newest frame after the last one taken, and its sequence number; honours max_fps: at least
        1/max_fps between two frames taken, a cap, never a burst to catch up. None as well when ``stage`` was
        swapped out meanwhile: frames are bound to a stage in frame order, so every frame after a swap runs on
        the new model."""
        with self._take_lock:
            if self._stage is not stage:
                return None
            if self.max_fps:
                delay = self._due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return None
            frame = self.capture.get_latest(timeout=0.2, after_index=self._last_index)
            if frame is None:
                return None
            self._last_index = frame.index
            if self.max_fps:
                self._due = time.monotonic() + 1.0 / self.max_fps
            seq, self._seq = self._seq, self._seq + 1
            return frame, seq

    def _feed_one(self, stage: _Stage, lane: int) -> Frame | None:
        """Acquire a request, fill it with the newest frame, submit. None when no new frame came in time."""
        backend = stage.backend
        try:
            slot = backend.acquire(lane)
        except Exception:  # noqa: BLE001 - a broken backend must not kill the thread silently
            self._errors.exception("inference backend failed to hand out a request")
            self._stop.wait(0.1)
            return None
        taken = self._take_frame(stage)
        if taken is None:
            backend.release(slot)
            return None
        frame, seq = taken
        try:
            stage.preprocessor(frame.image, out=slot.input)
            height, width = frame.image.shape[:2]
            job = _Job(seq, frame, stage.preprocessor.geometry(width, height), stage)
        except Exception:  # noqa: BLE001 - one bad frame is counted and skipped
            backend.release(slot)
            self._errors.exception("preprocessing frame %d failed", frame.index)
            with self._lock:
                self._failed += 1
            self._deliver(seq, None)
            return frame
        try:
            backend.submit(slot, job, self._on_done)
        except Exception as exc:  # noqa: BLE001
            self._on_done(job, None, 0.0, exc)
        return frame

    # -- completion (backend threads) ----------------------------------------------------------------------------
    def _on_done(self, job: _Job, outputs: list[np.ndarray] | None, inference_ms: float,
                 error: BaseException | None) -> None:
        result: tuple[_Job, tuple, float] | None = None
        if error is None and outputs is not None:
            try:
                result = (job, tuple(job.stage.postprocessor(outputs, job.geometry)), float(inference_ms))
            except Exception:  # noqa: BLE001
                self._errors.exception("post-processing frame %d failed", job.frame.index)
        else:
            self._errors.exception("inference on frame %d failed: %s", job.frame.index, error)
        if result is None:
            with self._lock:
                self._failed += 1
        self._deliver(job.seq, result)

    def _deliver(self, seq: int, result: tuple[_Job, tuple, float] | None) -> None:
        with self._deliver_lock:
            self._done[seq] = result
            while self._next_delivery in self._done:
                ready = self._done.pop(self._next_delivery)
                self._next_delivery += 1
                if ready is not None:
                    self._hand_to_sinks(ready)

    def _hand_to_sinks(self, done: tuple[_Job, tuple, float]) -> None:
        job, results, inference_ms = done
        frame = job.frame
        now = time.monotonic()
        result = Result(frame.index, frame.captured_at, results, inference_ms, (now - frame.captured_at) * 1000.0,
                        image=frame.image)
        with self._lock:
            self._inferred += 1
            self._latency.append(result.latency_ms)
            self._inference.append(result.inference_ms)
            self._completions.append(now)
        for sink in self.sinks:
            try:
                sink(result)
            except Exception:  # noqa: BLE001 - a sink's bug must not stop the camera
                self._sink_errors.exception("sink %r failed on frame %d", sink, result.frame_index)
