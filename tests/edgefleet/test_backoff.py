"""The one retry-delay rule (cameras and MQTT reconnect with it)."""

from __future__ import annotations

import random

import pytest

from edgefleet.backoff import Backoff


def test_delays_grow_geometrically_up_to_the_cap_without_jitter() -> None:
    policy = Backoff(initial_delay_s=0.5, max_delay_s=4.0, multiplier=2.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_jitter_spreads_each_delay_within_its_band_and_differs_between_devices() -> None:
    policy = Backoff(initial_delay_s=1.0, max_delay_s=1.0, jitter=0.2)
    one, two = random.Random(1), random.Random(2)
    first = [policy.delay(3, one) for _ in range(50)]
    second = [policy.delay(3, two) for _ in range(50)]
    assert all(0.8 <= d <= 1.2 for d in first + second)
    assert first != second and len(set(first)) > 40


@pytest.mark.parametrize("kwargs", [{"initial_delay_s": -1}, {"initial_delay_s": 5, "max_delay_s": 1},
                                    {"multiplier": 0.5}, {"jitter": 1.0}, {"jitter": -0.1}])
def test_inconsistent_policies_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)
