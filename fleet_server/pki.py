"""The fleet's certificate authority: made on first start in the state dir, signs device CSRs at enrollment,
keeps a revocation list (CRL) for decommissioned devices, and issues the server's own broker/TLS identity.

Keys are EC P-256 (small, fast, supported by Mosquitto/OpenSSL and paho). Private keys are written 0600.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgefleet.files import atomic_write
from fleet_server.errors import CsrInvalid

CA_DAYS = 3650
SERVER_DAYS = 825
SERVER_CN = "server"  # the server's own identity: its MQTT username on a broker that logs clients in by certificate
CLOCK_SKEW = dt.timedelta(minutes=5)


class CaIncomplete(RuntimeError):
    """Only one of ca.key / ca.crt is in the PKI directory: the server refuses to start rather than make a new CA."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable only by its owner (0600 from the first byte), atomically."""
    atomic_write(path, data, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class CertificateAuthority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    dir: Path

    # ------------------------------------------------------------------ creation / loading
    @classmethod
    def load_or_create(cls, pki_dir: Path, common_name: str = "edgefleet fleet CA") -> "CertificateAuthority":
        key_path, cert_path = pki_dir / "ca.key", pki_dir / "ca.crt"
        if key_path.exists() != cert_path.exists():
            # Making a new CA here would silently orphan every enrolled device (and anything pinned to the old
            # CA's fingerprint): a half-present CA is an operator's problem to solve, not ours to paper over.
            present, missing = (key_path, cert_path) if key_path.exists() else (cert_path, key_path)
            raise CaIncomplete(f"the fleet CA is incomplete: {present} exists but {missing} is missing. Restore "
                               f"{missing.name} from a backup; a new CA would cut off every enrolled device")
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path} is not an EC private key")
            return cls(key, x509.load_pem_x509_certificate(cert_path.read_bytes()), pki_dir)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgefleet"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(key_path, _key_pem(key))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert, pki_dir)

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def cert_path(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def crl_path(self) -> Path:
        return self.dir / "crl.pem"

    # ------------------------------------------------------------------ signing
    def _leaf(self, subject_key, common_name: str, days: int, *, server: bool,
              sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
        now = _now()
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject).public_key(subject_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def sign_csr(self, csr_pem: str, device_id: str, days: int = 365) -> x509.Certificate:
        """A client-auth certificate for `device_id` (CN), over the CSR's key.

        Whatever subject the CSR asks for is ignored: the server decides the identity. The CSR's
        self-signature must verify, proving the caller holds the private key.
        """
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode() if isinstance(csr_pem, str) else csr_pem)
        except (ValueError, TypeError) as exc:
            raise CsrInvalid(f"the CSR is not a PEM certificate signing request ({exc})") from None
        try:
            valid = csr.is_signature_valid
        except Exception as exc:  # noqa: BLE001 - cryptography raises several types for odd keys
            raise CsrInvalid(f"the CSR's signature cannot be checked ({exc})") from None
        if not valid:
            raise CsrInvalid("the CSR's self-signature does not verify: it was not signed by its own key")
        key = csr.public_key()
        check_device_key(key)
        check_requested_roles(csr)
        return self._leaf(key, device_id, days, server=False)

    def server_identity(self, hosts: list[str] | None = None) -> tuple[Path, Path]:
        """(cert, key) paths of the server's own TLS identity (CN `server`), made once and reused."""
        cert_path, key_path = self.dir / "server.crt", self.dir / "server.key"
        if cert_path.exists() and key_path.exists():
            return cert_path, key_path
        cert_bytes, key_bytes = self.issue_server_certificate(SERVER_CN, hosts or ["127.0.0.1", "localhost"])
        write_private(key_path, key_bytes)
        cert_path.write_bytes(cert_bytes)
        return cert_path, key_path

    def issue_server_certificate(self, common_name: str, hosts: list[str],
                                 days: int = SERVER_DAYS) -> tuple[bytes, bytes]:
        """(cert PEM, key PEM) of a new TLS server identity for `hosts` (IP addresses or DNS names), such as
        the broker's: clients check the broker's name against these, so list every name devices use."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.issue_server_cert(key, common_name, [host_name(h) for h in hosts], days)
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def issue_server_cert(self, key: ec.EllipticCurvePrivateKey, common_name: str, sans: list[x509.GeneralName],
                          days: int = SERVER_DAYS) -> x509.Certificate:
        """A server-auth (and client-auth) certificate over `key` naming `sans`: HTTPS and the broker's TLS
        listener (fleet_server.tls_identity decides the names and when to issue again)."""
        return self._leaf(key.public_key(), common_name, days, server=True, sans=sans)

    # ------------------------------------------------------------------ revocation
    def write_crl(self, revoked: list[tuple[str, dt.datetime]]) -> Path:
        """Write the CRL (PEM) listing `(hex serial, revoked_at)`; Mosquitto's `crlfile` reads it."""
        now = _now()
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(now).next_update(now + dt.timedelta(days=30)))
        for serial_hex, when in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(int(serial_hex, 16)).revocation_date(when).build()
            )
        crl = builder.sign(self.key, hashes.SHA256())
        tmp = self.crl_path.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp, self.crl_path)
        return self.crl_path


def host_name(host: str) -> x509.GeneralName:
    """A subject alternative name for a host: an IP address (brackets of an IPv6 literal dropped) or a DNS name."""
    import ipaddress

    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
RSA_BITS = (2048, 8192)


def check_device_key(key: object) -> None:
    """A device key the fleet's brokers and TLS 1.2 clients all handle: EC P-256 or P-384, or RSA 2048-8192
    (larger RSA keys only cost every handshake time, and are a cheap way to load the server)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise CsrInvalid(f"EC curve {key.curve.name} is refused: use P-256 (secp256r1) or P-384 (secp384r1)")
        return
    if isinstance(key, rsa.RSAPublicKey):
        if not RSA_BITS[0] <= key.key_size <= RSA_BITS[1]:
            raise CsrInvalid(f"RSA keys must have {RSA_BITS[0]}-{RSA_BITS[1]} bits (got {key.key_size})")
        return
    raise CsrInvalid(f"unsupported key type {type(key).__name__}: use EC P-256/P-384 or RSA >= 2048")


def check_requested_roles(csr: x509.CertificateSigningRequest) -> None:
    """Refuse a CSR that asks to be a CA or a server. The certificate is built from scratch either way (client
    auth only), but a device asking for more than it may have is a finding worth an error, not silence."""
    for ext in csr.extensions:
        value = ext.value
        if isinstance(value, x509.BasicConstraints) and value.ca:
            raise CsrInvalid("the CSR asks to be a certificate authority (basicConstraints CA:TRUE)")
        if isinstance(value, x509.KeyUsage) and (value.key_cert_sign or value.crl_sign):
            raise CsrInvalid("the CSR asks for certificate or CRL signing (keyCertSign / cRLSign)")
        if isinstance(value, x509.ExtendedKeyUsage) and set(value) - {ExtendedKeyUsageOID.CLIENT_AUTH}:
            names = ", ".join(sorted(u._name for u in value if u != ExtendedKeyUsageOID.CLIENT_AUTH))
            raise CsrInvalid(f"the CSR asks for roles a device may not have: {names}")


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def load_signing_public_pem(key_path: Path) -> str:
    """The public half of the fleet's Ed25519 model-signing key (models.signing), creating the key on first
    use; enrollment hands it to devices so they can verify every model package."""
    from models.signing import load_or_create_private_key, public_key_pem

    return public_key_pem(load_or_create_private_key(key_path))
