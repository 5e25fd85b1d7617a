"""Model delivery, the agent's end: fetches a package the desired twin names, block by block over MQTT.

The agent asks on ``ota/get`` for blocks it lacks, a few at a time (``window``, asked in runs of consecutive
blocks once half the window is free), and the server answers each block on ``ota/data/{sha256}/{offset}``. Each
block is written at its offset into the partial file; a checkpoint (every ``save_every_blocks`` blocks or
``save_every_s`` seconds, and when blocks stop coming) flushes it and records the blocks in the sidecar
(edge_agent.fleet.ota_files), so a disconnect or a broker restart costs only the blocks in flight and a ``kill -9``
at most the blocks since the last checkpoint. A block that does not come within ``timeout_s`` of its request, with
no block at all for ``timeout_s`` (a slow link that still delivers a window's blocks one by one has lost nothing),
is asked for again after a backoff delay, at most ``retry.max_attempts`` times; then the download fails with that
reason. A block of the wrong size, or for an offset not asked for, is refused (counted in ``refused``); a
wrong-size block is asked again. Once every block is there, size and sha256 (computed as blocks arrive) are
checked, the file becomes the cached package and ``on_complete`` hands it to the install path (the slots
verify the signature; nothing unverified activates).

Threads: blocks arrive on the agent's inbox worker (a 256 KiB write is short); timeouts, re-requests and idle
checkpoints run on the process's one OTA timer thread (edge_agent.fleet.ota_ticker) and the final check on a
short-lived thread of its own, so a large package never holds up twin handling. Progress goes out through
``on_progress`` (throttled to ``progress_every_s``, state changes always) as the reported twin's
``properties["ota"]``: sha256, state (downloading | verifying | installed | failed), bytes, total, percent, error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from edgefleet import protocol
from edgefleet.backoff import Backoff
from edgefleet.protocol import DEFAULT_OTA_BLOCK, MAX_OTA_BLOCK, ModelRef, OtaGet
from edge_agent.fleet.ota_files import SAVE_EVERY_BLOCKS, SAVE_EVERY_S, PartialPackage, remove_other_partials
from edge_agent.fleet.ota_ticker import TICKER

log = logging.getLogger(__name__)
DEFAULT_WINDOW = 8  # the server allows twice this many blocks in flight per device
DEFAULT_RETRY = Backoff(initial_delay_s=0.5, max_delay_s=10.0, jitter=0.3, max_attempts=5)
IDLE_S = 2.0  # no block for this long: checkpoint what arrived


class DownloadPending(Exception):
    """The desired model's package is on its way; the running model stays until it has arrived."""


class OtaDownloader:
    """One download at a time (a newer desired model replaces the one being fetched)."""

    def __init__(self, device_id: str, packages_dir: Path, *, publish: Callable[[str, bytes], object],
                 ready: Callable[[], bool], on_progress: Callable[[dict], None],
                 on_complete: Callable[[str], None], block_size: int = DEFAULT_OTA_BLOCK,
                 window: int = DEFAULT_WINDOW, timeout_s: float = 10.0, retry: Backoff = DEFAULT_RETRY,
                 progress_every_s: float = 0.25, save_every_blocks: int = SAVE_EVERY_BLOCKS,
                 save_every_s: float = SAVE_EVERY_S) -> None:
        if not 0 < block_size <= MAX_OTA_BLOCK or window < 1:
            raise ValueError(f"block size must be in 1..{MAX_OTA_BLOCK} and window >= 1")
        self.device_id, self.packages_dir = device_id, Path(packages_dir)
        self._publish, self._ready = publish, ready
        self._on_progress, self._on_complete = on_progress, on_complete
        self.block_size, self.window, self.timeout_s, self.retry = block_size, window, timeout_s, retry
        self._batch = max(1, min(window // 2, protocol.MAX_OTA_BLOCKS_PER_GET))
        self._get_topic = protocol.ota_get_topic(device_id)
        self.progress_every_s = progress_every_s
        self.save_every_blocks, self.save_every_s = save_every_blocks, save_every_s
        self.refused: Counter[str] = Counter()  # blocks refused by reason: unexpected, wrong_size
        self.requests = 0
        self._cond = threading.Condition()
        self._part: PartialPackage | None = None
        self._status: dict | None = None
        self._failed: tuple[str, int, str] | None = None  # (sha256, revision, why): not retried for that revision
        self._revision = 0
        self._waiting: dict[int, float | None] = {}  # block -> answer deadline (None: to send once connected)
        self._retry_at: dict[int, float] = {}  # block -> when to ask again
        self._attempts: Counter[int] = Counter()
        self._verify = False
        self._was_ready = False
        self._last_progress = 0.0
        self._last_block_at = 0.0
        self._stop = threading.Event()
        self._finisher: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> "OtaDownloader":
        TICKER.add(self)
        return self

    def stop(self) -> None:
        self._stop.set()
        TICKER.remove(self)
        finisher = self._finisher
        if finisher is not None:
            finisher.join(5)
        with self._cond:
            if self._part is not None and not self._verify:  # (one still being verified: the finisher's)
                self._part.close()

    def status(self) -> dict | None:
        with self._cond:
            return dict(self._status) if self._status else None

    # ------------------------------------------------------------------------------------ requests from the twin
    def want(self, ref: ModelRef, revision: int) -> str | None:
        """Make sure ``ref`` is being fetched. Returns why it cannot be (a failure for this same desired revision is
        not retried: a new revision or a restart tries again); None while it is on its way."""
        with self._cond:
            if self._failed is not None and self._failed[:2] == (ref.sha256, revision):
                return self._failed[2]
            if self._part is not None and self._part.sha256 == ref.sha256 and not self._stop.is_set():
                return None
            self._revision = revision
            if ref.size is None:
                return self._fail(ref.sha256, "the desired model gives no package size")
            self._begin(ref)
            return None

    def abandon(self, sha256: str, why: str) -> None:
        """Give up the download of ``sha256`` (the update watchdog saw it stall): it ends failed with ``why``, the
        blocks already written stay for a later desired revision to resume, and one being verified is dropped
        when its check returns."""
        with self._cond:
            if self._part is not None and self._part.sha256 == sha256:
                if not self._verify:
                    try:
                        self._part.checkpoint()  # the blocks that came are kept for the resume
                    except OSError:
                        log.exception("saving the partial package before giving it up failed")
                self._fail(sha256, why)

    def outcome(self, sha256: str, state: str, error: str | None = None) -> None:
        """The install path's verdict on a package this downloader fetched (installed, or failed with why)."""
        with self._cond:
            if self._status is None or self._status["sha256"] != sha256:
                return
            self._status.update(state=state, error=error)
            self._emit(force=True)

    # ------------------------------------------------------------------------------------ blocks (inbox worker)
    def on_block(self, sha256: str, offset: int, data: bytes) -> bool:
        """Take one arriving block; False when it was refused."""
        with self._cond:
            part = self._part
            if part is None or part.sha256 != sha256 or self._verify or offset % part.block:
                return self._refuse("unexpected", sha256, offset, "not a block being downloaded")
            index = offset // part.block
            if index not in self._waiting:
                return self._refuse("unexpected", sha256, offset, "not asked for (or already written)")
            if len(data) != part.expected_size(index):
                self._refuse("wrong_size", sha256, offset, f"{len(data)} bytes, expected {part.expected_size(index)}")
                del self._waiting[index]
                self._again(index, time.monotonic())
                return False
            try:
                part.write(index, data)
                self._last_block_at = now = time.monotonic()
                if not part.complete and part.checkpoint_due(now, self.save_every_blocks, self.save_every_s):
                    part.checkpoint()
            except OSError as exc:
                self._fail(sha256, f"writing the partial package failed: {exc}")
                return False
            del self._waiting[index]
            self._attempts.pop(index, None)
            if part.complete:
                self._verify_now(part)
            else:
                self._fill()
                self._emit()
            return True

    # ------------------------------------------------------------------------------------ internals (lock held)
    def _begin(self, ref: ModelRef) -> None:
        if self._part is not None and not self._verify:
            self._part.close()  # (one being verified is the finisher's to close)
        remove_other_partials(self.packages_dir, ref.sha256)
        self._waiting.clear()
        self._retry_at.clear()
        self._attempts.clear()
        self._verify = False
        self._failed = None
        try:
            self._part = PartialPackage.open(self.packages_dir, ref.sha256, ref.size, self.block_size)
        except OSError as exc:
            self._fail(ref.sha256, f"cannot create the partial package: {exc}")
            return
        log.info("downloading %s %s (%s, %d bytes; %d of %d blocks already here)", ref.name, ref.version,
                 ref.sha256[:12], ref.size, len(self._part.done), self._part.blocks)
        self._status = {"sha256": ref.sha256, "state": "downloading", "bytes": 0, "total": ref.size,
                        "percent": 0.0, "error": None}
        if self._part.complete:
            self._verify_now(self._part)
            return
        self._fill()
        self._emit(force=True)

    def _fill(self) -> None:
        """Ask for the next missing blocks, up to ``window`` outstanding, in runs of consecutive blocks (one
        ``ota/get`` each). Once started, it waits until half the window is free, so each request asks for
        several blocks instead of one per arriving block; the last blocks of a package are asked for at once."""
        part = self._part
        free = self.window - len(self._waiting) - len(self._retry_at)
        if free < 1:
            return
        wanted = []
        for index in part.missing():
            if index not in self._waiting and index not in self._retry_at:
                wanted.append(index)
                if len(wanted) == free:
                    break
        if self._waiting and len(wanted) == free < self._batch:
            return  # more to ask for than fits now: wait for a bigger run
        while wanted:
            run = 1
            while (run < len(wanted) and run < protocol.MAX_OTA_BLOCKS_PER_GET
                   and wanted[run] == wanted[0] + run):
                run += 1
            self._ask(wanted[0], run)
            wanted = wanted[run:]

    def _ask(self, index: int, count: int = 1) -> None:
        """Ask for ``count`` blocks from ``index`` on (the server cuts the package's last block to its size)."""
        part = self._part
        if not self._ready():
            for i in range(index, index + count):
                self._waiting[i] = None  # sent when the connection is back
            return
        self._was_ready = True  # asked on this connection: only a later reconnect makes it worth asking again
        length = part.block if count > 1 else part.expected_size(index)
        request = OtaGet(sha256=part.sha256, offset=index * part.block, length=length, count=count)
        self._publish(self._get_topic, request.encode())
        self.requests += 1
        deadline = time.monotonic() + self.timeout_s
        for i in range(index, index + count):
            self._waiting[i] = deadline

    def _again(self, index: int, now: float) -> None:
        """Count a failed attempt for ``index``; schedule it again after a backoff delay, or give up."""
        self._attempts[index] += 1
        attempts = self._attempts[index]
        if self.retry.max_attempts is not None and attempts >= self.retry.max_attempts:
            self._fail(self._part.sha256, f"block at offset {index * self._part.block} did not arrive intact after "
                       f"{attempts} attempts")
            return
        self._retry_at[index] = now + self.retry.delay(attempts)

    def _fail(self, sha256: str, why: str, discard: bool = False) -> str:
        log.warning("model download %s failed: %s", sha256[:12], why)
        if self._part is not None and (discard or not self._verify):  # (one being verified: the finisher's)
            self._part.discard() if discard else self._part.close()  # a timeout keeps what arrived
        self._part = None
        self._waiting.clear()
        self._retry_at.clear()
        self._verify = False
        self._failed = (sha256, self._revision, why)
        base = self._status if self._status and self._status["sha256"] == sha256 else \
            {"sha256": sha256, "bytes": 0, "total": None, "percent": 0.0}
        self._status = {**base, "state": "failed", "error": why[:300]}
        self._emit(force=True)
        return why

    def _refuse(self, reason: str, sha256: str, offset: int, why: str) -> bool:
        self.refused[reason] += 1
        log.warning("refused OTA block %s@%d: %s", sha256[:12], offset, why)
        return False

    def _set_state(self, state: str) -> None:
        if self._status is not None:
            self._status["state"] = state
            self._emit(force=True)

    def _emit(self, force: bool = False) -> None:
        if self._status is None:
            return
        part = self._part
        if part is not None and part.sha256 == self._status["sha256"]:
            done = part.bytes_done
            self._status.update(bytes=done, percent=round(100.0 * done / part.total, 1) if part.total else 100.0)
        now = time.monotonic()
        if force or now - self._last_progress >= self.progress_every_s:
            self._last_progress = now
            self._on_progress(dict(self._status))

    def _verify_now(self, part: PartialPackage) -> None:
        """Every block is here: check and hand over on a thread of its own (a resumed package's earlier blocks
        are read back for the sha256, which must hold up neither the inbox nor the shared timer)."""
        self._verify = True
        self._set_state("verifying")
        self._finisher = threading.Thread(target=self._finish, args=(part,), name=f"ota-verify-{self.device_id}",
                                          daemon=True)
        self._finisher.start()

    # ------------------------------------------------------------------------------------ shared timer thread
    def tick(self) -> None:
        """Called by the process's one OTA timer thread (edge_agent.fleet.ota_ticker) (twice a second)."""
        with self._cond:
            if not self._stop.is_set():
                self._tick(time.monotonic())

    def _tick(self, now: float) -> None:
        ready, was_ready = self._ready(), self._was_ready
        self._was_ready = ready
        if self._part is None or self._verify:
            return
        idle = now - self._last_block_at >= IDLE_S  # blocks stopped coming: make what arrived durable now
        if self._part.checkpoint_due(now, 1 if idle else self.save_every_blocks, self.save_every_s):
            try:
                self._part.checkpoint()
            except OSError as exc:
                self._fail(self._part.sha256, f"saving the partial package failed: {exc}")
                return
        if ready and not was_ready:  # (re)connected: what was asked before may be lost; ask again
            for index in list(self._waiting):
                self._ask(index)
        if not ready:
            return  # no timeouts while offline: a dead link is not a missing block
        flowing = now - self._last_block_at < self.timeout_s  # blocks still arriving: the rest are queued, not lost
        for index, deadline in list(self._waiting.items()):
            if deadline is not None and deadline <= now and not flowing:
                del self._waiting[index]
                self._again(index, now)
                if self._part is None:
                    return
        for index, when in list(self._retry_at.items()):
            if when <= now:
                del self._retry_at[index]
                self._ask(index)
        self._fill()

    def _finish(self, part: PartialPackage) -> None:
        """Hash outside the lock (blocks for another download may arrive meanwhile), then hand over."""
        try:
            problem = part.verify_and_finish()
        except OSError as exc:  # reading back, flushing or renaming: those bytes cannot become the package
            part.discard()
            problem = f"the partial package could not be checked: {exc}"
        with self._cond:
            if self._part is not part:
                return  # replaced by a newer desired model while hashing
            self._verify = False
            if problem is not None:
                self._fail(part.sha256, f"verification failed: {problem}", discard=True)
                return
            self._part = None
            log.info("model package %s downloaded and verified", part.sha256[:12])
        self._on_complete(part.sha256)
