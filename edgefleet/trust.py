"""Trust rules the server and the agent share: which addresses may be talked to without TLS, and how the fleet
CA is named by its fingerprint (what `edgefleet token create` prints and `agent enroll --ca-fingerprint` pins).

Standard library and `cryptography` only, so both extras have it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


class FingerprintError(ValueError):
    """A CA fingerprint that is not a SHA-256 digest written in hex."""


def is_loopback_host(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost). A name that would need
    DNS is never loopback: whoever answers DNS could point it anywhere, so plain HTTP to it is not safe."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard_host(host: str) -> bool:
    """0.0.0.0 or :: (listen on every interface)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def certificate_fingerprint(cert: x509.Certificate | str | bytes) -> str:
    """The SHA-256 of the certificate's DER bytes, lower-case hex without separators (what `openssl x509
    -fingerprint -sha256` prints, less its colons). Takes a certificate object or PEM text/bytes."""
    if not isinstance(cert, x509.Certificate):
        data = cert.encode("ascii") if isinstance(cert, str) else cert
        cert = x509.load_pem_x509_certificate(data)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def normalize_fingerprint(text: str) -> str:
    """Accepts the fingerprint as printed here, with colons (openssl's style), spaces, upper case, or a
    `sha256:` / `SHA256=` prefix; returns 64 lower-case hex digits or raises FingerprintError."""
    cleaned = text.strip().lower()
    for prefix in ("sha256:", "sha256=", "sha256 fingerprint="):
        if cleaned.startswith(prefix):
            cleaned = cleaned[len(prefix):]
    cleaned = re.sub(r"[\s:]", "", cleaned)
    if not _HEX64.fullmatch(cleaned):
        raise FingerprintError(f"{text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
    return cleaned
