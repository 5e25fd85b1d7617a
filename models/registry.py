"""A local model registry: a directory of ``NAME-VERSION.efpkg`` files (``models/`` in the state dir by default).

The directory is the whole database: entries are read from the packages' own manifests, so a package copied in by
hand shows up too. ``add`` copies atomically and never replaces a different package under the same name and version
(a version, once published, means one set of bytes). The INT8 variant of a model keeps its name and takes the
version suffix ``-int8`` (``digits-1.0.0.efpkg`` and ``digits-1.0.0-int8.efpkg``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from models.archive import fsync_dir
from models.errors import PackageError, PackageNotFound, RegistryConflict
from models.manifest import PACKAGE_SUFFIX, Manifest
from models.package import file_sha256, read_manifest, verify
from models.signing import PublicKeyLike

log = logging.getLogger(__name__)

INT8_VERSION_SUFFIX = "-int8"


def int8_version(version: str) -> str:
    """The version the INT8 variant of ``version`` is published under."""
    return version if version.endswith(INT8_VERSION_SUFFIX) else version + INT8_VERSION_SUFFIX


def version_key(version: str) -> tuple:
    """Natural order: ``1.10.0`` after ``1.9.0``; numbers compare as numbers, text as text."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", version) if part)


def _utc(moment: datetime) -> datetime:
    """A manifest written by hand may carry a naive time: read it as UTC so it still sorts against aware ones."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    version: str
    precision: str
    deployable: bool
    path: Path
    sha256: str
    size: int
    created_at: datetime
    manifest: Manifest


class LocalRegistry:
    """Packages in one directory. Not a cache of anything: safe to share between processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._sha_cache: dict[Path, tuple[int, int, str]] = {}

    def _sha256(self, path: Path) -> str:
        st = path.stat()
        cached = self._sha_cache.get(path)
        if cached is not None and cached[:2] == (st.st_size, st.st_mtime_ns):
            return cached[2]
        digest = file_sha256(path)
        self._sha_cache[path] = (st.st_size, st.st_mtime_ns, digest)
        return digest

    def _entry(self, path: Path, manifest: Manifest | None = None) -> RegistryEntry:
        manifest = manifest or read_manifest(path)
        return RegistryEntry(name=manifest.name, version=manifest.version, precision=manifest.precision,
                             deployable=manifest.deployable, path=path, sha256=self._sha256(path),
                             size=path.stat().st_size, created_at=manifest.created_at, manifest=manifest)

    def add(self, pkg: Path, public_key: PublicKeyLike | None = None) -> RegistryEntry:
        """Copy ``pkg`` in (verifying the copy when a key is given) and return its entry. Adding the same bytes
        again is a no-op; different bytes under an existing name+version raise RegistryConflict."""
        pkg = Path(pkg)
        if not pkg.is_file():
            raise PackageNotFound(f"no package at {pkg}")
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=f".{pkg.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, open(pkg, "rb") as src:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            # Check the copy, not the source: what is stored is exactly what was verified.
            manifest = verify(tmp, public_key) if public_key is not None else read_manifest(tmp)
            target = self.root / manifest.package_filename
            try:
                os.link(tmp, target)
                fsync_dir(self.root)
            except FileExistsError:
                existing = self._sha256(target)
                if existing != digest.hexdigest():
                    raise RegistryConflict(
                        f"{manifest.name} {manifest.version} is already in the registry with different contents "
                        f"(sha256 {existing[:16]}..., {pkg.name} is {digest.hexdigest()[:16]}...); publish it under "
                        "a new version") from None
            return self._entry(target)
        finally:
            tmp.unlink(missing_ok=True)

    def list(self, name: str | None = None) -> list[RegistryEntry]:
        """Every readable package (optionally of one model), oldest first. Unreadable files are logged and skipped."""
        if not self.root.is_dir():
            return []
        entries = []
        for path in sorted(self.root.glob(f"*{PACKAGE_SUFFIX}")):
            try:
                entry = self._entry(path)
            except PackageError as exc:
                log.warning("skipping %s in the model registry: %s", path, exc)
                continue
            if name is None or entry.name == name:
                entries.append(entry)
        return sorted(entries, key=lambda e: (e.name, _utc(e.created_at), version_key(e.version)))

    def latest(self, name: str, precision: str | None = None) -> RegistryEntry:
        """The newest package of ``name`` (by created_at, then version), optionally of one precision."""
        entries = [e for e in self.list(name) if precision is None or e.precision == precision]
        if not entries:
            what = f"{name} ({precision})" if precision else name
            raise PackageNotFound(f"no package of {what} in the registry at {self.root}")
        return max(entries, key=lambda e: (_utc(e.created_at), version_key(e.version)))

    def get(self, name: str, version: str) -> RegistryEntry:
        path = self.root / f"{name}-{version}{PACKAGE_SUFFIX}"
        if path.is_file():
            entry = self._entry(path)
            if (entry.name, entry.version) == (name, version):
                return entry
        for entry in self.list(name):
            if entry.version == version:
                return entry
        raise PackageNotFound(f"no package {name} {version} in the registry at {self.root}")

    def remove(self, name: str, version: str) -> None:
        entry = self.get(name, version)
        entry.path.unlink()
        self._sha_cache.pop(entry.path, None)

