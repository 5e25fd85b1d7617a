"""The tar layer of a model package: deterministic writing and a safe, streaming, single-pass reader.

A package is a flat, uncompressed tar of plain files. The reader trusts nothing in it: every member is checked
(plain file, flat safe name, no duplicates) before a byte of it is read, and payload files are hashed as they stream
past, so verification never needs to extract anything and a 14 MB model costs one sequential read.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from models.errors import IntegrityError, ManifestError, PackageNotFound, SignatureError, UnsafePackageError
from models.manifest import MANIFEST_NAME, SIGNATURE_NAME
from edgefleet.files import fsync_dir  # noqa: F401 - re-exported for models.package and models.registry

CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 4 << 20
MAX_SIGNATURE_BYTES = 64 << 10
RESERVED_NAMES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$")


def check_file_name(name: str, *, where: str = "package") -> None:
    """Raise UnsafePackageError unless ``name`` is a flat file name that cannot leave its directory."""
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or name.startswith("\\"):
        raise UnsafePackageError(f"{where}: member {name!r} is an absolute path")
    parts = re.split(r"[/\\]", name)
    if ".." in parts:
        raise UnsafePackageError(f"{where}: member {name!r} escapes the target directory ('..')")
    if len(parts) > 1:
        raise UnsafePackageError(f"{where}: member {name!r} is a nested path; packages hold flat file names only")
    if not _SAFE_NAME.match(name):
        raise UnsafePackageError(
            f"{where}: member name {name!r} is not allowed (letters, digits, '_', '.', '+', '-'; not starting with "
            "'.' or '-'; at most 200 characters)")


def check_member(member: tarfile.TarInfo, seen: set[str], where: str) -> None:
    """Refuse anything but a uniquely named plain file with a safe flat name."""
    name = member.name
    if member.issym():
        raise UnsafePackageError(f"{where}: member {name!r} is a symbolic link (to {member.linkname!r})")
    if member.islnk():
        raise UnsafePackageError(f"{where}: member {name!r} is a hard link (to {member.linkname!r})")
    if member.isdev():
        raise UnsafePackageError(f"{where}: member {name!r} is a device or FIFO")
    if member.isdir():
        raise UnsafePackageError(f"{where}: member {name!r} is a directory; packages hold flat files only")
    if member.sparse is not None or member.type == tarfile.GNUTYPE_SPARSE:
        raise UnsafePackageError(f"{where}: member {name!r} is a sparse file; packages hold plain files only")
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        raise UnsafePackageError(f"{where}: member {name!r} has unsupported tar type {member.type!r}")
    check_file_name(name, where=where)
    if name in seen:
        raise UnsafePackageError(f"{where}: member {name!r} appears twice (a later copy could replace a checked one)")
    seen.add(name)


@dataclass
class ScanResult:
    """What one pass over a package saw: the raw control files and the sha256 of every payload file."""

    manifest_bytes: bytes | None = None
    signature_bytes: bytes | None = None
    digests: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def _read_small(fh: BinaryIO, member: tarfile.TarInfo, limit: int, where: str) -> bytes:
    if member.size > limit:
        error = ManifestError if member.name == MANIFEST_NAME else SignatureError
        raise error(f"{where}: {member.name} is {member.size} bytes, more than the {limit}-byte limit")
    return fh.read()


def scan(pkg: Path, extract_to: Path | None = None) -> ScanResult:
    """Read ``pkg`` once, front to back. With ``extract_to`` (an existing empty directory) each checked member is
    also written there; the caller decides afterwards whether to keep it."""
    where = Path(pkg).name
    result = ScanResult()
    seen: set[str] = set()
    try:
        raw = open(pkg, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise PackageNotFound(f"no package at {pkg}") from None
    except IsADirectoryError:
        raise PackageNotFound(f"{pkg} is a directory, not a package file") from None
    try:
        with raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                check_member(member, seen, where)
                fh = tar.extractfile(member)
                assert fh is not None  # a regular file always has data
                out = open(extract_to / member.name, "xb") if extract_to is not None else None  # noqa: SIM115
                try:
                    if member.name == MANIFEST_NAME:
                        result.manifest_bytes = _read_small(fh, member, MAX_MANIFEST_BYTES, where)
                        chunks = [result.manifest_bytes]
                    elif member.name == SIGNATURE_NAME:
                        result.signature_bytes = _read_small(fh, member, MAX_SIGNATURE_BYTES, where)
                        chunks = [result.signature_bytes]
                    else:
                        chunks = iter(lambda: fh.read(CHUNK), b"")
                    digest, size = hashlib.sha256(), 0
                    for chunk in chunks:
                        digest.update(chunk)
                        size += len(chunk)
                        if out is not None:
                            out.write(chunk)
                    if size != member.size:
                        raise IntegrityError(f"{where}: {member.name} is truncated ({size} of {member.size} bytes)")
                    if member.name not in RESERVED_NAMES:
                        result.digests[member.name] = digest.hexdigest()
                        result.sizes[member.name] = size
                    if out is not None:  # a device may lose power right after the slot switch
                        out.flush()
                        os.fsync(out.fileno())
                finally:
                    if out is not None:
                        out.close()
    except (tarfile.TarError, EOFError) as exc:
        raise IntegrityError(f"{where}: not a readable package archive ({exc})") from None
    return result


def read_member(pkg: Path, name: str, limit: int) -> bytes | None:
    """One small member's bytes, seeking past the others; None when absent. No other member is checked."""
    where = Path(pkg).name
    try:
        with tarfile.open(pkg, mode="r:") as tar:
            for member in tar:
                if member.name != name:
                    continue
                if not member.isreg():
                    raise UnsafePackageError(f"{where}: {name} is not a plain file")
                fh = tar.extractfile(member)
                assert fh is not None
                return _read_small(fh, member, limit, where)
    except FileNotFoundError:
        raise PackageNotFound(f"no package at {pkg}") from None
    except IsADirectoryError:
        raise PackageNotFound(f"{pkg} is a directory, not a package file") from None
    except (tarfile.TarError, EOFError) as exc:
        raise IntegrityError(f"{where}: not a readable package archive ({exc})") from None
    return None


class _HashingReader:
    """Hashes what tarfile reads, so pack can prove each file did not change between hashing and writing."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.digest.update(data)
        return data


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, mtime, 0o644, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar(fh: BinaryIO, control: list[tuple[str, bytes]], payload: dict[str, tuple[Path, str, int]],
              mtime: int) -> None:
    """Write the control files in the given order, then the payload sorted by name, all with fixed metadata, so the
    same inputs always give the same bytes. ``payload`` maps name -> (path, expected sha256, expected size)."""
    import io

    with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in control:
            tar.addfile(_info(name, len(data), mtime), io.BytesIO(data))
        for name in sorted(payload):
            path, expected, size = payload[name]
            with open(path, "rb") as src:
                reader = _HashingReader(src)
                try:
                    tar.addfile(_info(name, size, mtime), reader)  # type: ignore[arg-type]
                except OSError as exc:
                    raise IntegrityError(f"{name}: {path} changed while packing ({exc})") from None
                if reader.digest.hexdigest() != expected or src.read(1):
                    raise IntegrityError(f"{name}: {path} changed while packing; pack again")
