"""Model delivery, the server's end: answers each device's `ota/get` with one block of a package.

Delivery is pull-based (docs/DESIGN.md section 2): the device asks for the blocks it still lacks and the server
answers each request on its own, keeping no per-download state. That makes resuming free (a device that comes
back asks again) and keeps memory bounded by the requests being answered, never by package or fleet size: each
answer reads just its block from the package file.

The bridge calls :meth:`OtaServer.handle` on paho's network thread, which must stay free (it is the thread that
reads the PUBACKs a publish waits for), so the handler only counts and queues; a small pool reads and publishes.
A request may ask for a run of consecutive blocks (``count``); each block is answered on its own. Each device may
have at most ``max_in_flight`` blocks queued or being answered: a device that asks for the whole package at once
gets the rest refused (``busy``) and asks again later, instead of filling the queue. The limit is twice the
agent's window, since a block is still counted here for a moment after the device has it and asks again.

Per block, the costly parts are looked up once, not each time: the assignment check (a database read in the
fleet) is remembered for ``assigned_ttl_s`` once it said yes (a refusal is asked again every time, so a fresh
assignment is served at once; a withdrawn one may still be served for at most the TTL, and those are bytes the
device was entitled to a moment ago), and each package file stays open for positional reads while requests
for it come (closed after ``idle_close_s`` without one, and at :meth:`OtaServer.close`). The resolver is still
asked each time, so a package removed from the registry is refused as ``unknown`` from then on.

Refusals are counted by reason in ``refused`` (like the bridge's counter) and logged rate-limited: unknown
(no package with that sha256), unassigned (the device's desired twin does not name it), offset_past_end,
length_too_large (over ``max_block``), busy, publish_failed. None raises into the bridge.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgefleet.log_limits import ThrottledLog
from edgefleet.protocol import MAX_OTA_BLOCK, OtaGet

log = logging.getLogger(__name__)

Resolve = Callable[[str], "Path | None"]
Assigned = Callable[[str, str], bool]
PublishBlock = Callable[[str, str, int, bytes], None]

REFUSAL_REASONS = ("unknown", "unassigned", "offset_past_end", "length_too_large", "busy", "publish_failed")


class OtaServer:
    """Answers block requests from a small thread pool; see the module docstring for the rules."""

    def __init__(self, resolve: Resolve, assigned: Assigned, publish: PublishBlock, *, workers: int = 8,
                 max_in_flight: int = 16, max_block: int = MAX_OTA_BLOCK, assigned_ttl_s: float = 2.0,
                 idle_close_s: float = 30.0) -> None:
        if not 0 < max_block <= MAX_OTA_BLOCK:
            raise ValueError(f"max_block must be in 1..{MAX_OTA_BLOCK}, got {max_block}")
        self.resolve, self.assigned, self.publish = resolve, assigned, publish
        self.max_in_flight, self.max_block = max_in_flight, max_block
        self.refused: Counter[str] = Counter()
        self.served = 0
        self.bytes_served = 0
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._log = ThrottledLog(log)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ota-serve")
        self._closed = False
        self.assigned_ttl_s, self.idle_close_s = assigned_ttl_s, idle_close_s
        self._assigned_until: dict[tuple[str, str], float] = {}  # (device, sha256) -> yes until (monotonic)
        self._files: dict[Path, tuple[int, float]] = {}  # open package -> (fd, last used)

    def handle(self, device_id: str, request: OtaGet) -> bool:
        """Queue an answer to each block of ``request`` (on the caller's thread: counting only). False when
        refused now. Every block counts against ``max_in_flight``: a run that does not fit is refused whole."""
        if request.length > self.max_block:
            self._refuse("length_too_large", device_id, request, f"asks {request.length} bytes, at most "
                         f"{self.max_block}")
            return False
        with self._lock:
            if self._closed:
                return False
            busy = self._in_flight[device_id] + request.count > self.max_in_flight
            if not busy:
                self._in_flight[device_id] += request.count
        if busy:
            self._refuse("busy", device_id, request, f"already {self.in_flight(device_id)} blocks in flight, at "
                         f"most {self.max_in_flight}")
            return False
        for queued, offset in enumerate(request.offsets()):
            try:
                self._pool.submit(self._answer, device_id, request, offset)
            except RuntimeError:  # shut down between the check and the submit
                for _ in range(request.count - queued):
                    self._done(device_id)
                return False
        return True

    def refusals(self) -> dict[str, int]:
        """A copy of ``refused`` (pool threads count into it while a scrape reads)."""
        with self._lock:
            return dict(self.refused)

    def in_flight(self, device_id: str) -> int:
        with self._lock:
            return self._in_flight[device_id]

    def close(self) -> None:
        """Stop answering: queued requests are dropped (devices ask again), running ones finish."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for fd, _used in self._files.values():
                os.close(fd)
            self._files.clear()

    # ------------------------------------------------------------------------------------- pool threads
    def _answer(self, device_id: str, request: OtaGet, offset: int) -> None:
        try:
            data = self._read(device_id, request, offset)
            if data is None:
                return
            try:
                self.publish(device_id, request.sha256, offset, data)
            except Exception as exc:  # noqa: BLE001 - the broker went away; the device asks again
                self._refuse("publish_failed", device_id, request, str(exc))
                return
            with self._lock:
                self.served += 1
                self.bytes_served += len(data)
        except Exception:  # noqa: BLE001 - a resolver or reader bug must not kill a pool thread silently
            self._log.exception("answering %s@%d for %s failed", request, offset, device_id, key=f"error:{device_id}")
        finally:
            self._done(device_id)

    def _read(self, device_id: str, request: OtaGet, offset: int) -> bytes | None:
        """The block at ``offset``, read from the package file alone; None (counted) when it may not be served."""
        path = self.resolve(request.sha256)
        if path is None:
            self._refuse("unknown", device_id, request, "no package with this sha256")
            return None
        if not self._is_assigned(device_id, request.sha256):
            self._refuse("unassigned", device_id, request, "the device's desired twin does not name this package")
            return None
        try:
            fd, size = self._open(Path(path))
        except FileNotFoundError:  # removed from the registry after resolve
            self._refuse("unknown", device_id, request, "the package file is gone")
            return None
        if offset >= size:
            self._refuse("offset_past_end", device_id, request, f"the package has {size} bytes", offset)
            return None
        return os.pread(fd, min(request.length, size - offset), offset)

    def _is_assigned(self, device_id: str, sha256: str) -> bool:
        key, now = (device_id, sha256), time.monotonic()
        with self._lock:
            if self._assigned_until.get(key, 0.0) > now:
                return True
        if not self.assigned(device_id, sha256):
            return False
        with self._lock:
            if len(self._assigned_until) > 10_000:  # bounded: expired entries go first, then all
                self._assigned_until = {k: t for k, t in self._assigned_until.items() if t > now}
                if len(self._assigned_until) > 10_000:
                    self._assigned_until.clear()
            self._assigned_until[key] = now + self.assigned_ttl_s
        return True

    def _open(self, path: Path) -> tuple[int, int]:
        """The package's open descriptor and size (packages are content-addressed: an open file never changes)."""
        now = time.monotonic()
        with self._lock:
            for stale in [p for p, (_fd, used) in self._files.items() if now - used > self.idle_close_s]:
                os.close(self._files.pop(stale)[0])
            if path in self._files:
                fd = self._files[path][0]
            else:
                fd = os.open(path, os.O_RDONLY)
            self._files[path] = (fd, now)
            return fd, os.fstat(fd).st_size

    def _done(self, device_id: str) -> None:
        with self._lock:
            self._in_flight[device_id] -= 1
            if self._in_flight[device_id] <= 0:
                del self._in_flight[device_id]

    def _refuse(self, reason: str, device_id: str, request: OtaGet, why: str, offset: int | None = None) -> None:
        with self._lock:
            self.refused[reason] += 1
        where = request.offset if offset is None else offset
        self._log.warning("refused OTA block %s@%d (x%d) for %s: %s: %s", request.sha256[:12], where, request.count,
                          device_id, reason, why, key=f"{reason}:{device_id}")
