"""How an enrolling device decides to trust the fleet server before it sends its one-time token.

- `http://` only to a loopback address (the token would otherwise cross the network in clear); refused before
  any connection is made.
- With `--ca-fingerprint`, the fleet CA is pinned: the device reads `GET /api/v1/ca` over a connection it does
  not trust yet, compares the certificate's SHA-256 with the fingerprint the operator gave it, and only on a
  match opens a verified connection (the pinned CA, or a public CA for a server given its own certificate) to
  send the token. What that connection returns must name the same CA.
- Without it, `https://` is verified against the system's CAs, which a fleet-CA certificate fails: the error
  then says to pass the fingerprint `edgefleet token create` printed.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from edgefleet.protocol import CaInfo
from edgefleet.trust import FingerprintError, certificate_fingerprint, is_loopback_host, normalize_fingerprint
from edge_agent.errors import EnrollmentError

CA_PATH = "/api/v1/ca"


def check_server_url(server_url: str) -> None:
    """Refuse a URL the token may not be sent to: not http(s), or plain http to anything but loopback."""
    parts = urlsplit(server_url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in ("http", "https") or not host:
        raise EnrollmentError(f"the server URL {server_url!r} must look like https://HOST:PORT")
    if scheme == "http" and not is_loopback_host(host):
        raise EnrollmentError(
            f"refusing to enroll over plain http to {host}: the token and the device's credentials would cross "
            "the network unencrypted. Use https:// with --ca-fingerprint (printed by `edgefleet token create`)")


def parse_fingerprint(text: str) -> str:
    try:
        return normalize_fingerprint(text)
    except FingerprintError as exc:
        raise EnrollmentError(str(exc)) from None


def fetch_pinned_ca(server_url: str, fingerprint: str, timeout: float = 15.0) -> str:
    """The fleet CA's PEM, read without trusting the connection and accepted only if its SHA-256 is
    `fingerprint` (normalised). Nothing secret is sent on this connection."""
    import httpx

    try:
        response = httpx.get(server_url.rstrip("/") + CA_PATH, timeout=timeout, verify=False)
        response.raise_for_status()
        info = CaInfo.model_validate_json(response.content)
        seen = certificate_fingerprint(info.certificate)
    except httpx.HTTPError as exc:
        raise EnrollmentError(f"cannot read the fleet CA from {server_url}: {exc}") from None
    except ValueError as exc:
        raise EnrollmentError(f"{server_url} did not send a fleet CA certificate: {exc}") from None
    if seen != fingerprint:
        raise EnrollmentError(
            f"the server at {server_url} presents a fleet CA with fingerprint {seen}, not the {fingerprint} you "
            "gave: refusing to send the token (wrong server, wrong fingerprint, or someone in between)")
    return info.certificate


def pinned_context(ca_pem: str) -> ssl.SSLContext:
    """Verifies the server against the pinned fleet CA, or a public CA when the server has its own certificate;
    host names are checked either way."""
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=ca_pem)
    return ctx


def check_returned_ca(ca_pem: str, fingerprint: str | None) -> None:
    """The CA the enrollment answer hands over must be the one that was pinned."""
    if fingerprint is None:
        return
    try:
        returned = certificate_fingerprint(ca_pem)
    except ValueError as exc:
        raise EnrollmentError(f"the enrollment answer holds no valid CA certificate: {exc}") from None
    if returned != fingerprint:
        raise EnrollmentError(f"the enrollment answer names CA {returned}, not the pinned {fingerprint}: "
                              "nothing was stored")


def tls_hint(server_url: str, exc: Exception) -> str:
    """The message for a connection failure, pointing at --ca-fingerprint when verification failed."""
    if "CERTIFICATE_VERIFY_FAILED" in str(exc) or isinstance(exc, ssl.SSLCertVerificationError):
        return (f"cannot verify the TLS certificate of {server_url} ({exc}); a fleet-CA certificate needs "
                "--ca-fingerprint SHA256 (printed by `edgefleet token create`)")
    return f"cannot reach the fleet server at {server_url}: {exc}"
