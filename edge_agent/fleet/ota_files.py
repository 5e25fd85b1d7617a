"""The files of one model download: ``packages/<sha256>.partial`` (the package as far as it has arrived, each
block written at its offset) and its sidecar ``<sha256>.partial.json`` (which blocks are done, the block size
and the total). Together they are what lets a download resume after a disconnect, a broker restart or a
``kill -9`` of the agent.

Durability comes in checkpoints, not per block: flushing the file and replacing the sidecar for every block made
the disk, not the network, the limit of a download (bench/ota_bench.py). Blocks are written as they come and
:meth:`PartialPackage.checkpoint` flushes the partial file and then records every block written so far; the
downloader checkpoints every ``save_every_blocks`` blocks or ``save_every_s`` seconds, whichever comes first, and
as soon as blocks stop coming. A crash therefore costs at most the blocks written since the last checkpoint.

Order matters for a power cut as much as for a crash: the bytes are flushed to the partial file before the
sidecar (replaced atomically) says they are done, so the sidecar never claims bytes that are not on disk.

The sha256 is computed as the blocks arrive, over the contiguous prefix written so far (a block that arrives
ahead of a gap is read back from the file once the gap fills), so the final check does not read the whole
package again; what a resumed download already had is read back by that final check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from edgefleet.files import atomic_write

log = logging.getLogger(__name__)
PARTIAL_SUFFIX = ".partial"
SIDECAR_SUFFIX = ".partial.json"
SAVE_EVERY_BLOCKS = 32
SAVE_EVERY_S = 5.0
HASH_AHEAD_BLOCKS = 8  # blocks read back per write to keep the running sha256 going


class PartialPackage:
    """A package being assembled block by block; ``done`` holds the indexes of the blocks written, ``saved`` those
    the sidecar records (a subset: the difference is what a crash now would cost)."""

    def __init__(self, packages_dir: Path, sha256: str, total: int, block: int) -> None:
        self.dir = Path(packages_dir)
        self.sha256, self.total, self.block = sha256, total, block
        self.path = self.dir / f"{sha256}{PARTIAL_SUFFIX}"
        self.sidecar = self.dir / f"{sha256}{SIDECAR_SUFFIX}"
        self.final = self.dir / f"{sha256}.efpkg"
        self.done: set[int] = set()
        self.saved = 0  # how many of ``done`` the sidecar records
        self.saved_at = time.monotonic()
        self.bytes_done = 0
        self._fd: int | None = None
        self._digest = hashlib.sha256()
        self._hashed = 0  # blocks [0, _hashed) are in the digest

    @classmethod
    def open(cls, packages_dir: Path, sha256: str, total: int, block: int) -> "PartialPackage":
        """Resume what a sidecar describes (its block size wins over ``block``), or start afresh."""
        packages_dir = Path(packages_dir)
        packages_dir.mkdir(parents=True, exist_ok=True)
        part = cls(packages_dir, sha256, total, block)
        saved = part.read_sidecar()
        if saved is not None and saved.get("total") == total and part.path.exists() and \
                isinstance(saved.get("block"), int) and saved["block"] > 0:
            part.block = saved["block"]
            part.done = {i for i in saved.get("done", []) if isinstance(i, int) and 0 <= i < part.blocks}
        else:
            part.path.unlink(missing_ok=True)
        part._fd = os.open(part.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(part._fd, total)
        part.bytes_done = sum(part.expected_size(i) for i in part.done)
        part.checkpoint(force=True)
        return part

    def read_sidecar(self) -> dict | None:
        try:
            saved = json.loads(self.sidecar.read_text())
        except (OSError, ValueError):
            return None
        return saved if isinstance(saved, dict) and saved.get("sha256") == self.sha256 else None

    @property
    def blocks(self) -> int:
        return -(-self.total // self.block)

    def expected_size(self, index: int) -> int:
        return min(self.block, self.total - index * self.block)

    @property
    def complete(self) -> bool:
        return len(self.done) == self.blocks

    def missing(self) -> list[int]:
        return [i for i in range(self.blocks) if i not in self.done]

    def write(self, index: int, data: bytes) -> None:
        """Write block ``index`` at its offset and add it to the running sha256; durable at the next checkpoint."""
        if self._fd is None:
            raise OSError(f"{self.path} is closed")
        os.pwrite(self._fd, data, index * self.block)
        if index not in self.done:
            self.done.add(index)
            self.bytes_done += len(data)
        if index == self._hashed:
            self._digest.update(data)
            self._hashed += 1
            self._hash_ready(limit=HASH_AHEAD_BLOCKS)

    def checkpoint_due(self, now: float, every_blocks: int, every_s: float) -> bool:
        unsaved = len(self.done) - self.saved
        return unsaved > 0 and (unsaved >= every_blocks or now - self.saved_at >= every_s)

    def checkpoint(self, force: bool = False) -> None:
        """Flush the partial file, then let the sidecar record every block written (see the module docstring)."""
        if self._fd is None or (not force and len(self.done) == self.saved):
            return
        os.fdatasync(self._fd)
        self.save()

    def save(self) -> None:
        atomic_write(self.sidecar, json.dumps({"sha256": self.sha256, "total": self.total, "block": self.block,
                                               "done": sorted(self.done)}) + "\n")
        self.saved, self.saved_at = len(self.done), time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def verify_and_finish(self) -> str | None:
        """Check size and sha256; on success flush and move the file to the cached package path. Returns why it
        failed (the partial and its sidecar are then removed: those bytes cannot become the package)."""
        problem = None
        if self._fd is None:
            problem = "the partial package is closed"
        elif (size := os.fstat(self._fd).st_size) != self.total:
            problem = f"size {size} bytes, expected {self.total}"
        else:
            self._hash_ready()
            if self._hashed != self.blocks:
                problem = f"blocks from offset {self._hashed * self.block} missing"
            elif self._digest.hexdigest() != self.sha256:
                problem = f"sha256 mismatch: got {self._digest.hexdigest()}, expected {self.sha256}"
        if problem is not None:
            self.discard()
            return problem
        os.fdatasync(self._fd)  # the cached package must survive a power cut whole
        self.close()
        os.replace(self.path, self.final)
        self.sidecar.unlink(missing_ok=True)
        return None

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)

    def _hash_ready(self, limit: int | None = None) -> None:
        """Extend the digest over blocks already written right after the hashed prefix (read back from the file);
        at most ``limit`` blocks, so a block's writer never pays for a long resumed prefix."""
        while self._hashed in self.done and self._fd is not None and (limit is None or limit > 0):
            limit = None if limit is None else limit - 1
            size = self.expected_size(self._hashed)
            data = os.pread(self._fd, size, self._hashed * self.block)
            if len(data) != size:
                return  # a short file: verify_and_finish reports it
            self._digest.update(data)
            self._hashed += 1


def remove_other_partials(packages_dir: Path, keep: str) -> None:
    """One download at a time: a partial of another package (a desired model since replaced) is removed."""
    if not Path(packages_dir).is_dir():
        return
    for path in Path(packages_dir).iterdir():
        name = path.name
        if (name.endswith(PARTIAL_SUFFIX) or name.endswith(SIDECAR_SUFFIX)) and not name.startswith(keep):
            log.info("removing the partial download %s", name)
            path.unlink(missing_ok=True)
