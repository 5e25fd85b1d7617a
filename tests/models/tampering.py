"""Build hostile and damaged packages from good ones, the way an attacker or a bad disk would."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Member:
    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""


def members_of(pkg: Path) -> list[Member]:
    with tarfile.open(pkg) as tar:
        return [Member(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def write_package(path: Path, members: list[Member]) -> Path:
    """A tar holding exactly ``members``, in order, whatever they are."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type, info.linkname, info.mode = m.type, m.linkname, 0o644
            if m.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
            else:
                tar.addfile(info)
    return path


def rewrite(pkg: Path, out: Path, *, drop: str | None = None, replace: dict[str, bytes] | None = None,
            add: list[Member] | None = None, prepend: list[Member] | None = None) -> Path:
    members = [m for m in members_of(pkg) if m.name != drop]
    for m in members:
        if replace and m.name in replace:
            m.data = replace[m.name]
    return write_package(out, (prepend or []) + members + (add or []))


def flip_byte_in_member(pkg: Path, name: str, index: int = 0) -> None:
    """Flip one byte of ``name``'s data in place in the archive file, leaving every tar header intact."""
    with tarfile.open(pkg) as tar:
        offset = tar.getmember(name).offset_data
    with open(pkg, "r+b") as fh:
        fh.seek(offset + index)
        byte = fh.read(1)
        fh.seek(offset + index)
        fh.write(bytes([byte[0] ^ 0x01]))
