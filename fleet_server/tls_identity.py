"""The server's TLS identities issued by the fleet CA: the HTTPS certificate and the embedded broker's listener
certificate. Each names the addresses clients use (see `certificate_hosts`) and is issued again when that list
changes, when it nears expiry, or when the CA changed; otherwise the files on disk are reused.

Devices and the CLI verify these against the fleet CA (pinned by fingerprint at enrollment), so no public CA is
needed. A certificate given in the settings replaces the HTTPS one (e.g. from a public CA).
"""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgefleet.files import atomic_write
from edgefleet.mqtt import BrokerUrl
from edgefleet.trust import is_wildcard_host
from fleet_server.pki import CertificateAuthority, host_name, write_private
from fleet_server.settings import ServerSettings

RENEW_BEFORE = dt.timedelta(days=30)
HTTPS_NAME = "https"
BROKER_NAME = "broker-tls"


def certificate_hosts(settings: ServerSettings) -> list[str]:
    """Every name a client may use for this server: the bind addresses (or, bound to all interfaces, this
    machine's host name), the hosts of the public URLs, `tls_hosts`, and loopback. Sorted, without repeats."""
    hosts = {"127.0.0.1", "localhost", *settings.tls_hosts}
    for bind in (settings.host, settings.embedded_broker_host):
        hosts.add(socket.gethostname() if is_wildcard_host(bind) else bind)
    if settings.public_url:
        hosts.add(urlsplit(settings.public_url).hostname or "")
    if settings.public_broker_url:
        hosts.add(BrokerUrl.parse(settings.public_broker_url).host)
    return sorted(h for h in hosts if h)


def _names(cert: x509.Certificate) -> set[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n.value) for n in sans}


def _reusable(cert_path: Path, key_path: Path, ca: CertificateAuthority, hosts: list[str]) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    fresh = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > RENEW_BEFORE
    return fresh and _names(cert) == {str(host_name(h).value) for h in hosts}


def issue_tls_identity(ca: CertificateAuthority, name: str, hosts: list[str]) -> tuple[Path, Path]:
    """(cert, key) paths of `pki/<name>.crt|.key`, a certificate for `hosts` from the fleet CA."""
    cert_path, key_path = ca.dir / f"{name}.crt", ca.dir / f"{name}.key"
    if _reusable(cert_path, key_path, ca, hosts):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.issue_server_cert(key, name, [host_name(h) for h in hosts])
    write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def https_identity(settings: ServerSettings, ca: CertificateAuthority) -> tuple[Path, Path]:
    """The HTTPS (cert, key): the ones in the settings when given, else issued by the fleet CA."""
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        return settings.tls_cert_file, settings.tls_key_file
    return issue_tls_identity(ca, HTTPS_NAME, certificate_hosts(settings))


def broker_identity(settings: ServerSettings, ca: CertificateAuthority) -> tuple[Path, Path]:
    """The embedded broker's TLS listener (cert, key), issued by the fleet CA."""
    return issue_tls_identity(ca, BROKER_NAME, certificate_hosts(settings))
