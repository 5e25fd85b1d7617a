"""What the fleet CA refuses to sign: weak or exotic keys, and CSRs that ask for more than a device may be."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleet_server.errors import CsrInvalid
from fleet_server.pki import CertificateAuthority


def csr_for(key, *extensions: x509.ExtensionType) -> str:  # noqa: ANN001 - any private key type
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1()),
                                 rsa.generate_private_key(65537, 2048)], ids=["P-256", "P-384", "RSA-2048"])
def test_supported_keys_are_signed(ca: CertificateAuthority, key) -> None:  # noqa: ANN001
    ca.sign_csr(csr_for(key), "cam-1234").verify_directly_issued_by(ca.cert)


@pytest.mark.parametrize("key, reason", [
    (ec.generate_private_key(ec.SECP521R1()), "curve secp521r1 is refused"),
    (ec.generate_private_key(ec.SECP256K1()), "curve secp256k1 is refused"),
    (rsa.generate_private_key(65537, 1024), "RSA keys must have 2048"),
    (ed25519.Ed25519PrivateKey.generate(), "unsupported key type"),
], ids=["P-521", "secp256k1", "RSA-1024", "Ed25519"])
def test_other_keys_are_refused_with_the_reason(ca: CertificateAuthority, key, reason: str) -> None:  # noqa: ANN001
    with pytest.raises(CsrInvalid, match=reason):
        ca.sign_csr(csr_for(key), "cam-1234")


@pytest.mark.parametrize("extension, reason", [
    (x509.BasicConstraints(ca=True, path_length=None), "certificate authority"),
    (x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=False, key_encipherment=False,
                   content_commitment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                   decipher_only=False), "keyCertSign"),
    (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), "serverAuth"),
], ids=["ca", "cert-signing", "server"])
def test_a_csr_asking_for_ca_or_server_roles_is_refused(ca: CertificateAuthority, extension, reason: str) -> None:  # noqa: ANN001
    with pytest.raises(CsrInvalid, match=reason):
        ca.sign_csr(csr_for(ec.generate_private_key(ec.SECP256R1()), extension), "cam-1234")


def test_a_csr_asking_only_for_client_auth_is_fine(ca: CertificateAuthority) -> None:
    extension = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    ca.sign_csr(csr_for(ec.generate_private_key(ec.SECP256R1()), extension), "cam-1234")
