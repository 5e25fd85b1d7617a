"""Atomic file writes, shared by every program (keys, certificates, configs, slot pointers)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644, *, exclusive: bool = False) -> bool:
    """Write ``data`` so readers see the old file or the new one, never a mix, and a secret (mode 0600) is
    never readable by others even for a moment (the temp file gets its mode before a byte is written).

    With ``exclusive`` an existing file wins and False is returned: two processes creating the same key at
    once end up sharing one instead of each trusting its own."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
            tmp = ""
        fsync_dir(path.parent)  # the new name itself must survive a power cut, not only the bytes
        return True
    finally:
        if tmp:
            Path(tmp).unlink(missing_ok=True)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (file data alone is not enough after a power cut)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
