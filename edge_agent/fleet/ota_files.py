"""The files of one model download: ``packages/<sha256>.partial`` (the package as far as it has arrived, each
block written at its offset) and its sidecar ``<sha256>.partial.json`` (which blocks are done, the block size
and the total). Together they are what lets a download resume after a disconnect, a broker restart or a
``kill -9`` of the agent.

Order matters for a power cut as much as for a crash: a block's bytes are flushed to the partial file before
the sidecar (replaced atomically) says it is done, so the sidecar never claims bytes that are not on disk. The
final sha256 check would catch that anyway, at the price of the whole download.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from edgefleet.files import atomic_write

log = logging.getLogger(__name__)
PARTIAL_SUFFIX = ".partial"
SIDECAR_SUFFIX = ".partial.json"


class PartialPackage:
    """A package being assembled block by block; ``done`` holds the indexes of the blocks written."""

    def __init__(self, packages_dir: Path, sha256: str, total: int, block: int) -> None:
        self.dir = Path(packages_dir)
        self.sha256, self.total, self.block = sha256, total, block
        self.path = self.dir / f"{sha256}{PARTIAL_SUFFIX}"
        self.sidecar = self.dir / f"{sha256}{SIDECAR_SUFFIX}"
        self.final = self.dir / f"{sha256}.efpkg"
        self.done: set[int] = set()
        self._fd: int | None = None

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
        part.save()
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
    def bytes_done(self) -> int:
        return sum(self.expected_size(i) for i in self.done)

    @property
    def complete(self) -> bool:
        return len(self.done) == self.blocks

    def missing(self) -> list[int]:
        return [i for i in range(self.blocks) if i not in self.done]

    def write(self, index: int, data: bytes) -> None:
        """Write block ``index`` at its offset, flush it, then record it as done (see the module docstring)."""
        if self._fd is None:
            raise OSError(f"{self.path} is closed")
        os.pwrite(self._fd, data, index * self.block)
        os.fdatasync(self._fd)
        self.done.add(index)
        self.save()

    def save(self) -> None:
        atomic_write(self.sidecar, json.dumps({"sha256": self.sha256, "total": self.total, "block": self.block,
                                               "done": sorted(self.done)}) + "\n")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def verify_and_finish(self) -> str | None:
        """Check size and sha256; on success move the file to the cached package path. Returns why it failed
        (the partial and its sidecar are then removed: those bytes cannot become the package)."""
        self.close()
        digest = hashlib.sha256()
        with open(self.path, "rb") as fh:
            size = 0
            while chunk := fh.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
        problem = None
        if size != self.total:
            problem = f"size {size} bytes, expected {self.total}"
        elif digest.hexdigest() != self.sha256:
            problem = f"sha256 mismatch: got {digest.hexdigest()}, expected {self.sha256}"
        if problem is not None:
            self.discard()
            return problem
        os.replace(self.path, self.final)
        self.sidecar.unlink(missing_ok=True)
        return None

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)


def remove_other_partials(packages_dir: Path, keep: str) -> None:
    """One download at a time: a partial of another package (a desired model since replaced) is removed."""
    if not Path(packages_dir).is_dir():
        return
    for path in Path(packages_dir).iterdir():
        name = path.name
        if (name.endswith(PARTIAL_SUFFIX) or name.endswith(SIDECAR_SUFFIX)) and not name.startswith(keep):
            log.info("removing the partial download %s", name)
            path.unlink(missing_ok=True)
