"""The capture thread: newest-frame-only delivery, counters, reconnects, device pauses, bounded memory."""

from __future__ import annotations

import gc
import logging
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import psutil
import pytest

from edge_agent.engine.capture import CaptureThread
from edge_agent.engine.capture_state import ALLOWED, TERMINAL, CaptureState, ReconnectPolicy
from edge_agent.errors import SourceError
from edge_agent.engine.sources import DeviceGone, FrameSource, SourceProperties, open_source
from edge_agent.engine.sources.video_file import VideoFileSource
from tests.edge_agent.engine.sources.videos import grey_level, write_video
from tests.services import free_port
from tests.waiting import wait_for

FAST = ReconnectPolicy(initial_delay_s=0.0, max_delay_s=0.0, jitter=0.0, device_poll_s=0.01)


class StateLog:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, state: str, reason: str) -> None:
        with self._lock:
            self.entries.append((state, reason))

    @property
    def states(self) -> list[str]:
        with self._lock:
            return [s for s, _ in self.entries]


class GatedSource:
    """A live source that yields one frame per permit, so the test decides exactly when frames exist. Like a
    real camera with a read timeout, a read with no frame fails after ``read_timeout_s``."""

    def __init__(self, identity: str = "gated", read_timeout_s: float = 0.1) -> None:
        self.identity = identity
        self.permits = threading.Semaphore(0)
        self.served = 0
        self.read_timeout_s = read_timeout_s

    def open(self) -> SourceProperties:
        return SourceProperties(width=8, height=8, is_live=True)

    def read(self) -> np.ndarray:
        if not self.permits.acquire(timeout=self.read_timeout_s):
            raise SourceError("no frame within the read timeout")
        self.served += 1
        return np.full((8, 8, 3), self.served % 256, np.uint8)

    def close(self) -> None:
        pass


class FlakySource:
    """Gives ``frames_per_open`` frames, then fails with SourceError; after ``failures`` failures it recovers.
    ``gone`` makes the failures look like an unplugged camera (DeviceGone)."""

    def __init__(self, frames_per_open: int = 3, failures: int = 4, *, gone: bool = False) -> None:
        self.identity = "flaky"
        self.frames_per_open, self.failures, self.gone = frames_per_open, failures, gone
        self.opens = self.closes = self.failed = 0
        self._left = 0
        self.is_open = False

    def open(self) -> SourceProperties:
        if self.gone and 0 < self.failed < self.failures:
            self.failed += 1
            raise DeviceGone("flaky device is not there")
        self.opens += 1
        self._left = self.frames_per_open
        self.is_open = True
        return SourceProperties(width=4, height=4, is_live=True)

    def read(self) -> np.ndarray:
        if self._left == 0 and self.failed < self.failures:
            self.failed += 1
            raise (DeviceGone if self.gone else SourceError)("flaky source lost its stream")
        self._left = max(0, self._left - 1)
        return np.zeros((4, 4, 3), np.uint8)

    def close(self) -> None:
        self.closes += 1
        self.is_open = False


def collect(capture: CaptureThread, n: int, pause_s: float = 0.0) -> list[int]:
    indexes: list[int] = []
    last = None
    while len(indexes) < n:
        frame = capture.get_latest(timeout=5.0, after_index=last)
        assert frame is not None, f"no frame after {indexes}"
        indexes.append(frame.index)
        last = frame.index
        if pause_s:
            time.sleep(pause_s)
    return indexes


def test_lifecycle_reports_every_state_through_the_callback():
    log = StateLog()
    capture = CaptureThread(open_source("synthetic:32x32@200"), on_state=log)
    assert capture.state == "idle"
    with capture:
        frame = capture.get_latest(timeout=5.0)
        assert frame is not None and frame.source_id == "synthetic:32x32@200"
        assert capture.state == "streaming"
    assert log.states == ["opening", "streaming", "stopped"]
    assert capture.finished


def test_captured_at_is_monotonic_time_of_capture():
    before = time.monotonic()
    with CaptureThread(open_source("synthetic:32x32@200")) as capture:
        frame = capture.get_latest(timeout=5.0)
    assert frame is not None and before <= frame.captured_at <= time.monotonic()


def test_slow_consumer_drops_frames_and_counters_add_up():
    source = GatedSource(read_timeout_s=30)
    capture = CaptureThread(source).start()
    try:
        for _ in range(5):
            source.permits.release()
        wait_for(lambda: capture.captured == 5)
        frame = capture.get_latest(timeout=1.0)
        assert frame is not None and frame.index == 4  # the newest, not the oldest
        assert (capture.captured, capture.delivered, capture.dropped) == (5, 1, 4)
        source.permits.release()
        wait_for(lambda: capture.captured == 6)
        stats = capture.stats()
        assert stats.pending == 1 and stats.captured == stats.delivered + stats.dropped + stats.pending
        assert capture.get_latest(timeout=1.0, after_index=4).index == 5
        assert capture.dropped == 4
    finally:
        source.permits.release()  # let the blocked read return so the capture can stop
        capture.stop()


def test_live_source_faster_than_consumer_keeps_only_newest():
    with CaptureThread(open_source("synthetic:32x32@400")) as capture:
        indexes = collect(capture, 12, pause_s=0.02)
    stats = capture.stats()
    assert indexes == sorted(set(indexes)) and indexes[-1] - indexes[0] > len(indexes)  # gaps: frames skipped
    assert stats.dropped > 0
    assert stats.captured == stats.delivered + stats.dropped + stats.pending
    assert capture.get_latest(timeout=0.1).index == stats.captured - 1


def test_get_latest_times_out_with_none_when_no_frame_comes():
    capture = CaptureThread(GatedSource(), reconnect=FAST).start()
    try:
        assert capture.get_latest(timeout=0.05) is None
    finally:
        capture.stop()


def test_video_file_is_read_lossless_and_ends(tmp_path: Path):
    video = write_video(tmp_path / "v.mp4", frames=5)
    log = StateLog()
    with CaptureThread(open_source(str(video)), on_state=log) as capture:
        frames = []
        last = None
        while (frame := capture.get_latest(timeout=5.0, after_index=last)) is not None:
            frames.append(frame)
            last = frame.index
            time.sleep(0.01)  # a slow model: the capture must wait for it, not skip frames
    assert [grey_level(f.image) for f in frames] == [0, 1, 2, 3, 4]
    assert (capture.captured, capture.dropped) == (5, 0)
    assert log.states[-1] == "ended" and "end of video file" in log.entries[-1][1]


def test_drop_frames_can_be_forced_for_a_file(tmp_path: Path):
    video = write_video(tmp_path / "v.mp4", frames=5)
    with CaptureThread(open_source(str(video)), drop_frames=True) as capture:
        wait_for(lambda: capture.finished)
    assert capture.captured == 5 and capture.dropped == 4
    assert grey_level(capture.get_latest(timeout=0.1).image) == 4


def test_source_failing_mid_stream_reconnects_with_monotonic_indexes():
    source = FlakySource(frames_per_open=3, failures=4)
    log = StateLog()
    with CaptureThread(source, reconnect=FAST, on_state=log, drop_frames=False) as capture:
        indexes = collect(capture, 20)
    assert indexes == list(range(20))  # lossless here, so strictly consecutive across 4 reconnects
    assert capture.reconnects == 4 and source.opens == 5
    assert log.states.count("reconnecting") == 4
    assert "flaky source lost its stream" in dict(log.entries)["reconnecting"]
    assert not source.is_open  # released on stop


def test_unplugged_device_waits_then_resumes_by_itself():
    source = FlakySource(frames_per_open=2, failures=3, gone=True)
    log = StateLog()
    with CaptureThread(source, reconnect=FAST, on_state=log, drop_frames=False) as capture:
        indexes = collect(capture, 6)
    assert indexes == list(range(6))
    # two quiet polls found nothing (no state flapping), the third found the device again
    assert log.states == ["opening", "streaming", "waiting_for_device", "opening", "streaming", "stopped"]
    assert source.failed == 3 and capture.reconnects == 1


def test_pause_for_device_and_resume_on_a_new_source_keeps_counting():
    first, second = GatedSource("cam-A"), GatedSource("cam-A")
    log = StateLog()
    capture = CaptureThread(first, reconnect=FAST, on_state=log).start()
    try:
        first.permits.release()
        assert capture.get_latest(timeout=5.0).index == 0
        capture.pause_for_device("camera removed (test)")
        wait_for(lambda: capture.state == "waiting_for_device")
        assert ("waiting_for_device", "camera removed (test)") in log.entries
        first.permits.release()  # the old camera must no longer be read
        capture.resume(second, "camera back at /dev/video9")
        wait_for(lambda: capture.state == "streaming")
        second.permits.release()
        frame = capture.get_latest(timeout=5.0, after_index=0)
        assert frame.index == 1 and second.served == 1
        assert ("opening", "camera back at /dev/video9") in log.entries
    finally:
        capture.stop()


def test_a_paused_capture_waits_for_resume_instead_of_polling():
    source = GatedSource()
    capture = CaptureThread(source, reconnect=FAST).start()
    try:
        wait_for(lambda: capture.state == "streaming")
        capture.pause_for_device("removed")
        wait_for(lambda: capture.state == "waiting_for_device")
        time.sleep(0.1)  # ten device polls' worth
        assert capture.state == "waiting_for_device"
    finally:
        capture.stop()
    assert capture.state == "stopped"


def test_rtsp_to_a_closed_port_reconnects_with_growing_backoff():
    log = StateLog()
    policy = ReconnectPolicy(initial_delay_s=0.01, max_delay_s=0.08, multiplier=2.0, jitter=0.0)
    url = f"rtsp://viewer:topsecret@127.0.0.1:{free_port()}/live"
    with CaptureThread(open_source(url, open_timeout_s=2.0), reconnect=policy, on_state=log) as capture:
        wait_for(lambda: log.states.count("reconnecting") >= 5)
    reasons = [r for s, r in log.entries if s == "reconnecting"]
    assert [r.rsplit(" in ", 1)[1] for r in reasons[:5]] == ["0.01s", "0.02s", "0.04s", "0.08s", "0.08s"]
    assert all("cannot connect to rtsp://***@127.0.0.1" in r and "topsecret" not in r for r in reasons)
    assert log.states[-1] == "stopped" and capture.captured == 0
    assert "topsecret" not in (capture.last_error or "")


def test_gives_up_after_max_attempts():
    log = StateLog()
    policy = ReconnectPolicy(initial_delay_s=0.0, max_delay_s=0.0, jitter=0.0, max_attempts=2)
    capture = CaptureThread(FlakySource(frames_per_open=0, failures=99), reconnect=policy, on_state=log).start()
    capture.join(timeout=5.0)
    assert log.states == ["opening"] + ["streaming", "reconnecting"] * 2 + ["streaming", "stopped"]
    assert "giving up after 2 reconnect attempts" in log.entries[-1][1]
    assert capture.get_latest(timeout=1.0) is None  # finished: no waiting for frames that cannot come


def test_a_failing_state_listener_does_not_stop_the_capture():
    def broken(state: str, reason: str) -> None:
        raise RuntimeError("listener bug")

    with CaptureThread(open_source("synthetic:32x32@200"), on_state=broken) as capture:
        assert capture.get_latest(timeout=5.0) is not None


def test_memory_stays_bounded_across_many_reconnects(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Each reconnect opens a real cv2.VideoCapture; a leaked one costs ~0.5 MB, so 300 would show. (Each
    reconnect also logs two warnings, which pytest's own log capture would keep: not the capture's memory.)"""
    caplog.set_level(logging.ERROR, logger="edge_agent.engine.capture")
    video = write_video(tmp_path / "v.mp4", frames=5)

    class FailingFile(VideoFileSource):
        def read(self) -> np.ndarray:
            if self._since_rewind >= 2:
                raise SourceError("stream broke")
            return super().read()

    source = FailingFile(video)
    capture = CaptureThread(source, reconnect=FAST, drop_frames=True).start()
    process = psutil.Process()
    try:
        wait_for(lambda: capture.reconnects >= 30, timeout=30)
        gc.collect()
        tracemalloc.start()
        rss_before, objects_before = process.memory_info().rss, len(gc.get_objects())
        snapshot_before = tracemalloc.take_snapshot()
        target = capture.reconnects + 300
        wait_for(lambda: capture.reconnects >= target, timeout=60)
        gc.collect()
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(snapshot_before, "filename"))
        rss_growth = process.memory_info().rss - rss_before
        object_growth = len(gc.get_objects()) - objects_before
    finally:
        tracemalloc.stop()
        capture.stop()
    assert rss_growth < 20 * 2**20, f"RSS grew {rss_growth / 2**20:.1f} MB over 300 reconnects"
    assert grown < 256 * 2**10, f"Python heap grew {grown / 2**10:.0f} KB over 300 reconnects"
    assert object_growth < 500
    assert source._cap is None  # the last VideoCapture was released
    assert threading.active_count() < 50


def test_policy_delays_grow_exponentially_up_to_the_cap():
    policy = ReconnectPolicy(initial_delay_s=0.5, max_delay_s=4.0, multiplier=2.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_policy_jitter_spreads_delays_within_bounds():
    import random

    policy = ReconnectPolicy(initial_delay_s=1.0, max_delay_s=1.0, jitter=0.2)
    rng = random.Random(1)
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in delays) and len(set(delays)) > 100


@pytest.mark.parametrize(
    "kwargs", [{"initial_delay_s": -1}, {"initial_delay_s": 5, "max_delay_s": 1}, {"jitter": 1.5}, {"multiplier": 0.5}]
)
def test_inconsistent_policy_is_refused(kwargs):
    with pytest.raises(ValueError):
        ReconnectPolicy(**kwargs)


def test_state_machine_terminal_states_have_no_exits_and_all_others_can_stop():
    for state, targets in ALLOWED.items():
        if state in TERMINAL:
            assert not targets
        else:
            assert CaptureState.STOPPED in targets
    assert CaptureState.STREAMING not in ALLOWED[CaptureState.WAITING_FOR_DEVICE]  # reopen goes through opening


def test_illegal_transition_raises():
    capture = CaptureThread(GatedSource())
    with pytest.raises(RuntimeError, match="illegal transition idle -> streaming"):
        capture._transition(CaptureState.STREAMING, "skipping opening")


def test_stop_before_start_ends_stopped():
    capture = CaptureThread(GatedSource())
    capture.stop()
    assert capture.state == "stopped" and capture.get_latest(timeout=0.01) is None


def test_frame_source_protocol_is_satisfied_by_test_sources():
    assert isinstance(GatedSource(), FrameSource) and isinstance(FlakySource(), FrameSource)


def test_a_camera_that_stays_away_logs_one_warning_not_one_per_retry(caplog: pytest.LogCaptureFixture):
    """Operators read the agent's log: losing a camera is one warning with the reason; each retry after it is
    debug detail, not another line."""
    caplog.set_level(logging.DEBUG, logger="edge_agent.engine.capture")
    source = open_source(f"rtsp://127.0.0.1:{free_port()}/nobody-home", open_timeout_s=1)
    capture = CaptureThread(source, reconnect=ReconnectPolicy(initial_delay_s=0.01, max_delay_s=0.01)).start()
    try:
        wait_for(lambda: sum("-> reconnecting" in r.getMessage() for r in caplog.records) >= 5, timeout=30)
    finally:
        capture.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "opening -> reconnecting: cannot connect to rtsp://127.0.0.1" in warnings[0]
