import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleet_server.errors import CsrInvalid
from fleet_server.pki import CertificateAuthority, load_signing_public_pem, serial_hex
from tests.fleet_server.conftest import make_csr


def test_the_ca_is_made_once_and_reloaded_with_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(tmp_path / "pki")
    again = CertificateAuthority.load_or_create(tmp_path / "pki")
    assert first.cert == again.cert
    assert (tmp_path / "pki" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert first.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_signed_certificate_verifies_against_the_ca_with_the_device_id_as_cn(ca: CertificateAuthority) -> None:
    key, csr = make_csr("evil-asks-for-another-name")
    cert = ca.sign_csr(csr, "cam-1234")
    cert.verify_directly_issued_by(ca.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cam-1234"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku and ExtendedKeyUsageOID.SERVER_AUTH not in eku
    assert cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) < dt.timedelta(days=366)


def test_a_csr_whose_signature_does_not_match_its_key_is_refused(ca: CertificateAuthority) -> None:
    # sign a CSR for key A with key B by swapping the public key bytes: rebuild with a foreign key
    key_a = ec.generate_private_key(ec.SECP256R1())
    good = (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])).sign(key_a, hashes.SHA256()))
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # corrupt the signature
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(CsrInvalid, match="signature"):
        ca.sign_csr(forged, "cam-1234")


@pytest.mark.parametrize("text", ["not a csr", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"])
def test_garbage_is_refused_as_an_invalid_csr(ca: CertificateAuthority, text: str) -> None:
    with pytest.raises(CsrInvalid):
        ca.sign_csr(text, "cam-1234")


def test_the_crl_lists_revoked_serials_and_is_signed_by_the_ca(ca: CertificateAuthority) -> None:
    cert = ca.sign_csr(make_csr()[1], "cam-1234")
    path = ca.write_crl([(serial_hex(cert), dt.datetime.now(dt.timezone.utc))])
    crl = x509.load_pem_x509_crl(path.read_bytes())
    assert crl.is_signature_valid(ca.cert.public_key())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def test_the_server_identity_is_a_server_and_client_cert_for_localhost(ca: CertificateAuthority) -> None:
    cert_path, key_path = ca.server_identity()
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    cert.verify_directly_issued_by(ca.cert)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert key_path.stat().st_mode & 0o777 == 0o600


def test_the_signing_key_is_created_once_and_its_public_half_handed_out(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "model-signing.pem"
    pem = load_signing_public_pem(path)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and load_signing_public_pem(path) == pem
