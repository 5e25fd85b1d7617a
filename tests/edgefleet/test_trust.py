"""The shared trust rules (edgefleet/trust.py): what counts as loopback, and the fingerprint's accepted spellings."""

from __future__ import annotations

import pytest

from edgefleet.trust import FingerprintError, is_loopback_host, is_wildcard_host, normalize_fingerprint

DIGEST = "0123456789abcdef" * 4


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("10.255.255.1", False), ("0.0.0.0", False), ("localhost.example.com", False),
    ("fleet.example", False), ("", False),
])
def test_only_addresses_this_machine_alone_reaches_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_wildcards() -> None:
    assert is_wildcard_host("0.0.0.0") and is_wildcard_host("::") and not is_wildcard_host("127.0.0.1")


@pytest.mark.parametrize("text", [DIGEST, DIGEST.upper(), ":".join(DIGEST[i:i + 2] for i in range(0, 64, 2)),
                                  f"sha256:{DIGEST}", f"SHA256={DIGEST}", f"  {DIGEST}\n"])
def test_a_fingerprint_may_be_written_as_openssl_or_this_cli_prints_it(text: str) -> None:
    assert normalize_fingerprint(text) == DIGEST


@pytest.mark.parametrize("text", ["", DIGEST[:-1], DIGEST + "0", "g" * 64, f"md5:{DIGEST}"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(FingerprintError):
        normalize_fingerprint(text)
