"""The server's store of signed model packages on disk: one file per package, named by the sha256 of its bytes
(`STATE_DIR/packages/<sha256>.efpkg`).

Named by content, a file never changes once it is there: a twin names a package by sha256, and the OTA block
server serves its blocks straight from `path(sha256)`, so what a device fetches is what was verified. An upload
is written beside its final place while it is hashed, verified against the fleet's signing key, and only then
renamed into place (atomic on one filesystem), so a reader never sees half a package or one that failed
verification. The database (services.models) indexes what is here; this module knows only files.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from fleet_server.errors import InvalidInput
from models.archive import fsync_dir
from models.errors import PackageError
from models.manifest import PACKAGE_SUFFIX, Manifest
from models.package import verify
from models.signing import PublicKeyLike

PACKAGES_DIR = "packages"
_TEMP_PREFIX = ".upload-"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PackageRefused(InvalidInput):
    """An upload that is not a package signed by the fleet's key: unsigned, tampered, another key's, not a
    package at all. Nothing of it is kept."""


class ModelStore:
    """Packages under `root`. `lock` serialises placing or removing a file with the database change that
    goes with it (services.models), so a delete cannot remove a file a concurrent upload has just indexed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = _lock_for(self.root)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> "ModelStore":
        """The server's store: `packages/` in its state dir."""
        return cls(Path(state_dir) / PACKAGES_DIR)

    def path(self, sha256: str) -> Path | None:
        """The stored package with this sha256 (lowercase hex), or None. Never a file still being uploaded."""
        if not _SHA256.match(sha256):
            return None
        path = self.root / f"{sha256}{PACKAGE_SUFFIX}"
        return path if path.is_file() else None

    def add_from_stream(self, chunks: Iterable[bytes], public_key: PublicKeyLike) -> tuple[str, int, Manifest]:
        """Write `chunks` to a temp file while hashing them, verify the whole package, then rename it to
        `<sha256>.efpkg` (a package already there is kept: same name, same bytes). Returns (sha256, size,
        manifest). Raises PackageRefused when verification fails; an exception from `chunks` (the body limit,
        a client that went away) is raised as it is. Either way the temp file is removed."""
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=_TEMP_PREFIX, suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            sha256 = digest.hexdigest()
            try:
                manifest = verify(tmp, public_key)
            except PackageError as exc:
                raise PackageRefused(_reason(exc, tmp.name)) from None
            with self.lock:
                target = self.root / f"{sha256}{PACKAGE_SUFFIX}"
                if target.is_file():
                    tmp.unlink()
                else:
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, target)
                    fsync_dir(self.root)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return sha256, size, manifest

    def remove(self, sha256: str) -> bool:
        """Delete the package's file; False when there was none."""
        path = self.path(sha256)
        if path is None:
            return False
        path.unlink(missing_ok=True)
        fsync_dir(self.root)
        return True


def _reason(exc: PackageError, temp_name: str) -> str:
    """The package error's message, naming the upload rather than the temp file it was checked in."""
    return "package refused: " + str(exc).replace(temp_name, "upload")


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(root: Path) -> threading.Lock:
    """One lock per store directory in this process: each request builds its own ModelStore."""
    key = root.resolve()
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())
