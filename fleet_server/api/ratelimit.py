"""An in-process limit on refused enrollment attempts, per client address and per enrollment-token id.

Only *refused* attempts are charged: a fleet rolling out hundreds of devices behind one NAT address with one
many-use token is not slowed, while guessing (wrong tokens from one address, or wrong secrets for one
token id from many addresses) runs dry after a short burst. Once a bucket is empty, every attempt from that
source is answered 429 before the token is even looked up, until the bucket refills.

Each key gets a token bucket (`burst` tokens, refilled at `per_s`). The set of keys is bounded (least
recently used dropped first) so a flood of fresh addresses cannot grow memory without end. State lives in
this process: replicas behind a load balancer each count their own share.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fleet_server import credentials
from fleet_server.errors import RateLimited

MAX_KEYS = 10_000
IPV6_PREFIX = 64  # one IPv6 host usually holds a whole /64: counting single addresses would be no limit


class KeyedBuckets:
    """A token bucket per key. Thread-safe: FastAPI runs the sync enrollment route on a thread pool."""

    def __init__(self, burst: int, per_s: float, *, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if burst < 1 or per_s <= 0:
            raise ValueError("a bucket needs a burst of at least 1 and a positive refill rate")
        self.burst, self.per_s, self.max_keys, self._clock = burst, per_s, max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - stamp) * self.per_s)

    def wait_s(self, key: str) -> float:
        """Seconds until `key` has a whole token again; 0 when it has one now."""
        with self._lock:
            level = self._level(key, self._clock())
        return 0.0 if level >= 1.0 else (1.0 - level) / self.per_s

    def take(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            self._buckets[key] = (max(0.0, self._level(key, now) - 1.0), now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)


@dataclass(frozen=True)
class Source:
    """Who is attempting: the client address (an IPv6 one as its /64) and the token id, when well-formed."""

    address: str
    token_id: str | None

    @classmethod
    def of(cls, host: str | None, token: object) -> Source:
        parts = credentials.split(token, credentials.TOKEN_PREFIX) if isinstance(token, str) else None
        return cls(address=_address_key(host), token_id=parts[0] if parts else None)


def _address_key(host: str | None) -> str:
    try:
        ip = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False))
    return str(ip)


class EnrollLimiter:
    """`check` before an attempt (raises RateLimited, `kind` says which bucket ran dry); `refused` after one
    that failed."""

    ADDRESS, TOKEN = "enroll_address", "enroll_token"

    def __init__(self, burst: int, per_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.by_address = KeyedBuckets(burst, per_s, clock=clock)
        self.by_token = KeyedBuckets(burst, per_s, clock=clock)

    def check(self, source: Source) -> None:
        wait = self.by_address.wait_s(source.address)
        if wait > 0:
            raise _limited(self.ADDRESS, f"too many refused enrollment attempts from {source.address}", wait)
        if source.token_id is not None:
            wait = self.by_token.wait_s(source.token_id)
            if wait > 0:
                raise _limited(self.TOKEN, f"too many refused enrollment attempts for token {source.token_id}", wait)

    def refused(self, source: Source) -> None:
        self.by_address.take(source.address)
        if source.token_id is not None:
            self.by_token.take(source.token_id)


def _limited(kind: str, message: str, wait_s: float) -> RateLimited:
    retry = max(1, math.ceil(wait_s))
    return RateLimited(f"{message}; retry in {retry} s", retry, kind)
