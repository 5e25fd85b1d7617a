"""The capture-to-feeder hand-off: live sources keep only the newest frame, other sources are read a few frames
ahead and never lose one, and the counters always add up."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge_agent.engine.frame_buffer import FrameBuffer
from edge_agent.engine.sources.base import Frame
from tests.waiting import wait_for

IMAGE = np.zeros((2, 2, 3), np.uint8)


def frame(i: int) -> Frame:
    return Frame(IMAGE, i, time.monotonic(), "test")


def balanced(buf: FrameBuffer) -> bool:
    return buf.captured == buf.delivered + buf.dropped + buf.pending


def never() -> bool:
    return False


def test_live_buffer_keeps_only_the_newest_and_counts_the_rest_as_dropped():
    lock = threading.Condition()
    buf = FrameBuffer(lock)
    with lock:
        for i in range(5):
            assert buf.put(frame(i), never)
        assert (buf.captured, buf.dropped, buf.pending) == (5, 4, 1)
        assert buf.take(0.0, None, never).index == 4
        assert balanced(buf) and buf.delivered == 1


def test_newest_frame_can_be_read_again_without_after_index_but_not_with_it():
    lock = threading.Condition()
    buf = FrameBuffer(lock)
    with lock:
        buf.put(frame(0), never)
        assert buf.take(0.0, None, never).index == 0
        assert buf.take(0.0, None, never).index == 0  # again, counted once
        assert buf.delivered == 1
        assert buf.take(0.01, 0, never) is None  # nothing newer than 0 came


def test_lossless_buffer_blocks_the_producer_when_full_and_resumes_when_drained():
    lock = threading.Condition()
    buf = FrameBuffer(lock, read_ahead=3, resume_at=1)
    buf.lossless = True
    produced: list[int] = []

    def produce() -> None:
        for i in range(10):
            with lock:
                assert buf.put(frame(i), never)
            produced.append(i)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    wait_for(lambda: len(produced) >= 3, 5, "three frames in the buffer")
    time.sleep(0.05)  # a chance for a wrong fourth put to get through: it must not
    assert produced == [0, 1, 2]  # full: the fourth frame waits, nothing is dropped
    taken = []
    with lock:
        taken.append(buf.take(1.0, None, never).index)
    time.sleep(0.05)
    assert len(produced) == 3  # 2 left: still above resume_at
    last = taken[-1]
    while len(taken) < 10:
        with lock:
            got = buf.take(5.0, last, never)
        assert got is not None
        taken.append(got.index)
        last = got.index
    producer.join(5)
    assert taken == list(range(10))
    assert (buf.captured, buf.delivered, buf.dropped, buf.pending) == (10, 10, 0, 0)


def test_an_interrupted_producer_gives_up_without_counting_the_frame():
    lock = threading.Condition()
    buf = FrameBuffer(lock, read_ahead=1, resume_at=0)
    buf.lossless = True
    stop = threading.Event()
    results = []

    def produce() -> None:
        with lock:
            buf.put(frame(0), never)
            results.append(buf.put(frame(1), stop.is_set))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    time.sleep(0.05)
    with lock:
        stop.set()
        lock.notify_all()
    producer.join(5)
    assert results == [False]
    assert (buf.captured, buf.pending) == (1, 1) and balanced(buf)


def test_finished_capture_hands_out_what_is_left_then_none():
    lock = threading.Condition()
    buf = FrameBuffer(lock)
    buf.lossless = True
    with lock:
        buf.put(frame(0), never)
        buf.put(frame(1), never)
        done = lambda: True  # noqa: E731
        assert [buf.take(1.0, i - 1 if i else None, done).index for i in (0, 1)] == [0, 1]
        assert buf.take(1.0, 1, done) is None


def test_frames_older_than_what_the_caller_has_are_skipped_as_dropped():
    lock = threading.Condition()
    buf = FrameBuffer(lock)
    buf.lossless = True
    with lock:
        for i in range(3):
            buf.put(frame(i), never)
        assert buf.take(0.0, 1, never).index == 2
        assert (buf.delivered, buf.dropped) == (1, 2) and balanced(buf)


def test_resume_point_must_leave_room():
    with pytest.raises(ValueError, match="resume_at"):
        FrameBuffer(threading.Condition(), read_ahead=2, resume_at=2)
