"""Atomic private file writes: nats-server may re-read a file at any moment (a reload, a restart after a
crash), so it must see either the old file or the new one, never half of one; and the users file holds
password hashes, so it is readable by its owner only from the first byte on."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically, mode 0600 (mkstemp creates it so; no window with wider rights)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
