"""A repeating failure is written once per interval, and the next line says how many were held back."""

from __future__ import annotations

import logging

import pytest

from edgefleet.log_limits import ThrottledLog


def test_the_same_line_is_written_once_per_interval_with_the_count_held_back(
        caplog: pytest.LogCaptureFixture) -> None:
    throttled = ThrottledLog(logging.getLogger("test.throttle"), every_s=0.0)
    throttled.every_s = 3600.0
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        written = [throttled.warning("PUBACK timeout on %s", "a/b") for _ in range(813)]
    assert written.count(True) == 1 and throttled.suppressed == 812
    assert len(caplog.records) == 1
    throttled.every_s = 0.0
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        throttled.warning("PUBACK timeout on %s", "a/b")
    assert caplog.records[-1].getMessage() == "PUBACK timeout on a/b (812 similar held back)"


def test_different_keys_do_not_hold_each_other_back(caplog: pytest.LogCaptureFixture) -> None:
    throttled = ThrottledLog(logging.getLogger("test.throttle.keys"), every_s=3600.0)
    with caplog.at_level(logging.WARNING, logger="test.throttle.keys"):
        for key in ("dev-1", "dev-2", "dev-1"):
            throttled.warning("dropped message from %s", key, key=key)
    assert [r.getMessage() for r in caplog.records] == ["dropped message from dev-1", "dropped message from dev-2"]


def test_the_number_of_keys_it_remembers_is_bounded() -> None:
    throttled = ThrottledLog(logging.getLogger("test.throttle.bound"), every_s=3600.0, max_keys=10)
    for i in range(1000):
        throttled.warning("x", key=str(i))
    assert len(throttled._last) <= 10  # noqa: SLF001 - the bound is the point of this test
