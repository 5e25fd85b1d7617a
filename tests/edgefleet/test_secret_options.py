"""Secrets as systemd credentials: a service finds them in $CREDENTIALS_DIRECTORY, a blank one means "not given"
(a unit's fallback), and one that cannot be read is an error that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.secret_options import credential


def test_a_credential_is_read_stripped_and_absent_ones_are_none(tmp_path: Path) -> None:
    (tmp_path / "edgefleet-api-key").write_text("efk_abc\n")
    (tmp_path / "blank").write_text("\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert credential("edgefleet-api-key", env) == "efk_abc"
    assert credential("blank", env) is None
    assert credential("missing", env) is None
    assert credential("edgefleet-api-key", {}) is None  # not a systemd service


def test_a_credential_that_cannot_be_read_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "edgefleet-enroll-token").mkdir()  # a unit pointing LoadCredential= at the wrong kind of file
    with pytest.raises(ValueError, match="edgefleet-enroll-token"):
        credential("edgefleet-enroll-token", {"CREDENTIALS_DIRECTORY": str(tmp_path)})
