"""The bridge's own limits, as pure rules: per-device token buckets and the retain flag per topic."""

from __future__ import annotations

from edgefleet import protocol as p
from fleet_server.mqtt_limits import DeviceRateLimiter, retain_allowed


def test_a_device_may_burst_then_only_its_sustained_rate() -> None:
    limiter = DeviceRateLimiter(rate=2.0, burst=5)
    assert [limiter.allow("cam-1", now=0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.allow("cam-1", now=0.5) is True  # one token back after half a second at 2/s
    assert limiter.allow("cam-1", now=0.5) is False
    assert all(limiter.allow("cam-2", now=0.5) for _ in range(5))  # another device has its own bucket


def test_forgotten_devices_start_with_a_full_bucket_and_memory_is_bounded() -> None:
    limiter = DeviceRateLimiter(rate=1.0, burst=2, max_devices=3)
    for i in range(10):
        limiter.allow(f"cam-{i}", now=0.0)
    assert len(limiter._buckets) == 3  # noqa: SLF001 - the bound is the point
    assert limiter.allow("cam-0", now=0.0) and limiter.allow("cam-0", now=0.0)


def test_only_status_and_twins_may_be_retained() -> None:
    allowed = {kind for kind in p.TopicKind if retain_allowed(kind)}
    assert allowed == {p.TopicKind.STATUS, p.TopicKind.TWIN_REPORTED, p.TopicKind.TWIN_DESIRED}
