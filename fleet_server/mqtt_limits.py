"""What the server's bridge refuses from devices before it parses anything: more messages than a device may
send, and retained messages where the protocol has none.

The broker already keeps each device to its own topics (per-device permissions) and caps payload size; these
are the limits a broker cannot express: a per-device message rate (a device stuck in a loop must not starve the
ingest of the rest of the fleet) and the retain flag per topic (only `status` and `twin/reported` are retained
by devices; a retained telemetry message would be replayed to every new subscriber forever)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from edgefleet import protocol as p

RETAINED_KINDS = frozenset({p.TopicKind.STATUS, p.TopicKind.TWIN_REPORTED, p.TopicKind.TWIN_DESIRED})


@dataclass
class _Bucket:
    tokens: float
    at: float


class DeviceRateLimiter:
    """A token bucket per device: ``rate`` messages a second sustained, bursts up to ``burst``. An agent sends a
    few messages a minute (telemetry, events), and drains its outbox after an outage at most at half this rate
    (edge_agent.fleet.outbox), so a well-behaved device never meets the limit. Buckets of the least recently seen devices are forgotten past ``max_devices``."""

    def __init__(self, rate: float = 200.0, burst: float = 2000.0, max_devices: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate, self.burst, self.max_devices = rate, burst, max_devices
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, device_id: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.pop(device_id, None) or _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            self._buckets[device_id] = bucket
            if len(self._buckets) > self.max_devices:
                self._buckets.popitem(last=False)
            if bucket.tokens < 1:
                return False
            bucket.tokens -= 1
            return True


def retain_allowed(kind: p.TopicKind) -> bool:
    return kind in RETAINED_KINDS
