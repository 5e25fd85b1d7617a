"""The partial package on disk (edge_agent.fleet.ota_files): the sidecar records blocks only at a checkpoint and
after the bytes are flushed, a reopened partial resumes exactly what the sidecar holds, and the running sha256
is right whatever order the blocks arrive in (a gap filled later, a resumed prefix)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from edge_agent.fleet.ota_files import PartialPackage

BLOCK = 1000


@pytest.fixture()
def package() -> bytes:
    return os.urandom(7 * BLOCK + 123)


def blocks(data: bytes) -> list[bytes]:
    return [data[i:i + BLOCK] for i in range(0, len(data), BLOCK)]


def sidecar_done(part: PartialPackage) -> list[int]:
    return json.loads(part.sidecar.read_text())["done"]


def test_the_sidecar_records_blocks_at_checkpoints_only(tmp_path: Path, package: bytes) -> None:
    sha = hashlib.sha256(package).hexdigest()
    part = PartialPackage.open(tmp_path, sha, len(package), BLOCK)
    assert sidecar_done(part) == []
    for i, data in enumerate(blocks(package)[:3]):
        part.write(i, data)
    assert sidecar_done(part) == [] and not part.checkpoint_due(part.saved_at, 4, 60.0)
    assert part.checkpoint_due(part.saved_at, 3, 60.0) and part.checkpoint_due(part.saved_at + 61.0, 4, 60.0)
    part.checkpoint()
    assert sidecar_done(part) == [0, 1, 2] and not part.checkpoint_due(part.saved_at + 60.0, 1, 0.0)
    part.write(3, blocks(package)[3])  # written, never checkpointed: a crash now costs this block
    part.close()
    resumed = PartialPackage.open(tmp_path, sha, len(package), BLOCK)
    assert resumed.done == {0, 1, 2} and resumed.missing() == [3, 4, 5, 6, 7]
    assert resumed.bytes_done == 3 * BLOCK


@pytest.mark.parametrize("order", ["in_order", "reversed", "resumed"])
def test_the_running_sha256_accepts_the_package_in_any_order(tmp_path: Path, package: bytes, order: str) -> None:
    sha = hashlib.sha256(package).hexdigest()
    parts = list(enumerate(blocks(package)))
    part = PartialPackage.open(tmp_path, sha, len(package), BLOCK)
    if order == "resumed":
        for i, data in parts[2:5]:
            part.write(i, data)
        part.checkpoint()
        part.close()
        part = PartialPackage.open(tmp_path, sha, len(package), BLOCK)
        parts = parts[:2] + parts[5:]
    for i, data in (reversed(parts) if order == "reversed" else parts):
        part.write(i, data)
    assert part.complete
    assert part.verify_and_finish() is None
    assert part.final.read_bytes() == package
    assert sorted(p.name for p in tmp_path.iterdir()) == [part.final.name]


def test_a_wrong_byte_fails_the_running_sha256_and_removes_the_partial(tmp_path: Path, package: bytes) -> None:
    sha = hashlib.sha256(package).hexdigest()
    part = PartialPackage.open(tmp_path, sha, len(package), BLOCK)
    for i, data in enumerate(blocks(package)):
        part.write(i, data if i != 3 else bytes([data[0] ^ 1]) + data[1:])
    problem = part.verify_and_finish()
    assert problem is not None and problem.startswith("sha256 mismatch")
    assert list(tmp_path.iterdir()) == []
