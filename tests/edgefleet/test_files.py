"""Atomic writes: readers never see half a file, secrets are never world-readable, and exclusive creation
lets the first writer win."""

from __future__ import annotations

import stat
from pathlib import Path

from edgefleet.files import atomic_write


def test_a_secret_is_written_owner_only_and_replaces_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "key.pem"
    assert atomic_write(target, "first", 0o600)
    assert atomic_write(target, b"second", 0o600)
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["key.pem"]  # no temp files left behind


def test_exclusive_creation_keeps_the_first_file(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    assert atomic_write(target, "mine", exclusive=True) is True
    assert atomic_write(target, "theirs", exclusive=True) is False
    assert target.read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]
