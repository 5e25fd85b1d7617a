"""Exponential backoff with jitter: the one retry-delay rule for everything that reconnects (cameras, MQTT).

Jitter matters more than the curve: without it, a fleet that lost one server or one broker comes back in
lockstep, every device retrying at the same instants, and the recovering side meets a wall of connects."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before retry n (1-based): initial * multiplier**(n-1), capped at the maximum, then spread by
    +-``jitter`` (a fraction of the delay). ``max_attempts`` None = retry forever."""

    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial_delay_s < 0 or self.max_delay_s < self.initial_delay_s or self.multiplier < 1:
            raise ValueError(f"inconsistent backoff {self}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        base = min(self.max_delay_s, self.initial_delay_s * self.multiplier ** max(0, attempt - 1))
        if self.jitter and base:
            base *= 1 + self.jitter * (2 * (rng or random).random() - 1)
        return base
